"""``prepare kits19`` on KiTS19-shaped NIfTI files: both-class slices only, seeded split, spacing kept."""
import json

import numpy as np
import pytest
from conftest import run_cli

nib = pytest.importorskip("nibabel")


def _write_case(folder, rng, depth=7, spacing=(3.0, 0.78, 0.78)):
    folder.mkdir(parents=True)
    ct = rng.normal(0, 30, (depth, 24, 24)).astype(np.int16)
    seg = np.zeros((depth, 24, 24), np.uint8)
    seg[1:6, 5:12, 5:12] = 1          # kidney on slices 1..5
    seg[2:4, 7:10, 7:10] = 2          # tumor on slices 2, 3 only
    affine = np.diag([*spacing, 1.0])
    for name, data in (("imaging.nii.gz", ct), ("segmentation.nii.gz", seg)):
        img = nib.Nifti1Image(data, affine)
        img.header.set_zooms(spacing)
        nib.save(img, str(folder / name))


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("kits_raw")
    rng = np.random.default_rng(0)
    for i in range(5):
        _write_case(root / f"case_{i:05d}", rng)
    (root / "case_00099").mkdir()  # an unlabelled case folder: ignored
    return root


def test_prepare_kits19_keeps_both_class_slices_split_and_spacing(raw, tmp_path, capsys):
    from jittor_pranet.data.medical_io import read_h5
    from jittor_pranet.data.multiclass_layouts import load_multiclass_data

    code, out, err = run_cli(["prepare", "kits19", raw, tmp_path / "k", "--seed", "3", "--no-progress"], capsys)
    assert code == 0, err
    assert "4 training / 1 test cases (seed 3" in out
    manifest = json.loads((tmp_path / "k" / "dataset.json").read_text())
    assert manifest["class_names"] == ["kidney", "tumor"] and manifest["seed"] == 3
    assert all(v == [2, 3] for v in manifest["slices_kept"].values())
    split = json.loads((tmp_path / "k" / "split.json").read_text())
    assert split["test"] == manifest["split"]["test"] and len(split["train"]) == 4
    code, out2, _ = run_cli(["prepare", "kits19", raw, tmp_path / "k2", "--seed", "3", "--no-progress"], capsys)
    assert out2.splitlines()[-1] == out.splitlines()[-1]  # same seed, same test cases
    test_case = split["test"][0]
    image, label, spacing = read_h5(tmp_path / "k" / "test_vol_h5" / f"{test_case}.npy.h5")
    assert image.shape == (2, 24, 24) and set(np.unique(label)) == {0, 1, 2}
    assert tuple(spacing) == pytest.approx((3.0, 0.78, 0.78), abs=1e-6)
    assert 0.0 <= image.min() and image.max() <= 1.0
    data = load_multiclass_data(tmp_path / "k", val_fraction=0.0)
    assert data.class_names == ("kidney", "tumor") and len(data.train_slices) == 8
    assert {s.case for s in data.train_slices} == set(split["train"])


def test_kits19_split_is_168_42_for_210_cases():
    from jittor_pranet.data.kits19 import split_kits19

    cases = [f"case_{i:05d}" for i in range(210)]
    train, test = split_kits19(cases, seed=0)
    assert len(train) == 168 and len(test) == 42 and not set(train) & set(test)
    assert split_kits19(cases, seed=0) == (train, test) and split_kits19(cases, seed=1)[1] != test


def test_bad_kits19_layouts_one_line_nothing_left(raw, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    bad_label = tmp_path / "badlab"
    _write_case(bad_label / "case_00000", np.random.default_rng(1))
    _write_case(bad_label / "case_00001", np.random.default_rng(2))
    seg = nib.Nifti1Image(np.full((7, 24, 24), 5, np.uint8), np.eye(4))
    nib.save(seg, str(bad_label / "case_00001" / "segmentation.nii.gz"))
    for src, message in ((tmp_path / "empty", "no KiTS19 case_XXXXX"), (tmp_path / "missing", "not found"),
                         (bad_label, "outside 0..2")):
        out = tmp_path / "out"
        code, _, err = run_cli(["prepare", "kits19", src, out, "--no-progress"], capsys)
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and lines[-1].startswith("error:") and message in lines[-1], err
        assert not out.exists()
