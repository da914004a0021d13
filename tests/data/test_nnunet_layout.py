"""nnU-Net raw datasets (2-D PNG and NIfTI volumes): detected as a layout, class names from dataset.json,
train + test via the CLI, NIfTI volumes sliced along their slice axis and scored with their header's spacing."""
import json

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from jittor_pranet.data.multiclass_layouts import load_multiclass_data
from jittor_pranet.data.nnunet import nnunet_class_names
from jittor_pranet.errors import UserError

TINY = ["task=multiclass", "model.name=emcad_b2_dsra", "model.encoder=pvt_v2_b0", "data.train_size=64",
        "train.batch_size=2", "train.optimizer=adamw", "train.clip=null", "train.multi_scale=[1.0]",
        "data.num_workers=1", "output.predict_test=false", "data.augment=false"]


def _case(rng, size=64):
    yy, xx = np.mgrid[:size, :size]
    label = np.zeros((size, size), np.uint8)
    cy, cx = rng.integers(16, size - 16, 2)
    label[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 1
    y0, x0 = rng.integers(0, size - 12, 2)
    label[y0:y0 + 10, x0:x0 + 10] = 2
    image = (label * 90 + rng.integers(0, 40, (size, size))).astype(np.uint8)
    return image, label


def write_nnunet_png(root, n_train=5, n_test=1, labels=None, seed=0):
    rng = np.random.default_rng(seed)
    for folder, n, offset in (("Tr", n_train, 0), ("Ts", n_test, 100)):
        (root / f"images{folder}").mkdir(parents=True)
        (root / f"labels{folder}").mkdir()
        for i in range(n):
            image, label = _case(rng)
            Image.fromarray(image).save(root / f"images{folder}" / f"toy_{i + offset:03d}_0000.png")
            Image.fromarray(label).save(root / f"labels{folder}" / f"toy_{i + offset:03d}.png")
    meta = {"channel_names": {"0": "MRI"}, "labels": labels or {"background": 0, "disc": 1, "box": 2},
            "numTraining": n_train, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_class_names_v1_and_v2(tmp_path):
    assert nnunet_class_names({"background": 0, "kidney": 1, "tumor": 2}, tmp_path) == ("kidney", "tumor")
    assert nnunet_class_names({"2": "tumor", "0": "background", "1": "kidney"}, tmp_path) == ("kidney", "tumor")
    for bad, words in (({"background": 0, "kidney": 2}, "0..1"), ({"background": 0, "k": [1, 2]}, "region"),
                       ({"background": 0}, "no foreground"), ([], "mapping"),
                       ({"background": 0, "kidney": 1, "ignore": 2}, "'ignore' label")):
        with pytest.raises(UserError, match=words):
            nnunet_class_names(bad, tmp_path)


def test_layout_detected_split_by_case(tmp_path):
    root = write_nnunet_png(tmp_path / "Dataset001_Toy")
    data = load_multiclass_data(root, val_fraction=0.2, seed=0)
    assert data.kind == "nnunet" and data.class_names == ("disc", "box") and data.num_classes == 3
    assert len(data.train_slices) == 4 and len(data.val_volumes) == 1
    assert [v.name for v in data.test_volumes] == ["toy_100"]
    assert not {s.case for s in data.train_slices} & {v.case for v in data.val_volumes}
    case = next(data.iter_volumes("test"))
    assert case.label.shape == (1, 64, 64) and set(np.unique(case.label)) == {0, 1, 2}


def test_train_and_test_through_cli(tmp_path, capsys):
    root = write_nnunet_png(tmp_path / "Dataset001_Toy")
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={root}", *TINY,
                              "train.epochs=1", "train.max_steps=2"], capsys)
    assert code == 0, err
    assert "nnunet data" in out + err
    code, out, err = run_cli(["test", "--no-progress", "--checkpoint", run / "last.pkl", "--data", root,
                              "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    for name in ("disc", "box", "**mean**"):
        assert name in out, name
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= scores["mean"]["mDice"] <= 1.0


@pytest.mark.parametrize("case", ["no_json", "no_label", "regions", "nrrd", "channel"])
def test_bad_layout_one_line(case, tmp_path, capsys):
    root = write_nnunet_png(tmp_path / "Dataset001_Toy", n_train=3)
    expect = {"no_json": "has no dataset.json (found: imagesTr/, imagesTs/", "no_label": "no label",
              "regions": "region-based", "nrrd": "file_ending '.nrrd' is not read", "channel": "single-channel"}[case]
    if case == "no_json":
        (root / "dataset.json").unlink()
    elif case == "no_label":
        (root / "labelsTr" / "toy_001.png").unlink()
    elif case == "regions":
        (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2]},
                                                       "file_ending": ".png"}))
    elif case == "nrrd":
        (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1}, "file_ending": ".nrrd"}))
    else:
        (root / "imagesTr" / "toy_000_0001.png").write_bytes((root / "imagesTr" / "toy_000_0000.png").read_bytes())
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={root}", *TINY,
                              "train.max_steps=1"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and expect in lines[-1], err
    assert "Traceback" not in err
    assert not run.exists() or not any(run.iterdir())


