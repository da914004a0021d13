"""Multi-class training through the CLI: loss falls, exact resume, `test` on volumes, AdamW, bad input."""
import json

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet import checkpoint as ck

TINY = ["task=multiclass", "model.name=emcad_b2_dsra", "model.encoder=pvt_v2_b0", "data.train_size=64",
        "train.batch_size=4", "train.optimizer=adamw", "train.lr=2e-3", "train.weight_decay=1e-4", "train.clip=null",
        "train.multi_scale=[1.0]", "data.num_workers=1", "output.predict_test=false", "data.augment=false"]


@pytest.fixture(scope="module")
def organs(tmp_path_factory):
    """3 training cases of 4 slices (one is held out for validation) and one test volume, 64 px."""
    from jittor_pranet.data.synthetic_organs import make_synthetic_organs

    root = tmp_path_factory.mktemp("organs")
    make_synthetic_organs(root, seed=1, train_cases=3, test_cases=1, size=64, depth=4)
    return root


def _train(run_dir, data, capsys, *extra):
    return run_cli(["train", "--no-progress", "--run-dir", run_dir, f"data.train={data}", *TINY, *extra], capsys)


def _losses(run_dir):
    rows = (run_dir / "steps.csv").read_text().splitlines()[1:]
    return [float(r.split(",")[4]) for r in rows]


def test_train_loss_falls_resume_is_exact_and_test_prints_classes(tmp_path, organs, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    code, out, err = _train(full, organs, capsys, "train.epochs=3")
    assert code == 0, err
    losses = _losses(full)
    assert len(losses) == 6  # 8 training slices / batch 4 x 3 epochs
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses
    meta = ck.read_state_dict(full / "last.pkl").meta
    assert meta["task"] == "multiclass" and meta["num_classes"] == 6
    assert meta["class_names"] == ["liver", "spleen", "kidney", "aorta", "stomach"]
    history = json.loads((full / "metrics.json").read_text())
    assert all(0.0 <= r["val_mDice"] <= 1.0 for r in history)
    assert (full / "best.pkl").is_file() and (full / "curves.png").is_file()

    # stop mid-epoch 2, resume: the same weights as the uninterrupted run
    code, _, err = _train(part, organs, capsys, "train.epochs=3", "train.max_steps=3")
    assert code == 0, err
    code, out, err = run_cli(["train", "--no-progress", "--resume", part, "train.max_steps=null"], capsys)
    assert code == 0, err
    assert "resumed from" in out
    a, b = ck.read_state_dict(full / "last.pkl").state_dict, ck.read_state_dict(part / "last.pkl").state_dict
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k

    # `test` on the held-out volume: the per-class table with the organ names, HD95 in voxels and mm
    out_dir = tmp_path / "eval"
    code, out, err = run_cli(["test", "--no-progress", "--checkpoint", full / "best.pkl", "--data", organs,
                              "--out", out_dir], capsys)
    assert code == 0, err
    for name in ("liver", "spleen", "kidney", "aorta", "stomach", "HD95 (voxels)", "HD95 (mm)", "**mean**"):
        assert name in out, name
    scores = json.loads((out_dir / "metrics.json").read_text())
    assert scores["mean"]["mHD95_mm"] is not None and (out_dir / "per_class.csv").is_file()
    assert any((out_dir / "overlays").iterdir())


def test_adamw_matches_torch():
    torch = pytest.importorskip("torch")
    from jittor_pranet.engine.optim import TorchAdamW
    from jittor_pranet.ops import jt

    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in init] for _ in range(4)]
    ours = [jt.array(p.copy()) for p in init]
    ref = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in init]
    opt = TorchAdamW(ours, lr=1e-2, weight_decay=0.1)
    topt = torch.optim.AdamW(ref, lr=1e-2, weight_decay=0.1)
    for step in grads:
        opt.apply([jt.array(g) for g in step])
        for p, g in zip(ref, step):
            p.grad = torch.from_numpy(g)
        topt.step()
    for p, r in zip(ours, ref):
        np.testing.assert_allclose(p.numpy(), r.detach().numpy(), rtol=1e-5, atol=1e-6)
    plain = [jt.array(p.copy()) for p in init]
    from jittor_pranet.engine.optim import TorchAdam

    TorchAdam(plain, lr=1e-2, weight_decay=0.1).apply([jt.array(g) for g in grads[0]])
    assert not np.allclose(plain[0].numpy(), ours[0].numpy())  # coupled decay differs: the test can fail


def _bad_label_copy(src, dst):
    import shutil

    from jittor_pranet.data.medical_io import read_arrays, write_npz

    shutil.copytree(src, dst)
    first = sorted((dst / "train_npz").iterdir())[0]
    image, label, _ = read_arrays(first)
    label = label.copy()
    label[0, 0] = 7
    write_npz(first, image, label)
    return first


@pytest.mark.parametrize("case", ["label_value", "num_classes", "dsra_without_bg", "format", "test_classes"])
def test_bad_input_one_line(case, tmp_path, organs, capsys):
    args = ["train", "--no-progress", "--run-dir", tmp_path / "run", f"data.train={organs}", *TINY, "train.max_steps=1"]
    expect = {"num_classes": "model.num_classes is 4", "dsra_without_bg": "train.loss=dsra",
              "format": "data.format is acdc_h5", "label_value": "label value 7 >= num_classes 6",
              "test_classes": "the model has"}[case]
    if case == "label_value":
        bad = _bad_label_copy(organs, tmp_path / "bad")
        args[5] = f"data.train={tmp_path / 'bad'}"
        args += ["train.max_steps=null", "train.epochs=1"]  # every slice is read (slices load lazily)
        expect = f"{bad}: {expect}"
    elif case == "num_classes":
        args.append("model.num_classes=4")
    elif case == "dsra_without_bg":
        args += ["model.name=emcad_b2", "train.loss=dsra"]
    elif case == "format":
        args.append("data.format=acdc_h5")
    else:  # a 6-class checkpoint tested on ACDC-like data with 4 classes
        from jittor_pranet.data.medical_io import write_h5

        code, _, err = run_cli(args + ["output.predict_test=false"], capsys)
        assert code == 0, err
        acdc = tmp_path / "acdc"
        write_h5(acdc / "patient001_frame01.h5", np.zeros((2, 64, 64), np.float32), np.zeros((2, 64, 64), np.uint8))
        (acdc / "test.list").write_text("patient001_frame01\n")
        args = ["test", "--no-progress", "--checkpoint", tmp_path / "run" / "last.pkl", "--data", acdc,
                "--out", tmp_path / "out"]
    code, out, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and expect in lines[-1], err
    assert "Traceback" not in err
