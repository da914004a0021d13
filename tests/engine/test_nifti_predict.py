"""``predict`` on NIfTI volumes: geometry kept, labels equal to ``test`` through the prepared files, bad input."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

nib = pytest.importorskip("nibabel")

SIZE = 64
SPACING = (0.8, 0.7, 3.0)  # thick slices along voxel axis 2


def _affine():
    """A rotated, shifted, anisotropic voxel grid (LPS-ish flip on x, a 10 degree tilt)."""
    t = np.deg2rad(10)
    rot = np.array([[-np.cos(t), -np.sin(t), 0], [np.sin(t), -np.cos(t), 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(SPACING)
    affine[:3, 3] = (12.5, -30.0, 101.0)
    return affine


def _ct_case(rng, shape=(40, 36, 6)):
    """CT-like intensities (air, soft tissue, two brighter organs) and their labels, in file order."""
    x, y, z = np.indices(shape)
    ct = np.full(shape, -900.0, np.float32)
    body = ((x - 20) / 17.0) ** 2 + ((y - 18) / 15.0) ** 2 <= 1
    ct[body] = 40.0
    label = np.zeros(shape, np.int16)
    liver = body & (((x - 14) / 6.0) ** 2 + ((y - 12) / 5.0) ** 2 <= 1) & (z >= 1)
    kidney = body & (((x - 26) / 4.0) ** 2 + ((y - 24) / 3.0) ** 2 <= 1) & (z <= 4)
    ct[liver], label[liver] = 150.0, 6   # Synapse raw label 6: liver
    ct[kidney], label[kidney] = 250.0, 2  # raw label 2: right kidney
    ct += rng.normal(0, 8, shape).astype(np.float32)
    return ct, label


def _save(path, data, affine, dtype):
    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.header.set_zooms(SPACING)
    img.header["descrip"] = b"synthetic CT for the round trip"
    nib.save(img, str(path))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from jittor_pranet import build_model, save_checkpoint
    from jittor_pranet.data.multiclass import SYNAPSE_CLASSES
    from jittor_pranet.data.prepare import prepare_synapse

    root = tmp_path_factory.mktemp("nifti")
    raw = root / "raw"
    raw.mkdir()
    rng = np.random.default_rng(3)
    for case in ("0001", "0002"):
        ct, label = _ct_case(rng)
        _save(raw / f"img{case}.nii.gz", ct, _affine(), np.int16)
        _save(raw / f"label{case}.nii.gz", label, _affine(), np.uint8)
    prepared = root / "prepared"
    manifest = prepare_synapse(raw, prepared, remap=True, test_cases=("case0001",), progress=False)
    from jittor_pranet.engine.volume_predict import preprocessing_of

    names = list(SYNAPSE_CLASSES.names)
    model = build_model("emcad_b2", num_classes=len(names) + 1, encoder="pvt_v2_b0")
    meta = {"model": "emcad_b2", "num_classes": len(names) + 1, "encoder": "pvt_v2_b0", "task": "multiclass",
            "class_names": names, "preprocessing": preprocessing_of(manifest)}
    save_checkpoint(model, root / "m.pkl", meta=meta)
    old = dict(meta)
    old.pop("preprocessing")
    save_checkpoint(model, root / "old.pkl", meta=old)
    return root


def test_round_trip_keeps_geometry_and_matches_test(world, tmp_path, capsys):
    from jittor_pranet.data.medical_io import read_h5
    from jittor_pranet.engine.inference import load_model
    from jittor_pranet.engine.multiclass import logits_function
    from jittor_pranet.evaluation.volumes import predict_volume, score_volume

    src = world / "raw" / "img0001.nii.gz"
    code, out, err = run_cli(["predict", src, "--checkpoint", world / "m.pkl", "--out", tmp_path / "pred",
                              "--size", SIZE, "--no-progress", "--probabilities"], capsys)
    assert code == 0, err
    assert "intensity: CT window [-125, 275] HU" in err and "slices along axis 2" in out
    seg_path = tmp_path / "pred" / "img0001_seg.nii.gz"
    seg, ref = nib.load(str(seg_path)), nib.load(str(src))
    assert seg.shape == ref.shape and seg.get_data_dtype() == np.uint8
    assert np.allclose(seg.affine, ref.affine) and np.allclose(seg.header.get_zooms(), ref.header.get_zooms())
    assert np.allclose(seg.header.get_qform(), ref.header.get_qform())
    assert np.allclose(seg.header.get_sform(), ref.header.get_sform())
    assert seg.header["descrip"] == ref.header["descrip"]
    labels = np.asarray(seg.dataobj)

    # what `test` predicts for the same volume through the prepared h5 file (z, x, y)
    image, gt, spacing = read_h5(world / "prepared" / "test_vol_h5" / "case0001.npy.h5")
    model, spec = load_model(world / "m.pkl")
    prepared_pred = predict_volume(image, logits_function(model, spec.name), SIZE, batch_size=4)
    assert np.array_equal(labels.transpose(2, 0, 1), prepared_pred)

    code, out, err = run_cli(["test", "--checkpoint", world / "m.pkl", "--data", world / "prepared",
                              "--out", tmp_path / "test", "--size", SIZE, "--no-progress"], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "test" / "metrics.json").read_text())
    ours = score_volume(labels.transpose(2, 0, 1), gt, saved["classes"], spacing)
    for name in saved["classes"]:
        assert saved["volumes"][0]["scores"][name]["Dice"] == pytest.approx(ours[name]["Dice"], abs=1e-12)

    probs = sorted((tmp_path / "pred").glob("img0001_prob_*.nii.gz"))
    assert len(probs) == spec.num_classes
    stack = np.stack([np.asarray(nib.load(str(p)).dataobj) for p in probs])
    assert stack.shape[1:] == ref.shape and np.allclose(stack.sum(0), 1.0, atol=1e-4)
    assert (tmp_path / "pred" / "img0001_montage.png").is_file()


def test_folder_axis_override_tiling_and_old_checkpoint_warning(world, tmp_path, capsys):
    code, out, err = run_cli(["predict", world / "raw", "--checkpoint", world / "old.pkl", "--out", tmp_path / "o",
                              "--size", 32, "--no-progress", "--axis", "0", "--tile", "--montage", "0"], capsys)
    assert code == 0, err
    assert "records no intensity preprocessing" in err and "slices along axis 0" in out
    written = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert written == [f"{s}_seg.nii.gz" for s in ("img0001", "img0002", "label0001", "label0002")]
    seg = nib.load(str(tmp_path / "o" / "img0002_seg.nii.gz"))
    assert seg.shape == (40, 36, 6)


def test_slice_axis_from_the_affine():
    from jittor_pranet.engine.volume_predict import slice_axis_of

    assert slice_axis_of(_affine(), SPACING) == 2
    assert slice_axis_of(np.eye(4), (3.0, 1.0, 1.0)) == 0
    sagittal = np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # voxel axis 1 -> head-foot
    assert slice_axis_of(sagittal, (1.0, 1.0, 1.0)) == 1
    # a 2-D image stored as a volume is sliced along its one flat axis, whatever the spacing says
    assert slice_axis_of(np.eye(4), (3.0, 1.0, 1.0), (1, 64, 64)) == 0
    assert slice_axis_of(np.eye(4), (3.0, 1.0, 1.0), (64, 64, 1)) == 2
    assert slice_axis_of(np.eye(4), (3.0, 1.0, 1.0), (64, 1, 1)) == 0  # two flat axes: the spacing rule


def _bad_inputs(root: Path):
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.normal(size=(8, 8)).astype(np.float32), np.eye(4)), str(root / "flat.nii.gz"))
    nib.save(nib.Nifti1Image(rng.normal(size=(8, 8, 4, 3)).astype(np.float32), np.eye(4)), str(root / "time.nii.gz"))
    good = nib.Nifti1Image(rng.normal(size=(16, 16, 8)).astype(np.float32), np.eye(4))
    raw = gzip.compress(good.to_bytes())
    (root / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    (root / "text.nii").write_text("not a volume at all")
    huge = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    huge.header.set_data_shape((4096, 4096, 4096))
    (root / "huge.nii").write_bytes(huge.header.binaryblock + b"\0" * 4 + b"\0" * 64)


BAD = [
    ("2-D image", "flat.nii.gz", "a 2-D image"),
    ("4-D series", "time.nii.gz", "a 4-D image"),
    ("truncated", "cut.nii.gz", "truncated or corrupt"),
    ("not NIfTI", "text.nii", "not a readable NIfTI volume"),
    ("huge header", "huge.nii", "voxels, more than"),
]


@pytest.mark.parametrize("case,name,message", BAD, ids=[b[0] for b in BAD])
def test_bad_volumes_one_line_exit_2_nothing_left(case, name, message, world, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_inputs(bad)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", bad / name, "--checkpoint", world / "m.pkl", "--out", out,
                                 "--size", 32, "--no-progress"], capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err
    assert lines[-1].startswith("error:") and message in lines[-1], err
    assert not out.exists()


def test_binary_checkpoint_and_mixed_inputs_are_refused(world, tmp_path, capsys):
    from jittor_pranet import build_model, save_checkpoint

    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), tmp_path / "bin.pkl",
                    meta={"model": "pranet_v2_pvt", "num_classes": 1, "encoder": "pvt_v2_b0"})
    src = world / "raw" / "img0001.nii.gz"
    code, _, err = run_cli(["predict", src, "--checkpoint", tmp_path / "bin.pkl", "--out", tmp_path / "o1",
                            "--no-progress"], capsys)
    assert code == 2 and "need a multi-class" in err and not (tmp_path / "o1").exists()
    (tmp_path / "x.png").write_bytes(b"")
    code, _, err = run_cli(["predict", src, tmp_path / "x.png", "--checkpoint", world / "m.pkl",
                            "--out", tmp_path / "o2", "--no-progress"], capsys)
    assert code == 2 and "not a NIfTI volume" in err and not (tmp_path / "o2").exists()
