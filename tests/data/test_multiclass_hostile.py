"""Broken multi-class data files: each is refused with one line naming the file, never a traceback,
and a training run that meets one leaves no run folder behind."""
import h5py
import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet.data.medical_io import read_arrays, write_npz
from jittor_pranet.data.multiclass import SliceRecord, VolumeRecord, load_volume, read_slice
from jittor_pranet.errors import UserError

HW = (12, 14)


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def _group_image(path):
    with h5py.File(path, "w") as f:
        f.create_group("image")
        f["label"] = np.zeros(HW, np.uint8)
    return path


def _string_image(path):
    with h5py.File(path, "w") as f:
        f["image"] = np.array([b"abc"] * 3)
        f["label"] = np.zeros(HW, np.uint8)
    return path


def _text_spacing(path):
    with h5py.File(path, "w") as f:
        f["image"] = np.zeros(HW, np.float32)
        f["label"] = np.zeros(HW, np.uint8)
        f.attrs["spacing"] = "1.0, 1.0, 2.5"
    return path


def _broken_link(path):
    with h5py.File(path, "w") as f:
        f["image"] = h5py.ExternalLink(str(path.parent / "missing.h5"), "/image")
        f["label"] = np.zeros(HW, np.uint8)
    return path


def _truncated(path):
    _h5(path, image=np.zeros(HW, np.float32), label=np.zeros(HW, np.uint8))
    path.write_bytes(path.read_bytes()[:700])
    return path


def _npy_named_npz(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(HW, np.float32))
    return path


def _object_npz(path):
    np.savez(path, image=np.array([None, 1], dtype=object), label=np.zeros(HW, np.uint8))
    return path


def _nan_label(path):
    label = np.zeros(HW, np.float32)
    label[3, 3] = np.nan
    np.savez(path, image=np.zeros(HW, np.float32), label=label)
    return path


def _nan_image(path):
    image = np.zeros(HW, np.float32)
    image[2, 5] = np.nan
    np.savez(path, image=image, label=np.zeros(HW, np.uint8))
    return path


def _inf_image_h5(path):
    image = np.zeros(HW, np.float32)
    image[0, 0] = np.inf
    return _h5(path, image=image, label=np.zeros(HW, np.uint8))


def _rgb_slice(path):
    np.savez(path, image=np.zeros(HW + (3,), np.float32), label=np.zeros(HW, np.uint8))
    return path


def _missing_label(path):
    np.savez(path, image=np.zeros(HW, np.float32))
    return path


SLICES = [
    ("image is an h5 group", "s.h5", _group_image, "'image' is an h5 group, not an array"),
    ("string image", "s.h5", _string_image, "'image' holds |S3 values, not numbers"),
    ("spacing as text", "s.h5", _text_spacing, "voxel spacing must be numbers"),
    ("broken external link", "s.h5", _broken_link, "cannot read"),
    ("truncated h5", "s.h5", _truncated, "cannot read"),
    (".npy named .npz", "s.npz", _npy_named_npz, "a single array (ndarray), not an .npz archive"),
    ("object array", "s.npz", _object_npz, "cannot read"),
    ("NaN label", "s.npz", _nan_label, "label map holds NaN or infinite values"),
    ("NaN image", "s.npz", _nan_image, "image holds 1 NaN or infinite values"),
    ("inf image", "s.h5", _inf_image_h5, "image holds 1 NaN or infinite values"),
    ("RGB slice", "s.npz", _rgb_slice, "image is not a 2-D slice"),
    ("missing label", "s.npz", _missing_label, "no label array"),
]


@pytest.mark.parametrize("case,name,make,message", SLICES, ids=[c[0] for c in SLICES])
def test_broken_slice_is_one_clear_error(case, name, make, message, tmp_path):
    path = make(tmp_path / name)
    with pytest.raises(UserError) as info:
        read_slice(SliceRecord(path=path, volume="case0001", case="case0001", index=0), num_classes=9)
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert str(path) in text or path.name in text, text


def test_nan_and_strings_in_volumes_are_refused(tmp_path):
    image = np.zeros((2,) + HW, np.float32)
    image[1, 4, 4] = np.nan
    path = _h5(tmp_path / "v.h5", image=image, label=np.zeros((2,) + HW, np.uint8))
    with pytest.raises(UserError, match=r"v\.h5: image holds 1 NaN"):
        load_volume(VolumeRecord(name="v", case="v", path=path), num_classes=4)
    label = np.zeros((2,) + HW, np.float64)
    label[0, 0, 0] = np.inf
    path = _h5(tmp_path / "w.h5", image=np.zeros((2,) + HW, np.float32), label=label)
    with pytest.raises(UserError, match="NaN or infinite"):
        load_volume(VolumeRecord(name="w", case="w", path=path), num_classes=4)


def test_good_files_still_read(tmp_path):
    path = _text_spacing(tmp_path / "ok.h5")
    with h5py.File(path, "a") as f:
        f.attrs["spacing"] = np.array([1.0, 1.0, 2.5])
    image, label, spacing = read_arrays(path)
    assert image.shape == HW and spacing == (1.0, 1.0, 2.5)
    path = write_npz(tmp_path / "ok.npz", np.ones(HW, np.float32), np.ones(HW, np.uint8))
    image, label = read_slice(SliceRecord(path=path, volume="c", case="c", index=0), num_classes=2)
    assert float(image.sum()) == HW[0] * HW[1] and label.dtype == np.int64


def test_train_that_meets_a_broken_slice_leaves_no_run_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for case in ("case0005", "case0006", "case0007"):
        for k in range(3):
            write_npz(root / "train_npz" / f"{case}_slice{k:03d}.npz", rng.random((32, 32), dtype=np.float32),
                      rng.integers(0, 9, (32, 32)).astype(np.uint8))
    bad = root / "train_npz" / "case0006_slice001.npz"
    image = rng.random((32, 32), dtype=np.float32)
    image[7, 7] = np.nan
    np.savez(bad, image=image, label=np.zeros((32, 32), np.uint8))
    run_dir = tmp_path / "runs" / "r"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run_dir, f"data.train={root}", "task=multiclass",
                              "model.name=emcad_b2_dsra", "model.encoder=pvt_v2_b0", "data.train_size=32",
                              "train.batch_size=2", "train.epochs=1", "data.num_workers=1", "data.augment=false",
                              "output.predict_test=false"], capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err[-1500:])
    assert "Traceback" not in err and lines[-1].startswith("error:") and "case0006_slice001.npz" in lines[-1], err[-1500:]
    assert "NaN" in lines[-1]
    assert not run_dir.exists() and not (tmp_path / "runs").exists()
