"""MIST and Cascaded MERIT end to end through the CLI on their small encoders: train a few steps, test on
a volume, predict a NIfTI volume and an image, refuse other input sizes and scale TTA in one line.

The same code paths as the full-size models (which the parity tests cover at 256): only the MaxViT
variant differs (``model.encoder=maxxvit_rmlp_nano_rw_256``; MERIT pairs it with
``maxvit_rmlp_nano_rw_256`` as its second encoder).
"""
import json

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet import checkpoint as ck

nib = pytest.importorskip("nibabel")

SMALL = "maxxvit_rmlp_nano_rw_256"
MODELS = ["mist_dsra", "merit_cascaded_dsra"]


def _tiny(name):
    return ["task=multiclass", f"model.name={name}", f"model.encoder={SMALL}", "model.backbone_weights=null",
            "data.train_size=256", "data.test_size=256", "train.batch_size=2", "train.optimizer=adamw",
            "train.lr=1e-4", "train.weight_decay=1e-4", "train.clip=null", "train.multi_scale=[1.0]",
            "data.num_workers=1", "output.predict_test=false", "data.augment=false", "train.epochs=1",
            "train.max_steps=2", "train.supervision=mutation", "model.drop_path_rate=0"]


@pytest.fixture(scope="module")
def organs(tmp_path_factory):
    from jittor_pranet.data.synthetic_organs import make_synthetic_organs

    root = tmp_path_factory.mktemp("organs")
    make_synthetic_organs(root, seed=1, train_cases=2, test_cases=1, size=64, depth=3)
    return root


