"""Fast tests of the data layer: layouts, pairing, decoding, preprocessing, loader order, synthetic data."""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jittor_pranet.data import (
    Augment,
    BatchLoader,
    SegmentationDataset,
    check_pairs,
    find_split,
    find_test_sets,
    list_images,
    load_for_inference,
    make_synthetic_polyps,
    pair_by_stem,
    read_image_rgb,
    read_mask,
    render_polyp_sample,
    split_train_val,
)
from jittor_pranet.data.synthetic import MANIFEST_NAME
from jittor_pranet.errors import UserError

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


# -- helpers ------------------------------------------------------------------------------------


def _rgb(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h=20, w=30):
    m = np.zeros((h, w), np.uint8)
    m[5:15, 8:20] = 255
    return m


def _make_split(root: Path, names, img_dir="images", mask_dir="masks", img_ext=".png", mask_ext=".png",
                hw=(20, 30)):
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(_rgb(*hw, seed=k)).save(root / img_dir / f"{name}{img_ext}")
        Image.fromarray(_mask(*hw)).save(root / mask_dir / f"{name}{mask_ext}")
    return root


class ArrayDataset:
    """Tiny in-memory dataset whose samples reveal their index."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": np.full((1, 2, 2), i, np.float32), "index": np.int64(i), "name": f"s{i}"}


def _indices(batches):
    return [b["index"].tolist() for b in batches]


# -- layouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("img_dir,mask_dir", [("images", "masks"), ("image", "mask")])
def test_find_split_pranet_layouts(tmp_path, img_dir, mask_dir):
    _make_split(tmp_path, ["a", "b"], img_dir, mask_dir)
    assert find_split(tmp_path) == (tmp_path / img_dir, tmp_path / mask_dir)


def test_kvasir_layout_with_jpeg_masks(tmp_path):
    _make_split(tmp_path, ["cju0", "cju1"], img_ext=".jpg", mask_ext=".jpg")
    img_dir, mask_dir = find_split(tmp_path)
    report = pair_by_stem(img_dir, mask_dir)
    assert [p[0].name for p in report.pairs] == ["cju0.jpg", "cju1.jpg"]
    mask = read_mask(report.pairs[0][1])
    assert set(np.unique(mask)) <= {0.0, 1.0}
    # JPEG ringing must not leak into the binary mask: compare with the drawn rectangle.
    assert np.array_equal(mask, (_mask() > 128).astype(np.float32))


def test_test_dataset_tree(tmp_path):
    _make_split(tmp_path / "CVC-300", ["x"])
    _make_split(tmp_path / "Kvasir", ["y"])
    (tmp_path / "notes").mkdir()
    sets = find_test_sets(tmp_path)
    assert list(sets) == ["CVC-300", "Kvasir"]
    assert sets["Kvasir"] == (tmp_path / "Kvasir" / "images", tmp_path / "Kvasir" / "masks")


def test_missing_and_empty_folders_name_the_path(tmp_path):
    with pytest.raises(UserError, match="images/ \\+ masks/"):
        find_split(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(UserError, match=str(tmp_path / "images")):
        find_split(tmp_path)
    with pytest.raises(UserError, match="not found"):
        find_split(tmp_path / "nope")


def test_hint_when_parent_folder_given(tmp_path):
    _make_split(tmp_path / "TrainDataset", ["a"])
    with pytest.raises(UserError, match="TrainDataset"):
        find_split(tmp_path)


# -- pairing and checks -------------------------------------------------------------------------


def test_unpaired_report_and_skipped_files(tmp_path):
    _make_split(tmp_path, ["b", "a", "c"])
    (tmp_path / "masks" / "c.png").unlink()
    Image.fromarray(_mask()).save(tmp_path / "masks" / "z.png")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "images" / "readme.txt").write_text("hi")
    report = pair_by_stem(*find_split(tmp_path))
    assert [p[0].stem for p in report.pairs] == ["a", "b"]
    assert [p.name for p in report.unpaired_images] == ["c.png"]
    assert [p.name for p in report.unpaired_masks] == ["z.png"]
    assert report.skipped_files == 2
    summary = report.summary()
    assert "2 image/mask pairs" in summary and "c.png" in summary and "z.png" in summary
    assert "\n" not in summary


def test_list_images_sorted_and_counts_skipped(tmp_path):
    for name in ["b.PNG", "a.jpg", ".hidden.png", "x.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    images, skipped = list_images(tmp_path)
    assert [p.name for p in images] == ["a.jpg", "b.PNG"]
    assert skipped == 2


def test_nothing_pairs_is_an_error(tmp_path):
    _make_split(tmp_path, ["a"])
    (tmp_path / "masks" / "a.png").rename(tmp_path / "masks" / "b.png")
    with pytest.raises(UserError, match="same name"):
        pair_by_stem(tmp_path / "images", tmp_path / "masks")


def test_size_mismatch_names_the_file(tmp_path):
    _make_split(tmp_path, ["good", "bad"])
    Image.fromarray(_mask(21, 30)).save(tmp_path / "masks" / "bad.png")
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks").pairs
    with pytest.raises(UserError, match="bad.png") as info:
        check_pairs(pairs)
    assert "1 image/mask pairs" in str(info.value)
    with pytest.warns(UserWarning, match="bad.png"):
        kept = check_pairs(pairs, on_mismatch="drop")
    assert [p[0].stem for p in kept] == ["good"]


# -- decoding -----------------------------------------------------------------------------------


def test_corrupt_image_raises_user_error(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(UserError, match="broken.png"):
        read_image_rgb(bad)
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.jpg")
    truncated.write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    with pytest.raises(UserError, match="truncated.jpg"):
        read_image_rgb(truncated)


def test_cv2_fallback_for_formats_pil_cannot_decode(tmp_path, monkeypatch):
    import jittor_pranet.data.io as dio

    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "x.tif")
    Image.fromarray(rgb).save(tmp_path / "x.png")

    def refuse(path):
        raise OSError("decoder not available")

    monkeypatch.setattr(dio, "_open_with_pil", refuse)
    assert np.array_equal(read_image_rgb(tmp_path / "x.tif"), rgb)
    with pytest.raises(UserError, match="x.png"):  # PNG: PIL's verdict is final
        read_image_rgb(tmp_path / "x.png")


def test_image_mode_conversions(tmp_path):
    gray = np.arange(600, dtype=np.uint8).reshape(20, 30)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    out = read_image_rgb(tmp_path / "gray.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], gray) and np.array_equal(out[:, :, 2], gray)

    rgba = np.dstack([_rgb(), np.full((20, 30), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_image_rgb(tmp_path / "rgba.png"), rgba[:, :, :3])

    pal = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(tmp_path / "pal.png")
    assert np.array_equal(read_image_rgb(tmp_path / "pal.png"), np.asarray(pal.convert("RGB")))

    deep = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out16 = read_image_rgb(tmp_path / "deep.png")
    assert out16.shape == (20, 30, 3)
    assert out16[0, 0, 0] == 0 and out16[-1, -1, 0] == round(59900 / 257)


def test_mask_binarisation_threshold(tmp_path):
    values = np.array([[0, 100, 128, 129, 200, 255]], np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").tolist() == [[0, 0, 0, 1, 1, 1]]
    assert read_mask(tmp_path / "m.png", threshold=50).tolist() == [[0, 1, 1, 1, 1, 1]]
    assert read_mask(tmp_path / "m.png").dtype == np.float32


def test_mask_modes(tmp_path):
    rgb_mask = np.zeros((4, 4, 3), np.uint8)
    rgb_mask[1:3, 1:3] = 255
    Image.fromarray(rgb_mask).save(tmp_path / "rgb.png")
    assert read_mask(tmp_path / "rgb.png").sum() == 4
    pal = Image.fromarray(rgb_mask).convert("P")
    pal.save(tmp_path / "pal.png")
    assert read_mask(tmp_path / "pal.png").sum() == 4
    labels = (rgb_mask[:, :, 0] > 0).astype(np.uint8)  # a 0/1 label map, not 0/255
    Image.fromarray(labels).save(tmp_path / "labels.png")
    assert read_mask(tmp_path / "labels.png").sum() == 4


# -- splitting ----------------------------------------------------------------------------------


def _fake_pairs(n):
    return [(Path(f"img/{i:03d}.png"), Path(f"msk/{i:03d}.png")) for i in range(n)]


def test_split_deterministic_and_disjoint():
    pairs = _fake_pairs(50)
    train, val = split_train_val(pairs, 0.2, seed=3)
    again = split_train_val(list(reversed(pairs)), 0.2, seed=3)
    assert (train, val) == again
    assert len(val) == 10 and len(train) == 40
    assert not set(train) & set(val) and set(train) | set(val) == set(pairs)
    assert split_train_val(pairs, 0.2, seed=4)[1] != val
    assert split_train_val(pairs[:2], 0.01, seed=0)[1]  # at least one validation pair
    with pytest.raises(UserError):
        split_train_val(pairs, 1.0)


# -- samples ------------------------------------------------------------------------------------


def test_sample_normalisation_and_shapes(tmp_path):
    _make_split(tmp_path, ["a"], hw=(40, 60))
    solid = np.zeros((40, 60, 3), np.uint8)
    solid[:] = (255, 128, 0)
    Image.fromarray(solid).save(tmp_path / "images" / "a.png")
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks").pairs
    sample = SegmentationDataset(pairs, size=32, return_background=True)[0]
    image, mask = sample["image"], sample["mask"]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    expected = (np.array([255, 128, 0]) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(image[:, 5, 5], expected, rtol=1e-5)
    assert mask.shape == (1, 32, 32) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0}
    np.testing.assert_array_equal(sample["background"], 1 - mask)
    assert sample["name"] == "a"


def test_image_resize_matches_pil_bilinear(tmp_path):
    _make_split(tmp_path, ["a"], hw=(50, 70))
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks").pairs
    tensor, hw, rgb = load_for_inference(pairs[0][0], size=24)
    assert tensor.shape == (1, 3, 24, 24) and hw == (50, 70)
    resized = np.asarray(Image.fromarray(rgb).resize((24, 24), Image.BILINEAR)) / 255.0
    np.testing.assert_allclose(tensor[0], ((resized - MEAN) / STD).transpose(2, 0, 1), rtol=1e-5, atol=1e-6)


def test_soft_mask_matches_upstream_resize(tmp_path):
    _make_split(tmp_path, ["a"], hw=(50, 70))
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks").pairs
    soft = SegmentationDataset(pairs, size=24, soft_mask=True)[0]["mask"][0]
    upstream = np.asarray(Image.open(pairs[0][1]).convert("L").resize((24, 24), Image.BILINEAR)) / 255.0
    np.testing.assert_allclose(soft, upstream, atol=1e-6)
    assert 0 < ((soft > 0) & (soft < 1)).sum()


def test_augmentation_reproducible_and_consistent(tmp_path):
    _make_split(tmp_path, ["a"], hw=(32, 32))
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks").pairs
    ds = SegmentationDataset(pairs, size=32, augment=Augment(hflip=1.0, vflip=0.0, rot90=0.0, brightness=0.0,
                                                             contrast=0.0, saturation=0.0))
    plain = ds[0]
    flipped = ds.get(0, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped["mask"], plain["mask"][:, :, ::-1])
    np.testing.assert_allclose(flipped["image"], plain["image"][:, :, ::-1])
    ds.augment = Augment()
    a, b = ds.get(0, np.random.default_rng(5)), ds.get(0, np.random.default_rng(5))
    np.testing.assert_array_equal(a["image"], b["image"])


# -- loader -------------------------------------------------------------------------------------


def test_loader_deterministic_and_epochs_differ():
    ds = ArrayDataset(23)
    first = _indices(BatchLoader(ds, 4, seed=7))
    assert first == _indices(BatchLoader(ds, 4, seed=7, num_workers=0))
    assert sorted(sum(first, [])) == list(range(23)) and len(first) == 6 == len(BatchLoader(ds, 4))
    loader = BatchLoader(ds, 4, seed=7)
    e0, e1 = _indices(loader), _indices(loader)
    assert e0 == first and e1 != e0 and loader.state_dict()["epoch"] == 2
    assert _indices(BatchLoader(ds, 4, shuffle=False))[0] == [0, 1, 2, 3]
    assert [len(b) for b in _indices(BatchLoader(ds, 4, drop_last=True))] == [4] * 5


def test_loader_batch_contents():
    batch = next(iter(BatchLoader(ArrayDataset(5), 2, shuffle=False)))
    assert batch["image"].shape == (2, 1, 2, 2) and batch["name"] == ["s0", "s1"]


def test_resume_mid_epoch_yields_remaining_batches():
    ds = ArrayDataset(30)
    reference = BatchLoader(ds, 4, seed=1)
    reference.set_epoch(2)
    full = _indices(reference)

    loader = BatchLoader(ds, 4, seed=1)
    loader.set_epoch(2)
    it = iter(loader)
    consumed = [next(it)["index"].tolist() for _ in range(3)]
    state = json.loads(json.dumps(loader.state_dict()))  # survives a checkpoint round trip
    assert state["epoch"] == 2 and state["position"] == 3 and state["seed"] == 1
    del it

    resumed = BatchLoader(ds, 4, seed=999)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a trainer re-selecting the same epoch must not restart it
    rest = _indices(resumed)
    assert consumed + rest == full
    assert resumed.state_dict()["epoch"] == 3 and resumed.state_dict()["position"] == 0


def test_resume_rejects_changed_data():
    loader = BatchLoader(ArrayDataset(30), 4)
    state = dict(loader.state_dict(), position=2)
    with pytest.raises(UserError, match="num_samples"):
        BatchLoader(ArrayDataset(31), 4).load_state_dict(state)


@pytest.mark.parametrize("n", [24, 27])
def test_sharding_disjoint_and_covering(n):
    ds, world = ArrayDataset(n), 3
    loaders = [BatchLoader(ds, 2, seed=4, rank=r, world_size=world) for r in range(world)]
    per_rank = [_indices(loader) for loader in loaders]
    assert len({len(batches) for batches in per_rank}) == 1
    for step in zip(*per_rank):
        assert len({len(b) for b in step}) == 1  # equal-size shards every step
    flat = [i for batches in per_rank for b in batches for i in b]
    assert set(flat) == set(range(n))
    if n % (2 * world) == 0:
        assert len(flat) == n  # disjoint
    # The shards of one step are consecutive slices of the global order.
    global_order = BatchLoader(ds, 2 * world, seed=4).epoch_order(0)
    assert per_rank[0][0] + per_rank[1][0] + per_rank[2][0] == global_order[:6].tolist()


def test_loader_uses_worker_threads():
    seen = set()

    class Recording(ArrayDataset):
        def __getitem__(self, i):
            seen.add(threading.current_thread().name)
            return super().__getitem__(i)

    _indices(BatchLoader(Recording(16), 4, num_workers=2))
    assert all(name.startswith("batch-loader") for name in seen)


# -- synthetic data -----------------------------------------------------------------------------


def _tree_digest(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_polyp_sample_deterministic():
    a = render_polyp_sample(np.random.default_rng(3), 64, 80)
    b = render_polyp_sample(np.random.default_rng(3), 64, 80)
    assert a[0].shape == (64, 80, 3) and a[0].dtype == np.uint8
    assert a[1].shape == (64, 80) and set(np.unique(a[1])) == {0, 255}
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for seed in range(10):
        _, mask = render_polyp_sample(np.random.default_rng(seed), 64, 64)
        assert 0.01 < (mask > 0).mean() < 0.6


def test_make_synthetic_polyps_layout_determinism_and_reuse(tmp_path):
    kwargs = dict(n_train=4, n_test=2, size=((48, 56), (48, 64)), seed=11)
    root = make_synthetic_polyps(tmp_path / "a", **kwargs)
    other = make_synthetic_polyps(tmp_path / "b", **kwargs)
    assert _tree_digest(root) == _tree_digest(other)
    assert (root / MANIFEST_NAME).is_file()
    pairs = pair_by_stem(*find_split(root / "TrainDataset")).pairs
    assert len(pairs) == 4 and check_pairs(pairs) == pairs
    assert list(find_test_sets(root / "TestDataset")) == ["Synthetic"]
    for _, mask_path in pairs:
        assert read_mask(mask_path).sum() > 0
    stamp = (root / "TrainDataset" / "images" / "00000.png").stat().st_mtime_ns
    make_synthetic_polyps(root, **kwargs)  # complete and matching: reused untouched
    assert (root / "TrainDataset" / "images" / "00000.png").stat().st_mtime_ns == stamp
    make_synthetic_polyps(root, **dict(kwargs, seed=12))  # our own dataset, other params: replaced
    assert _tree_digest(root) != _tree_digest(other)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers  # no temporary folders left behind


def test_make_synthetic_polyps_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        make_synthetic_polyps(tmp_path, n_train=1, n_test=1, size=(48, 48))
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_synthetic_files_do_not_depend_on_worker_processes(tmp_path):
    kwargs = dict(n_train=64, n_test=1, size=(32, 32), seed=2)  # 65 images: enough to use processes
    serial = make_synthetic_polyps(tmp_path / "serial", workers=1, **kwargs)
    parallel = make_synthetic_polyps(tmp_path / "parallel", workers=2, **kwargs)
    assert _tree_digest(serial) == _tree_digest(parallel)


def test_data_layer_does_not_import_jittor():
    import subprocess
    import sys

    code = "import sys, jittor_pranet.data; sys.exit('jittor' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0
