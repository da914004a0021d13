"""``prepare synapse|acdc``: round trip from small NIfTI files written here to the training layouts."""
import json

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet.data.medical_io import read_h5, read_npz
from jittor_pranet.data.multiclass import ACDC_CLASSES, SYNAPSE_CLASSES
from jittor_pranet.data.multiclass_layouts import load_multiclass_data

nib = pytest.importorskip("nibabel")


def _save_nifti(path, array, zooms):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(array), affine=np.diag(list(zooms[:3]) + [1.0]))
    img.header.set_zooms(zooms)
    nib.save(img, str(path))


def _synapse_raw(root, rng, cases=(("0005", (6, 5, 4)), ("0001", (6, 5, 3))), zooms=(0.7, 0.8, 2.5)):
    raw = {}
    for num, shape in cases:
        ct = rng.uniform(-400, 600, shape).astype(np.float32)
        label = rng.integers(0, 14, shape).astype(np.uint8)
        _save_nifti(root / "RawData" / "Training" / "img" / f"img{num}.nii.gz", ct, zooms)
        _save_nifti(root / "RawData" / "Training" / "label" / f"label{num}.nii.gz", label, zooms)
        raw[f"case{num}"] = (ct, label)
    return raw


def test_prepare_synapse_round_trip(tmp_path, capsys):
    raw = _synapse_raw(tmp_path / "raw", np.random.default_rng(0))
    code, out, err = run_cli(["prepare", "synapse", tmp_path / "raw", tmp_path / "out", "--no-progress"], capsys)
    assert code == 0, err
    assert "1 training cases as slices, 1 test volumes" in out
    ct, label = raw["case0005"]
    for k in range(4):
        image, lab, _ = read_npz(tmp_path / "out" / "train_npz" / f"case0005_slice{k:03d}.npz")
        expected = (np.clip(ct[:, :, k], -125, 275) + 125) / 400
        assert image.dtype == np.float32 and np.allclose(image, expected, atol=1e-6)
        assert np.array_equal(lab, label[:, :, k])  # 14 labels kept
    image, lab, spacing = read_h5(tmp_path / "out" / "test_vol_h5" / "case0001.npy.h5")
    assert image.shape == (3, 6, 5) and np.array_equal(lab, raw["case0001"][1].transpose(2, 0, 1))
    assert spacing == pytest.approx((2.5, 0.7, 0.8))
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["labels"] == "synapse14" and manifest["spacing"]["case0005"] == pytest.approx([2.5, 0.7, 0.8])
    assert "case0008" in manifest["missing_test_cases"]
    assert (tmp_path / "out" / "lists" / "lists_Synapse" / "test_vol.txt").read_text() == "case0001\n"
    # the loader applies the official 14 -> 8 remap and keeps the spacing
    data = load_multiclass_data(tmp_path / "out", val_fraction=0.0)
    assert data.class_names == SYNAPSE_CLASSES.names
    vol = next(data.iter_volumes("test"))
    remapped = np.array([0, 1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 5, 0, 0])[raw["case0001"][1].transpose(2, 0, 1)]
    assert np.array_equal(vol.label, remapped) and vol.spacing == pytest.approx((2.5, 0.7, 0.8))


def test_prepare_synapse_remap_option(tmp_path):
    from jittor_pranet.data.prepare import prepare_synapse

    raw = _synapse_raw(tmp_path / "raw", np.random.default_rng(1))
    manifest = prepare_synapse(tmp_path / "raw", tmp_path / "out", remap=True, test_cases=("case0005",),
                               progress=False)
    assert manifest["labels"] == "synapse8" and manifest["cases"]["test"] == ["case0005"]
    _, lab, _ = read_h5(tmp_path / "out" / "test_vol_h5" / "case0005.npy.h5")
    assert lab.max() <= 8 and np.array_equal(lab == 5, raw["case0005"][1].transpose(2, 0, 1) == 11)


def test_prepare_acdc_round_trip(tmp_path):
    from jittor_pranet.data.prepare import prepare_acdc

    rng = np.random.default_rng(2)
    zooms = (1.5, 1.25, 10.0)
    raw = {}
    for pid in (1, 2, 19):  # cascade split: 1 trains, 19 validates, 2 tests
        for frame in ("01", "12"):
            name = f"patient{pid:03d}_frame{frame}"
            mri = rng.uniform(5, 900, (7, 6, 3)).astype(np.float32)
            gt = rng.integers(0, 4, (7, 6, 3)).astype(np.uint8)
            _save_nifti(tmp_path / "raw" / f"patient{pid:03d}" / f"{name}.nii.gz", mri, zooms)
            _save_nifti(tmp_path / "raw" / f"patient{pid:03d}" / f"{name}_gt.nii.gz", gt, zooms)
            raw[name] = (mri, gt)
    _save_nifti(tmp_path / "raw" / "patient001" / "patient001_4d.nii.gz", np.zeros((7, 6, 3, 2)), zooms + (1.0,))
    manifest = prepare_acdc(tmp_path / "raw", tmp_path / "out", progress=False)
    assert manifest["volumes"]["val"] == ["patient019_frame01", "patient019_frame12"]
    assert manifest["volumes"]["test"] == ["patient002_frame01", "patient002_frame12"]
    mri, gt = raw["patient001_frame12"]
    image, lab, _ = read_h5(tmp_path / "out" / "data" / "slices" / "patient001_frame12_slice_2.h5")
    norm = (mri - mri.min()) / (mri.max() - mri.min())
    assert np.allclose(image, norm[:, :, 2].T, atol=1e-6) and np.array_equal(lab, gt[:, :, 2].T)
    image, lab, spacing = read_h5(tmp_path / "out" / "data" / "patient002_frame01.h5")
    assert image.shape == (3, 6, 7) and image.min() == 0.0 and image.max() == pytest.approx(1.0)
    assert spacing == pytest.approx((10.0, 1.25, 1.5))
    data = load_multiclass_data(tmp_path / "out")
    assert data.kind == "acdc_h5" and data.class_names == ACDC_CLASSES.names
    assert data.train_cases == ["patient001"] and len(data.train_slices) == 6
    assert [v.case for v in data.val_volumes] == ["patient019"] * 2
    assert next(data.iter_volumes("test")).spacing == pytest.approx((10.0, 1.25, 1.5))


def test_prepare_bad_input_one_line_and_nothing_written(tmp_path, capsys):
    rng = np.random.default_rng(3)
    _save_nifti(tmp_path / "raw" / "img0005.nii.gz", rng.random((6, 5, 4)), (1, 1, 1))
    _save_nifti(tmp_path / "raw" / "label0005.nii.gz", np.zeros((6, 5, 3), np.uint8), (1, 1, 1))
    code, out, err = run_cli(["prepare", "synapse", tmp_path / "raw", tmp_path / "out"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "img0005.nii.gz is 6x5x4 but its label label0005.nii.gz is 6x5x3" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(["prepare", "acdc", tmp_path / "raw", tmp_path / "out2"], capsys)
    assert code == 2 and "no ACDC patientNNN_frameNN" in err and "img0005.nii.gz" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    _save_nifti(tmp_path / "raw" / "label0005.nii.gz", np.zeros((6, 5, 4), np.uint8), (1, 1, 1))
    code, _, err = run_cli(["prepare", "synapse", tmp_path / "raw", tmp_path / "full"], capsys)
    assert code == 2 and "not empty" in err and (tmp_path / "full" / "keep.txt").read_text() == "mine"
