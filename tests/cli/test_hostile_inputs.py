"""Hostile or broken inputs: YAML alias bombs and non-UTF-8 configs, absurd TTA scales, NIfTI volumes
that are empty, truncated, mislabelled or whose header lies about their size. Each case: exit code 2,
exactly one ``error:`` line, no traceback, nothing left behind (and nothing of the user's removed)."""
import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

nib = pytest.importorskip("nibabel")


def _tree(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error(args, capsys):
    try:
        code, out, err = run_cli(args, capsys)
    except SystemExit as exc:  # argparse
        code, err = exc.code, capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err[-1500:])
    assert "Traceback" not in err, err[-1500:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], err[-1500:]
    return lines[-1]


# ------------------------------------------------------------------ configs

def _laughs(levels: int) -> str:
    """A "billion laughs" document: 9**levels strings from a few hundred bytes, under a list-typed key."""
    rows = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        rows.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "x:\n" + "".join(f"  {r}\n" for r in rows) + f"train:\n  multi_scale: *l{levels - 1}\n"


CONFIGS = [
    ("billion laughs", _laughs(6).encode(), "anchors and aliases"),
    ("recursive mapping", b"data: &d {train: x, more: *d}\n", "anchors and aliases"),
    ("recursive list", b"train:\n  multi_scale: &a [1.0, *a]\n", "anchors and aliases"),
    ("latin-1 bytes", "model:\n  name: pranet_v2_pvt  # caf\u00e9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    ("deep nesting", b"train: " + b"[" * 20000 + b"]" * 20000 + b"\n", "nested more than 32 levels deep"),
    ("oversized", b"# " + b"x" * (1 << 20) + b"\n", "too large for a config"),
]


@pytest.mark.parametrize("case", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_hostile_config_is_one_line(case, tmp_path, capsys):
    name, data, expected = case
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        line = _one_error(["train", "--config", path, "--run-dir", tmp_path / "run"], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in line and str(path) in line, line
    assert len(line) < 500, line[:500]
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB traced"
    assert _tree(tmp_path) == ["c.yaml"]


def test_alias_in_an_override_is_refused_and_a_star_string_is_still_a_string():
    from jittor_pranet.config import parse_override
    from jittor_pranet.errors import UserError

    with pytest.raises(UserError, match="anchors and aliases"):
        parse_override("train.multi_scale=[&a [1, 1], *a, *a]")
    assert parse_override("output.name=*run") == ("output.name", "*run")  # no anchor: nothing to expand
    assert parse_override("train.multi_scale=[0.75, 1, 1.25]") == ("train.multi_scale", [0.75, 1, 1.25])


def test_a_bom_and_plain_utf8_still_load(tmp_path):
    from jittor_pranet.config import load_config

    path = tmp_path / "c.yaml"
    path.write_bytes("\ufeffmodel:\n  name: pranet_v2_pvt  # caf\u00e9\n".encode("utf-8"))
    assert load_config(str(path))["model"]["name"] == "pranet_v2_pvt"


# ------------------------------------------------------------------ predict --tta-scales

@pytest.fixture(scope="module")
def ckpt_and_images(tmp_path_factory):
    import cv2

    from jittor_pranet import build_model, save_checkpoint

    root = tmp_path_factory.mktemp("tta")
    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), root / "m.pkl",
                    meta={"model": "pranet_v2_pvt", "num_classes": 1, "encoder": "pvt_v2_b0"})
    (root / "imgs").mkdir()
    cv2.imwrite(str(root / "imgs" / "a.png"), np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return root


@pytest.mark.parametrize("scales", ["1e308", "inf", "nan", "0", "-1", "1,-0.5", "5", "1e308,1"])
@pytest.mark.parametrize("tta", [[], ["--tta", "scales"]], ids=["no-tta", "tta-scales"])
def test_absurd_tta_scales_fail_at_argument_checking(scales, tta, ckpt_and_images, tmp_path, capsys):
    before = _tree(ckpt_and_images)
    line = _one_error(["predict", "--checkpoint", ckpt_and_images / "m.pkl", ckpt_and_images / "imgs",
                       "--out", tmp_path / "out", "--size", "64", *tta, f"--tta-scales={scales}"], capsys)
    assert "--tta-scales" in line and "<= 4" in line, line
    assert not (tmp_path / "out").exists() and _tree(ckpt_and_images) == before


def test_scale_sizes_refuses_overflowing_scales_directly():
    from jittor_pranet.engine.tta import scale_sizes
    from jittor_pranet.errors import UserError

    for bad in (1e308, float("inf"), float("nan"), 0.0, -2.0):
        with pytest.raises(UserError, match="--tta-scales"):
            scale_sizes(352, (bad,))
    assert scale_sizes(352, (0.75, 1.0, 1.25)) == (256, 352, 448)


# ------------------------------------------------------------------ prepare: NIfTI volumes

def _save_nifti(path, array, zooms=(1.0, 1.0, 2.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(array), affine=np.diag(list(zooms) + [1.0]))
    img.header.set_zooms(zooms)
    nib.save(img, str(path))


def _synapse_case(raw, num, shape=(6, 5, 4), label_value=None, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 14, shape).astype(np.uint8)
    if label_value is not None:
        label.flat[0] = label_value
    _save_nifti(raw / f"img{num}.nii.gz", rng.uniform(-400, 600, shape).astype(np.float32))
    _save_nifti(raw / f"label{num}.nii.gz", label)


def _lying_header(path, shape=(1024, 1024, 1024)):
    """A few-KB .nii.gz whose header declares ``shape`` float32 voxels (4 GiB for the default)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    header["vox_offset"] = 352
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + np.zeros(1024, np.float32).tobytes()))
    assert path.stat().st_size < 4096


def _expect_clean_failure(cmd, tmp_path, capsys, expected, out_name="out"):
    """Run ``prepare``; one error line with ``expected``; OUT absent and no temporary folder left."""
    before = _tree(tmp_path)
    tracemalloc.start()
    try:
        line = _one_error(cmd, capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in line, line
    assert peak < 256 << 20, f"{peak / 2**20:.0f} MiB traced"
    assert _tree(tmp_path) == before, "the failed run left or changed files"
    return line


def test_prepare_synapse_zero_slice_volume(tmp_path, capsys):
    _synapse_case(tmp_path / "raw", "0001", shape=(6, 5, 0))
    _expect_clean_failure(["prepare", "synapse", tmp_path / "raw", tmp_path / "out", "--no-progress"],
                          tmp_path, capsys, "an empty volume")


def test_prepare_acdc_zero_slice_volume(tmp_path, capsys):
    raw = tmp_path / "raw"
    _save_nifti(raw / "patient001_frame01.nii.gz", np.zeros((6, 5, 0), np.float32))
    _save_nifti(raw / "patient001_frame01_gt.nii.gz", np.zeros((6, 5, 0), np.uint8))
    _expect_clean_failure(["prepare", "acdc", raw, tmp_path / "out", "--no-progress"], tmp_path, capsys,
                          "an empty volume")


def test_prepare_kits19_zero_slice_volume(tmp_path, capsys):
    for i, depth in ((0, 4), (1, 0)):
        folder = tmp_path / "raw" / f"case_{i:05d}"
        _save_nifti(folder / "imaging.nii.gz", np.zeros((depth, 8, 8), np.int16))
        _save_nifti(folder / "segmentation.nii.gz", np.zeros((depth, 8, 8), np.uint8))
    _expect_clean_failure(["prepare", "kits19", tmp_path / "raw", tmp_path / "out", "--no-progress"],
                          tmp_path, capsys, "an empty volume")


@pytest.mark.parametrize("empty_out", [False, True], ids=["new-out", "empty-out"])
def test_prepare_synapse_second_case_bad_label_leaves_nothing(tmp_path, capsys, empty_out):
    _synapse_case(tmp_path / "raw", "0001", seed=1)            # fine, converted first
    _synapse_case(tmp_path / "raw", "0002", label_value=40, seed=2)  # label 40: refused while converting
    (tmp_path / "mine.txt").write_text("a file next to OUT")
    if empty_out:
        (tmp_path / "out").mkdir()
    _expect_clean_failure(["prepare", "synapse", tmp_path / "raw", tmp_path / "out", "--no-progress"],
                          tmp_path, capsys, "label value 40 outside 0..13")
    assert (tmp_path / "out").is_dir() == empty_out and not (empty_out and any((tmp_path / "out").iterdir()))
    assert (tmp_path / "mine.txt").read_text() == "a file next to OUT"


def test_prepare_synapse_second_case_truncated_leaves_nothing(tmp_path, capsys):
    _synapse_case(tmp_path / "raw", "0001", seed=1)
    _synapse_case(tmp_path / "raw", "0002", shape=(40, 40, 20), seed=2)
    path = tmp_path / "raw" / "img0002.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_clean_failure(["prepare", "synapse", tmp_path / "raw", tmp_path / "deep" / "er" / "out",
                           "--no-progress"], tmp_path, capsys, "img0002.nii.gz")
    assert not (tmp_path / "deep").exists()  # the parent folders this run made are gone too


def test_prepare_acdc_second_volume_bad_label_leaves_nothing(tmp_path, capsys):
    raw = tmp_path / "raw"
    for pid, bad in ((1, False), (2, True)):
        label = np.zeros((6, 5, 3), np.uint8)
        label[0, 0, 0] = 9 if bad else 2
        _save_nifti(raw / f"patient{pid:03d}_frame01.nii.gz", np.ones((6, 5, 3), np.float32))
        _save_nifti(raw / f"patient{pid:03d}_frame01_gt.nii.gz", label)
    _expect_clean_failure(["prepare", "acdc", raw, tmp_path / "out", "--no-progress"], tmp_path, capsys,
                          "label value 9 outside 0..3")


def test_prepare_kits19_second_case_truncated_leaves_nothing(tmp_path, capsys):
    for i in range(3):
        folder = tmp_path / "raw" / f"case_{i:05d}"
        seg = np.zeros((4, 8, 8), np.uint8)
        seg[1:3, 2:6, 2:6] = 1
        seg[1:3, 3:5, 3:5] = 2
        _save_nifti(folder / "imaging.nii.gz", np.random.default_rng(i).normal(0, 30, (4, 8, 8)).astype(np.int16))
        _save_nifti(folder / "segmentation.nii.gz", seg)
    path = tmp_path / "raw" / "case_00001" / "imaging.nii.gz"
    path.write_bytes(path.read_bytes()[:-40])
    _expect_clean_failure(["prepare", "kits19", tmp_path / "raw", tmp_path / "out", "--no-progress"],
                          tmp_path, capsys, "case_00001")


@pytest.mark.parametrize("dataset", ["synapse", "kits19"])
def test_prepare_refuses_a_header_larger_than_its_file_before_allocating(dataset, tmp_path, capsys):
    raw = tmp_path / "raw"
    if dataset == "synapse":
        _lying_header(raw / "img0001.nii.gz")
        _lying_header(raw / "label0001.nii.gz")
    else:
        for i in range(2):
            _lying_header(raw / f"case_{i:05d}" / "imaging.nii.gz")
            _lying_header(raw / f"case_{i:05d}" / "segmentation.nii.gz")
    line = _expect_clean_failure(["prepare", dataset, raw, tmp_path / "out", "--no-progress"], tmp_path, capsys,
                                 "header declares a 1024x1024x1024 volume")
    assert "cannot hold" in line


def test_read_nifti_refuses_a_lying_header_and_reads_honest_files(tmp_path):
    from jittor_pranet.data.medical_io import read_nifti
    from jittor_pranet.errors import UserError

    _lying_header(tmp_path / "big.nii.gz", shape=(512, 512, 64))
    with pytest.raises(UserError, match="cannot hold"):
        read_nifti(tmp_path / "big.nii.gz")
    zeros = np.zeros((64, 64, 64), np.uint8)  # compresses ~1000:1, still within deflate's bound
    _save_nifti(tmp_path / "zeros.nii.gz", zeros)
    _save_nifti(tmp_path / "plain.nii", zeros)
    for name in ("zeros.nii.gz", "plain.nii"):
        array, _ = read_nifti(tmp_path / name)
        assert array.shape == zeros.shape and not array.any()
    raw = (tmp_path / "plain.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="cannot hold"):
        read_nifti(tmp_path / "cut.nii")