# ------------------------------------------------------------------ NIfTI volumes

SPACING = (0.8, 0.7, 3.0)  # thick slices along voxel axis 2


def _affine(spacing=SPACING):
    """Rotated (10 degrees about z, x flipped), shifted and anisotropic: slices along voxel axis 2."""
    t = np.deg2rad(10)
    rot = np.array([[-np.cos(t), -np.sin(t), 0], [np.sin(t), -np.cos(t), 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = (12.5, -30.0, 101.0)
    return affine


def _ct_volume(rng, shape=(40, 36, 5)):
    """CT-like intensities in HU (air, soft tissue, two brighter structures) and labels 0..2, file order."""
    x, y, z = np.indices(shape)
    ct = np.full(shape, -900.0)
    body = ((x - 20) / 17.0) ** 2 + ((y - 18) / 15.0) ** 2 <= 1
    ct[body] = 40.0
    label = np.zeros(shape, np.uint8)
    cx, cy = rng.integers(10, 16), rng.integers(9, 14)
    organ = body & (((x - cx) / 6.0) ** 2 + ((y - cy) / 5.0) ** 2 <= 1) & (z >= 1)
    lesion = body & (((x - 27) / 3.0) ** 2 + ((y - 24) / 3.0) ** 2 <= 1) & (z <= 3)
    ct[organ], label[organ] = 150.0, 1
    ct[lesion], label[lesion] = 260.0, 2
    return (ct + rng.normal(0, 8, shape)).astype(np.int16), label


def write_nnunet_nifti(root, n_train=5, n_test=1, channel="CT", ending=".nii.gz", seed=0):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(seed)
    for folder, n, offset in (("Tr", n_train, 0), ("Ts", n_test, 100)):
        (root / f"images{folder}").mkdir(parents=True)
        (root / f"labels{folder}").mkdir()
        for i in range(n):
            ct, label = _ct_volume(rng)
            for data, path in ((ct, root / f"images{folder}" / f"kid_{i + offset:03d}_0000{ending}"),
                               (label, root / f"labels{folder}" / f"kid_{i + offset:03d}{ending}")):
                img = nib.Nifti1Image(data, _affine())
                img.header.set_zooms(SPACING)
                nib.save(img, str(path))
    meta = {"channel_names": {"0": channel}, "labels": {"background": 0, "kidney": 1, "tumor": 2},
            "numTraining": n_train, "file_ending": ending}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_nifti_layout_slices_along_the_slice_axis_with_header_spacing(tmp_path):
    nib = pytest.importorskip("nibabel")
    root = write_nnunet_nifti(tmp_path / "Dataset002_Kid", ending=".nii")
    data = load_multiclass_data(root, val_fraction=0.2, seed=0)
    assert data.kind == "nnunet" and data.class_names == ("kidney", "tumor") and data.intensity is not None
    assert len(data.train_cases) == 4 and len(data.val_volumes) == 1 and len(data.train_slices) == 4 * 5
    assert not set(data.train_cases) & {v.case for v in data.val_volumes}
    assert [v.name for v in data.test_volumes] == ["kid_100"]
    from jittor_pranet.errors import UserError as Err

    with pytest.raises(Err, match="intensity preprocessing was set"):
        next(data.iter_volumes("test"))
    data.intensity.use({"intensity": "minmax", "in_plane": "ascending"})
    case = next(data.iter_volumes("test"))
    raw = np.asarray(nib.load(str(root / "imagesTs" / "kid_100_0000.nii")).dataobj, dtype=np.float32)
    gt = np.asarray(nib.load(str(root / "labelsTs" / "kid_100.nii")).dataobj)
    assert case.image.shape == (5, 40, 36) and case.spacing == (3.0, pytest.approx(0.8), pytest.approx(0.7))
    assert np.array_equal(case.label, np.moveaxis(gt, 2, 0))
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    assert np.allclose(case.image, np.moveaxis(expected, 2, 0), atol=1e-6)
    sample = data.train_dataset(32, augment=False).get(3)  # one training slice, resized
    assert sample["image"].shape == (1, 32, 32) and sample["label"].shape == (32, 32)
    assert sample["name"] == f"{data.train_slices[3].case}_slice003"


def test_nifti_train_evaluates_best_and_last_and_test_matches_predict(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    from jittor_pranet.checkpoint import read_state_dict
    from jittor_pranet.evaluation.volumes import score_volume

    root = write_nnunet_nifti(tmp_path / "Dataset002_Kid")
    run = tmp_path / "run"
    args = [a for a in TINY if a != "output.predict_test=false"]
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={root}", *args,
                              "data.val_fraction=0.2", "train.epochs=2", "train.max_steps=3"], capsys)
    assert code == 0, err
    assert "nnunet data" in out + err and "intensity: CT window" in out + err
    # the CT window: nnU-Net's 0.5 / 99.5 percentiles of the training cases' foreground (all of it: tiny cases)
    held_out = [line for line in (out + err).splitlines() if line.startswith("data: ")]
    assert held_out and "1 training cases held out" in held_out[0]
    data = load_multiclass_data(root, val_fraction=0.2, seed=0)
    train_cases = data.train_cases
    fg = np.concatenate([np.asarray(nib.load(str(root / "imagesTr" / f"{c}_0000.nii.gz")).dataobj, np.float32)[
        np.asarray(nib.load(str(root / "labelsTr" / f"{c}.nii.gz")).dataobj) > 0] for c in train_cases])
    pre = read_state_dict(run / "last.pkl").meta["preprocessing"]
    assert pre["intensity"] == "ct_window" and np.allclose(pre["window"], np.percentile(fg, [0.5, 99.5]))
    # both checkpoints scored after training, each in its own folder, with its epoch recorded
    index = json.loads((run / "test_checkpoints.json").read_text())
    assert set(index) == {"best", "last"} and index["best"]["folder"] == "test" and index["last"]["folder"] == "test_last"
    history = json.loads((run / "metrics.json").read_text())
    assert index["last"]["epoch"] == history[-1]["epoch"]
    assert index["best"]["val_mDice"] == max(r["val_mDice"] for r in history if "val_mDice" in r)
    for folder in ("test", "test_last"):
        saved = json.loads((run / folder / "metrics.json").read_text())
        assert saved["classes"] == ["kidney", "tumor"] and saved["per_class"]["kidney"]["HD95_mm"] is not None
    assert "test volumes, best.pkl (best on validation" in out and "test volumes, last.pkl (final epoch" in out

    code, out, err = run_cli(["test", "--no-progress", "--checkpoint", run / "best.pkl", "--data", root,
                              "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    for name in ("| kidney |", "| tumor |", "**mean**"):
        assert name in out, name
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert scores["per_class"] == json.loads((run / "test" / "metrics.json").read_text())["per_class"]
    # predict on the raw test volume gives the labels `test` scored: the same Dice per class
    code, out, err = run_cli(["predict", root / "imagesTs" / "kid_100_0000.nii.gz", "--checkpoint", run / "best.pkl",
                              "--out", tmp_path / "pred", "--no-progress", "--montage", "0"], capsys)
    assert code == 0, err
    seg = nib.load(str(tmp_path / "pred" / "kid_100_0000_seg.nii.gz"))
    assert np.allclose(seg.affine, _affine()) and seg.shape == (40, 36, 5)
    gt = np.asarray(nib.load(str(root / "labelsTs" / "kid_100.nii.gz")).dataobj).astype(np.int64)
    ours = score_volume(np.moveaxis(np.asarray(seg.dataobj), 2, 0), np.moveaxis(gt, 2, 0), ["kidney", "tumor"],
                        (3.0, 0.8, 0.7))
    for name in ("kidney", "tumor"):
        assert scores["volumes"][0]["scores"][name]["Dice"] == pytest.approx(ours[name]["Dice"], abs=1e-12)
        assert scores["volumes"][0]["scores"][name]["HD95_mm"] == pytest.approx(ours[name]["HD95_mm"], rel=1e-6)
    code, out, err = run_cli(["report", run, "--checkpoint", "last"], capsys)
    assert code == 0, err
    assert "checkpoint last" in out and "| kidney |" in out


def _bad_nifti(case, root):
    nib = pytest.importorskip("nibabel")
    meta = json.loads((root / "dataset.json").read_text())
    if case == "second_channel":
        (root / "imagesTr" / "kid_000_0001.nii.gz").write_bytes((root / "imagesTr" / "kid_000_0000.nii.gz").read_bytes())
        return "channel 0001 found"
    if case == "two_channel_json":
        meta["channel_names"] = {"0": "CT", "1": "PET"}
        (root / "dataset.json").write_text(json.dumps(meta))
        return "2 input channels (CT, PET)"
    if case == "shape":
        nib.save(nib.Nifti1Image(np.zeros((40, 36, 4), np.uint8), _affine()), str(root / "labelsTr" / "kid_001.nii.gz"))
        return "differs from its image kid_001_0000.nii.gz"
    if case == "four_d":
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 2), np.int16), np.eye(4)), str(root / "imagesTr" / "kid_002_0000.nii.gz"))
        return "a 4-D image"
    if case == "truncated":
        path = root / "imagesTr" / "kid_001_0000.nii.gz"
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 3])
        return "kid_001_0000.nii.gz"
    if case == "bad_label":
        path = root / "labelsTr" / "kid_003.nii.gz"
        label = np.asarray(nib.load(str(path)).dataobj).copy()
        label[0, 0, 0] = 7
        nib.save(nib.Nifti1Image(label, _affine()), str(path))
        return "label value 7 >= num_classes 3"
    if case == "lying_header":  # a few-KB file whose header declares 4 GiB: refused before anything is allocated
        import gzip

        header = nib.Nifti1Header()
        header.set_data_dtype(np.float32)
        header.set_data_shape((1024, 1024, 1024))
        header["vox_offset"] = 352
        (root / "imagesTr" / "kid_001_0000.nii.gz").write_bytes(gzip.compress(header.binaryblock + b"\0" * 1028))
        return "cannot hold (truncated or corrupt)"
    raise AssertionError(case)


NIFTI_BAD = ["second_channel", "two_channel_json", "shape", "four_d", "truncated", "bad_label", "lying_header"]


@pytest.mark.parametrize("case", NIFTI_BAD)
def test_bad_nifti_layout_one_line_exit_2_nothing_left(case, tmp_path, capsys):
    root = write_nnunet_nifti(tmp_path / "Dataset002_Kid", n_train=4)
    expect = _bad_nifti(case, root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={root}", *TINY,
                              "train.max_steps=1"], capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err
    assert lines[-1].startswith("error: ") and expect in lines[-1], err
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert not run.exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
