"""Training-step parity with PyTorch, in three parts so noise cannot hide a bug:

(a) one forward+loss+backward in train mode: loss <= 1e-5 rel, every gradient <= 1e-3 relative to
    its tensor's max |g|, BatchNorm running statistics after the step <= 1e-5 rel;
    Conditioning: with random weights in train mode (batch statistics, batch 2) the Res2Net models'
    gradients are chaotic in float32 -- PyTorch float32 vs PyTorch float64 already differ by up to
    ~0.2 relative (BatchNorm gradient growth with depth at initialisation; measured in
    ``test_a_float32_res2net_gradients_are_ill_conditioned``).  No float32 implementation can meet
    1e-3 there, so the Res2Net comparison runs in float64 on both sides (same code paths, Jittor's
    generic kernels); PVT models are well conditioned and are compared in float32.
    Gradients that are analytically zero (e.g. a bias feeding only 1x1 convs followed by train-mode
    BatchNorm, which removes any per-channel constant) are float noise on both sides; for those
    (|g_torch| < 1e-6 of the model's largest gradient) we assert Jittor's is noise-level too.
(b) identical gradients -> our clipping + Adam == torch.optim.Adam (<= 1e-6 rel, several steps,
    gradients near eps where Jittor's own Adam differs);
(c) three consecutive full steps (multi-scale sizes): losses within 1e-4 rel.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training parity needs torch")

from jittor_pranet import checkpoint as ck  # noqa: E402
from jittor_pranet.engine.optim import TorchAdam, trainable_named_parameters  # noqa: E402
from jittor_pranet.losses import pranet_loss  # noqa: E402
from jittor_pranet.models import build_model  # noqa: E402
from jittor_pranet.ops import jt  # noqa: E402
from jittor_pranet.reference import torch_models as tm  # noqa: E402
from jittor_pranet.reference import torch_train as tt  # noqa: E402


def _pair(name, seed=0, num_classes=1, float64=False):
    kw = {"drop_path_rate": 0.0} if name.endswith("pvt") else {}
    tmodel = tm.randomize_(tm.build_torch_model(name, num_classes=num_classes, **kw), seed)
    jmodel = build_model(name, num_classes=num_classes, **kw)
    ck.load_state_dict(jmodel, tm.state_dict_numpy(tmodel))
    if float64:
        tmodel.double()
        for v in jmodel.state_dict().values():
            v.assign(v.float64())
    tmodel.train()
    jmodel.train()
    return jmodel, tmodel


def _batch(size, seed=0, n=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    masks = []
    for i in range(n):
        cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, rng.uniform(0.15, 0.3) * size
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32))
    return x, np.stack(masks)[:, None]


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# pranet_v1_pvt runs in float64: in float32 Jittor's gradient of ra2_conv2.conv.weight measured
# 1.12e-3 (max 1e-3) off, all of it from one pixel whose ReLU input is within float32 rounding of 0
# (test_a_pranet_v1_pvt_float32_differs_only_at_a_relu_kink below shows it).
@pytest.mark.parametrize("name,float64", [("pranet_v2_res2net", True), ("pranet_v1_pvt", True),
                                          ("pranet_v2_pvt", False)])
def test_a_forward_loss_backward_train_mode(name, float64):
    jmodel, tmodel = _pair(name, seed=11, float64=float64)
    x, m = _batch(128 if float64 else 256, seed=1)
    if float64:
        x, m = x.astype(np.float64), m.astype(np.float64)
    t_loss = tt.pranet_loss(tmodel(torch.from_numpy(x)), torch.from_numpy(m))
    t_loss.backward()
    named = trainable_named_parameters(jmodel)
    j_loss = pranet_loss(jmodel(jt.array(x)), jt.array(m))
    grads = jt.grad(j_loss, [p for _, p in named])
    assert _rel(j_loss.numpy(), t_loss.detach().numpy()) <= 1e-5
    t_params = dict(tmodel.named_parameters())
    assert {n for n, _ in named} == set(t_params)
    def torch_grad(n):  # unused parameters (V2's 1->3 stem, Res2Net's fc) have no grad in torch: must be 0 here
        g = t_params[n].grad
        return np.zeros(t_params[n].shape, np.float32) if g is None else g.numpy()

    pairs = [(n, g.numpy(), torch_grad(n)) for (n, _), g in zip(named, grads)]
    scale = max(np.abs(t).max() for _, _, t in pairs)
    zero = [(n, j) for n, j, t in pairs if np.abs(t).max() < 1e-6 * scale]
    compared = [(n, j, t) for n, j, t in pairs if np.abs(t).max() >= 1e-6 * scale]
    assert len(compared) > 0.9 * len(pairs)
    worst = max((_rel(j, t), n) for n, j, t in compared)
    assert worst[0] <= 1e-3, worst
    for n, j in zero:
        assert np.abs(j).max() < 1e-5 * scale, n
    t_state = tmodel.state_dict()
    j_state = jmodel.state_dict()
    stats = [k for k in t_state if k.endswith(("running_mean", "running_var"))]
    assert stats
    worst_bn = max((_rel(j_state[k].numpy(), t_state[k].numpy()), k) for k in stats)
    assert worst_bn[0] <= 1e-5, worst_bn


def test_a_pranet_v1_pvt_float32_differs_only_at_a_relu_kink():
    """Why PraNet-V1/PVT runs (a) in float64, measured: its float32 gap is one ReLU kink.

    With these weights and batch one input of the ReLU after ``ra2_conv2`` is 2.8e-6 against values up
    to 8.8 (float64 reference), below float32's rounding there, so whether that one pixel passes the
    ReLU depends on summation order: PyTorch float32 happens to agree with float64, Jittor's fused
    kernels (two threads) do not, and that single pixel moves ``ra2_conv2``'s gradients of that channel
    by ~1e-3 of their max. Every other gradient element meets (a)'s 1e-3 in float32, fast path on.
    """
    import copy

    jmodel, t32 = _pair("pranet_v1_pvt", seed=11)
    t64 = copy.deepcopy(t32).double()
    x, m = _batch(256, seed=1)
    pre_relu = {}
    def keep(module, inputs, output):  # returns None: the output is left alone
        pre_relu["v"] = output.detach().numpy()

    hook = t64.ra2_conv2.register_forward_hook(keep)
    tt.pranet_loss(t64(torch.from_numpy(x).double()), torch.from_numpy(m).double()).backward()
    hook.remove()
    v = pre_relu["v"]
    kink = np.unravel_index(np.abs(v).argmin(), v.shape)
    assert abs(v[kink]) < 1e-6 * np.abs(v).max()  # within float32 rounding of the ReLU's kink
    channel = kink[1]
    named = trainable_named_parameters(jmodel)
    grads = jt.grad(pranet_loss(jmodel(jt.array(x)), jt.array(m)), [p for _, p in named])
    p64 = dict(t64.named_parameters())
    worst = (0.0, "")
    for (n, _), g in zip(named, grads):
        ref = p64[n].grad
        if ref is None:
            continue
        ref, got = ref.numpy(), g.numpy().astype(np.float64)
        scale = max(np.abs(ref).max(), 1e-30)
        diff = np.abs(got - ref)
        if n.startswith("ra2_conv2."):  # the kink's channel: its row of the weight, its BN element
            diff[channel] = 0.0
        worst = max(worst, (float(diff.max() / scale), n))
    assert worst[0] <= 1e-3, worst


def test_a_float32_res2net_gradients_are_ill_conditioned():
    """Why the Res2Net part of (a) runs in float64: PyTorch float32 itself misses 1e-3 there."""
    import copy

    t32 = tm.randomize_(tm.build_torch_model("pranet_v2_res2net"), 11).train()
    t64 = copy.deepcopy(t32).double()
    x, m = _batch(256, seed=1)
    tt.pranet_loss(t32(torch.from_numpy(x)), torch.from_numpy(m)).backward()
    tt.pranet_loss(t64(torch.from_numpy(x).double()), torch.from_numpy(m).double()).backward()
    p64 = dict(t64.named_parameters())
    worst = max(_rel(p.grad.numpy().astype(np.float64), p64[n].grad.numpy())
                for n, p in t32.named_parameters() if p.grad is not None)
    assert worst > 1e-2


def test_b_clip_and_adam_match_torch_given_identical_gradients():
    rng = np.random.default_rng(3)
    shapes = [(8, 4, 3, 3), (8,), (16, 5)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    jp = [jt.array(a) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    ours = TorchAdam(jp, lr=1e-4, clip_value=0.5)
    ref = torch.optim.Adam(tp, lr=1e-4)
    for step in range(5):
        # magnitudes from 1e-10 (below eps) to 3 (clipped)
        grads = [(rng.standard_normal(s) * 10.0 ** rng.uniform(-10, 0.5, size=s)).astype(np.float32) for s in shapes]
        ours.apply([jt.clamp(jt.array(g), -0.5, 0.5) for g in grads])
        for t, g in zip(tp, grads):
            t.grad = torch.from_numpy(g).clamp(-0.5, 0.5)
        ref.step()
        for j, t in zip(jp, tp):
            assert _rel(j.numpy(), t.detach().numpy()) <= 1e-6
    # the test can fail: PyTorch's Adam without clipping ends elsewhere
    assert any(_rel(j.numpy(), a) > 1e-6 for j, a in zip(jp, init))


# PraNet-V1/PVT runs in float64 on both sides: in float32 its step-3 loss is at the noise edge of the
# 1e-4 tolerance (measured: Jittor float32 1.05e-4 with one thread, < 1e-5 with two; PyTorch float32
# itself 1.8e-5 / 1.0e-6, and 1.0e-4 on PraNet-V2/PVT with two threads): Adam's first steps are
# nearly sign(g), so noise-level gradient elements move weights by a full lr either way.
@pytest.mark.parametrize("name,float64", [("pranet_v2_pvt", False), ("pranet_v1_pvt", True)])
def test_c_three_full_steps_losses_agree(name, float64):
    """Three official steps (one per multi-scale size, our resize vs the reference's).

    The PyTorch reference runs the same steps in float64, the exact maths; Jittor in float32 (the
    fast path) or float64. (Measured: on PraNet-V2/PVT seed 5 PyTorch *float32* is itself 1.0e-4 off
    float64 at step 3 while Jittor float32 is 2e-8 off; a float32-vs-float32 comparison would test
    PyTorch's rounding.)
    """
    from jittor_pranet.engine.trainer import rescale_batch

    jmodel, _ = _pair(name, seed=5, float64=float64)
    _, tmodel = _pair(name, seed=5, float64=True)
    opt = TorchAdam([p for _, p in trainable_named_parameters(jmodel)], lr=1e-4, clip_value=0.5)
    topt = torch.optim.Adam([p for _, p in tmodel.named_parameters()], lr=1e-4)
    x, m = _batch(128, seed=2)
    j_losses, t_losses = [], []
    for size in (96, 128, 160):  # one step per multi-scale rate, as the recipe
        tx, tmk = tt.resize_batch(torch.from_numpy(x).double(), torch.from_numpy(m).double(), size)
        t_losses.append(tt.train_step(tmodel, topt, tx, tmk, clip=0.5))
        jx, jm = rescale_batch(jt.array(x.astype(np.float64) if float64 else x),
                               jt.array(m.astype(np.float64) if float64 else m), size)
        loss = pranet_loss(jmodel(jx), jm)
        opt.step(loss)
        j_losses.append(float(loss.item()))
    for a, b in zip(j_losses, t_losses):
        assert abs(a - b) / abs(b) <= 1e-4, (j_losses, t_losses)
    assert len(set(np.round(t_losses, 6))) == 3  # the steps really changed the model


def test_parameters_stay_trainable_after_an_update():
    """Regression: writing the update must not turn parameters into stop-grad variables."""
    jmodel = build_model("pranet_v2_pvt", encoder="pvt_v2_b0")
    jmodel.train()
    params = [p for _, p in trainable_named_parameters(jmodel)]
    opt = TorchAdam(params, lr=1e-3, clip_value=0.5)
    x, m = _batch(64, seed=4)
    for _ in range(2):
        grads = opt.step(pranet_loss(jmodel(jt.array(x)), jt.array(m)))
    assert all(not p.is_stop_grad() for p in params)
    assert sum(float(jt.abs(g).max().item()) > 0 for g in grads) > 0.9 * len(grads)