@pytest.mark.parametrize("name", MODELS)
def test_train_test_predict_small_encoder(name, organs, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={organs}", *_tiny(name)], capsys)
    assert code == 0, err
    rows = (run / "steps.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(np.isfinite(float(r.split(",")[4])) for r in rows)
    meta = ck.read_state_dict(run / "last.pkl").meta
    assert meta["model"] == name and meta["encoder"] == SMALL

    code, out, err = run_cli(["test", "--no-progress", "--checkpoint", run / "last.pkl", "--data", organs,
                              "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= scores["mean"]["mDice"] <= 1.0

    vol = tmp_path / "scan.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.normal(0, 100, (48, 40, 3)).astype(np.float32), np.diag([0.8, 0.8, 3.0, 1])),
             str(vol))
    code, out, err = run_cli(["predict", vol, "--checkpoint", run / "last.pkl", "--out", tmp_path / "pred",
                              "--no-progress"], capsys)
    assert code == 0, err
    seg = nib.load(str(tmp_path / "pred" / "scan_seg.nii.gz"))
    assert seg.shape == (48, 40, 3) and np.asarray(seg.dataobj).max() < 6

    # fixed-size models: another --size and scale TTA are refused in one line
    code, _, err = run_cli(["predict", vol, "--checkpoint", run / "last.pkl", "--out", tmp_path / "p2",
                            "--size", "224"], capsys)
    assert code == 2 and "256" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["predict", vol, "--checkpoint", run / "last.pkl", "--out", tmp_path / "p3",
                            "--tta", "flip"], capsys)
    assert code == 2 and "NIfTI" in err and len(err.strip().splitlines()) == 1

    # an image (grayscale through the 1 -> 3 stem), with flip TTA; scale TTA refused in one line
    from PIL import Image

    img = tmp_path / "slice.png"
    Image.fromarray(rng.integers(0, 255, (70, 90), dtype=np.uint8)).save(img)
    code, out, err = run_cli(["predict", img, "--checkpoint", run / "last.pkl", "--out", tmp_path / "pi",
                              "--tta", "flip", "--no-progress"], capsys)
    assert code == 0, err
    assert any((tmp_path / "pi").iterdir())
    code, _, err = run_cli(["predict", img, "--checkpoint", run / "last.pkl", "--out", tmp_path / "pj",
                            "--tta", "scales"], capsys)
    assert code == 2 and "use --tta flip" in err and "Traceback" not in err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1


def test_convert_official_layout_and_timm_imagenet_files(tmp_path, capsys):
    """An official-layout state_dict (the twin's keys, num_batches_tracked included) converts strictly;
    timm ImageNet files (with their classifier head) load into backbone1 and backbone2."""
    torch = pytest.importorskip("torch")
    from jittor_pranet.reference.torch_maxvit import build_torch_maxvit
    from jittor_pranet.reference.twins import build_twin

    twin = build_twin("merit_cascaded_dsra", num_classes=4, encoder=SMALL)
    src = tmp_path / "merit_official.pth"
    torch.save(twin.state_dict(), src)
    code, out, err = run_cli(["convert", "--model", "merit_cascaded_dsra", "--num-classes", "4", "--encoder", SMALL,
                              src, tmp_path / "merit.pkl"], capsys)
    assert code == 0, err
    got = ck.read_state_dict(tmp_path / "merit.pkl").state_dict
    want = {k: v.numpy() for k, v in twin.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert list(got) == list(want) and all(np.array_equal(got[k], want[k]) for k in want)

    files = []
    for name in (SMALL, "maxvit_rmlp_nano_rw_256"):
        enc = build_torch_maxvit(name)
        sd = dict(enc.state_dict())
        sd["head.fc.weight"], sd["head.fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
        path = tmp_path / f"{name}_imagenet.pth"
        torch.save(sd, path)
        files.append((path, {k: v.numpy() for k, v in enc.state_dict().items()
                             if not k.endswith("num_batches_tracked")}))
    code, out, err = run_cli(["convert", "--model", "merit_cascaded", "--num-classes", "4", "--encoder", SMALL,
                              "--backbone-only", files[0][0], "--backbone2", files[1][0], tmp_path / "init.pkl"],
                             capsys)
    assert code == 0, err
    assert out.count("ignored 2 encoder-file keys") == 2 and "head.fc.weight" in out
    got = ck.read_state_dict(tmp_path / "init.pkl").state_dict
    for (_, enc_sd), prefix in zip(files, ("backbone1.", "backbone2.")):
        assert all(np.array_equal(got[prefix + k], v) for k, v in enc_sd.items())
    # --backbone2 needs a model with a second encoder
    code, _, err = run_cli(["convert", "--model", "mist", "--encoder", SMALL, "--backbone-only", files[0][0],
                            "--backbone2", files[1][0], tmp_path / "x.pkl"], capsys)
    assert code == 2 and "second encoder" in err and not (tmp_path / "x.pkl").exists()


def test_onnx_export_of_a_fixed_size_model(tmp_path):
    """MIST + DSRA (small encoder) exports through its twin and matches Jittor in onnxruntime; the
    spatial size stays fixed (only the batch is dynamic). Its dilated convolutions need explicit
    padding: onnxruntime refuses dilation with auto 'SAME' padding."""
    pytest.importorskip("onnxruntime")
    import onnx

    from jittor_pranet.checkpoint import save_checkpoint
    from jittor_pranet.export import export_onnx
    from jittor_pranet.reference import torch_models as tm
    from jittor_pranet.reference.twins import build_twin

    twin = tm.randomize_(build_twin("mist_dsra", num_classes=4, encoder=SMALL), 0)
    ckpt = tmp_path / "mist.pkl"
    save_checkpoint(tm.state_dict_numpy(twin), ckpt, meta={"model": "mist_dsra", "num_classes": 4, "encoder": SMALL})
    report = export_onnx(ckpt, tmp_path / "mist.onnx", size=256, batch=2, log=lambda line: None)
    assert report.passed and report.worst <= 1e-4 and len(report.rows) >= 8
    assert {r.input_shape[1:] for r in report.rows} == {(1, 256, 256)}
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(tmp_path / "mist.onnx")).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 256, 256]
