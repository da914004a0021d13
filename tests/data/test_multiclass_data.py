"""Multi-class data layer: layouts, case-level splits, label checks and remaps, augmentation, volumes."""
import json

import numpy as np
import pytest
from PIL import Image

from jittor_pranet.data.loader import BatchLoader
from jittor_pranet.data.medical_io import read_h5, read_npz, write_h5, write_npz
from jittor_pranet.data.multiclass import (
    ACDC_CLASSES,
    SYNAPSE_14_TO_8,
    SYNAPSE_CLASSES,
    SliceAugment,
    case_of_volume,
    parse_slice_name,
    split_cases,
)
from jittor_pranet.data.multiclass_layouts import load_multiclass_data
from jittor_pranet.data.synthetic_organs import SYNTHETIC_ORGANS, make_synthetic_organs, render_organ_volume
from jittor_pranet.errors import UserError


def _synapse(root, cases=("case0005", "case0006", "case0007", "case0009"), depth=3, hw=(20, 24), seed=0,
             test=("case0001",), max_label=8):
    rng = np.random.default_rng(seed)
    for case in cases:
        for k in range(depth):
            write_npz(root / "train_npz" / f"{case}_slice{k:03d}.npz", rng.random(hw, dtype=np.float32),
                      rng.integers(0, max_label + 1, hw).astype(np.uint8))
    for case in test:
        write_h5(root / "test_vol_h5" / f"{case}.npy.h5", rng.random((depth,) + hw, dtype=np.float32),
                 rng.integers(0, max_label + 1, (depth,) + hw).astype(np.uint8))
    return root


def test_slice_and_volume_names_give_case_and_volume():
    assert parse_slice_name("case0005_slice012") == ("case0005", "case0005", 12)
    assert parse_slice_name("case_019_sliceED_3") == ("case_019_ED", "case_019", 3)
    assert parse_slice_name("patient001_frame01_slice_4") == ("patient001_frame01", "patient001", 4)
    assert parse_slice_name("img_without_index") is None
    assert case_of_volume("patient001_frame12") == "patient001"
    assert case_of_volume("case_002_volume_ES") == "case_002"
    assert case_of_volume("case0001") == "case0001"


def test_split_cases_is_seeded_order_free_and_disjoint():
    cases = [f"case{i:04d}" for i in range(10)]
    train, val = split_cases(cases, 0.2, seed=3)
    assert (train, val) == split_cases(list(reversed(cases)) * 2, 0.2, seed=3)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == cases
    assert any(split_cases(cases, 0.2, seed=s)[1] != val for s in range(4, 10))
    assert len(split_cases(cases[:2], 0.01)[1]) == 1  # each side keeps a case
    with pytest.raises(UserError, match="val_fraction"):
        split_cases(cases, 1.0)


def test_synapse_layout_validation_is_whole_cases(tmp_path):
    root = _synapse(tmp_path)
    data = load_multiclass_data(root, val_fraction=0.25, seed=0)
    assert data.kind == "synapse" and data.class_names == SYNAPSE_CLASSES.names and data.num_classes == 9
    val_cases = {v.case for v in data.val_volumes}
    assert len(val_cases) == 1 and not val_cases & set(data.train_cases)
    assert len(data.train_slices) == 9 and [len(v.slices) for v in data.val_volumes] == [3]
    assert [v.name for v in data.test_volumes] == ["case0001"]
    again = load_multiclass_data(root, val_fraction=0.25, seed=0)
    assert [s.path for s in again.train_slices] == [s.path for s in data.train_slices]
    # a validation volume stacks its slices in index order
    vol = next(data.iter_volumes("val"))
    first = read_npz(data.val_volumes[0].slices[0].path)
    assert vol.image.shape == (3, 20, 24) and np.array_equal(vol.image[0], first[0])


def test_case_in_training_and_test_is_an_error(tmp_path):
    root = _synapse(tmp_path, test=("case0001", "case0006"))
    with pytest.raises(UserError, match=r"in both the training and the test set: case0006"):
        load_multiclass_data(root)


def test_synapse_list_files_select_files(tmp_path):
    root = _synapse(tmp_path)
    lists = root / "lists" / "lists_Synapse"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("case0005_slice000\ncase0006_slice001\n")
    data = load_multiclass_data(root, val_fraction=0.0)
    assert [s.name for s in data.train_slices] == ["case0005_slice000", "case0006_slice001"]
    (lists / "train.txt").write_text("case0099_slice000\n")
    with pytest.raises(UserError, match="case0099_slice000"):
        load_multiclass_data(root)


def test_label_out_of_range_names_file_and_value_and_remap_fixes_it(tmp_path):
    root = tmp_path / "d"
    write_npz(root / "train_npz" / "case0005_slice000.npz", np.zeros((8, 8), np.float32),
              np.array([[0, 11, 9, 5, 6, 13, 1, 2]] * 8, dtype=np.uint8))
    data = load_multiclass_data(root, val_fraction=0.0)
    with pytest.raises(UserError, match=r"case0005_slice000\.npz.*label value 13 >= num_classes 9.*synapse14"):
        data.train_dataset(8, augment=False)[0]
    remapped = load_multiclass_data(root, label_remap="synapse14", val_fraction=0.0)
    label = remapped.train_dataset(8, augment=False)[0]["label"]
    assert label[0].tolist() == [0, 5, 0, 0, 6, 0, 1, 2]
    assert SYNAPSE_14_TO_8.tolist() == [0, 1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 5, 0, 0]


def test_dataset_json_with_14_labels_remaps_automatically(tmp_path):
    root = _synapse(tmp_path, max_label=13)
    (root / "dataset.json").write_text(json.dumps({"labels": "synapse14", "class_names": ["x"] * 13}))
    data = load_multiclass_data(root, val_fraction=0.0)
    assert data.class_names == SYNAPSE_CLASSES.names
    assert max(int(data.train_dataset(16, augment=False)[i]["label"].max()) for i in range(3)) <= 8
    raw = load_multiclass_data(root, label_remap="none", val_fraction=0.0)
    assert raw.num_classes == 14


def test_bad_files_give_one_clear_line(tmp_path):
    root = tmp_path / "d"
    (root / "train_npz").mkdir(parents=True)
    np.savez(root / "train_npz" / "case0001_slice000.npz", data=np.zeros((4, 4)), seg=np.zeros((4, 4)))
    data = load_multiclass_data(root, val_fraction=0.0)
    with pytest.raises(UserError, match=r"no image array \(looked for 'image' or 'img'; found keys: data, seg\)"):
        data.train_dataset(8)[0]
    write_npz(root / "train_npz" / "case0001_slice000.npz", np.zeros((4, 4), np.float32), np.zeros((4, 5), np.uint8))
    with pytest.raises(UserError, match=r"image \(4, 4\) and label \(4, 5\) differ in shape"):
        data.train_dataset(8)[0]
    write_h5(root / "test_vol_h5" / "case0002.npy.h5", np.zeros((0, 4, 4), np.float32), np.zeros((0, 4, 4), np.uint8))
    data = load_multiclass_data(root, val_fraction=0.0)
    with pytest.raises(UserError, match=r"case0002\.npy\.h5 is empty"):
        next(data.iter_volumes("test"))


def test_unknown_layout_lists_what_was_found(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(UserError, match=r"found: readme\.txt, stuff/\); expected one of: train_npz/"):
        load_multiclass_data(tmp_path)


def test_acdc_npz_layout_and_case_in_train_and_valid(tmp_path):
    rng = np.random.default_rng(0)
    for folder, case in (("train", "case_001"), ("train", "case_004"), ("valid", "case_019")):
        for phase in ("ED", "ES"):
            for k in range(2):
                write_npz(tmp_path / folder / f"{case}_slice{phase}_{k}.npz", rng.random((12, 10), dtype=np.float32),
                          rng.integers(0, 4, (12, 10)).astype(np.uint8), image_key="img")
    write_npz(tmp_path / "test" / "case_002_volume_ED.npz", rng.random((3, 12, 10), dtype=np.float32),
              rng.integers(0, 4, (3, 12, 10)).astype(np.uint8), image_key="img")
    data = load_multiclass_data(tmp_path)
    assert data.kind == "acdc_npz" and data.class_names == ACDC_CLASSES.names
    assert [v.name for v in data.val_volumes] == ["case_019_ED", "case_019_ES"]
    assert data.train_cases == ["case_001", "case_004"] and data.val_source == "the layout's validation set"
    vol = next(data.iter_volumes("test"))
    assert vol.image.shape == (3, 12, 10) and vol.spacing is None
    write_npz(tmp_path / "valid" / "case_004_sliceED_0.npz", np.zeros((12, 10), np.float32),
              np.zeros((12, 10), np.uint8), image_key="img")
    with pytest.raises(UserError, match=r"1 case\(s\) in both the training and the validation set: case_004"):
        load_multiclass_data(tmp_path)


def test_acdc_h5_layout_with_and_without_lists(tmp_path):
    rng = np.random.default_rng(1)
    for vol in ("patient001_frame01", "patient003_frame01", "patient002_frame01", "patient002_frame12"):
        image = rng.random((2, 8, 8), dtype=np.float32)
        label = rng.integers(0, 4, (2, 8, 8)).astype(np.uint8)
        write_h5(tmp_path / "data" / f"{vol}.h5", image, label, spacing=(10.0, 1.5, 1.5))
        if not vol.startswith("patient002"):
            for k in range(2):
                write_h5(tmp_path / "data" / "slices" / f"{vol}_slice_{k}.h5", image[k], label[k])
    data = load_multiclass_data(tmp_path, val_fraction=0.5, seed=0)
    assert data.kind == "acdc_h5"
    assert sorted(v.name for v in data.test_volumes) == ["patient002_frame01", "patient002_frame12"]
    assert len(data.val_volumes) == 1 and len(data.train_slices) == 2
    vols = list(data.iter_volumes("test"))
    assert vols[0].spacing == (10.0, 1.5, 1.5) and vols[0].label.dtype == np.int64
    (tmp_path / "train_slices.list").write_text("patient001_frame01_slice_0\npatient001_frame01_slice_1\n")
    (tmp_path / "val.list").write_text("patient003_frame01\n")
    (tmp_path / "test.list").write_text("patient002_frame12\n")
    listed = load_multiclass_data(tmp_path)
    assert [v.name for v in listed.val_volumes] == ["patient003_frame01"]
    assert [v.name for v in listed.test_volumes] == ["patient002_frame12"] and len(listed.train_slices) == 2


def test_custom_png_labels_values_palette_and_colours(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    label = np.zeros((10, 12), np.uint8)
    label[2:5, 3:7], label[6:9, 1:4] = 1, 2
    Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(label).save(tmp_path / "labels" / "a.png")
    with pytest.raises(UserError, match="class names"):
        load_multiclass_data(tmp_path)
    data = load_multiclass_data(tmp_path, class_names=["cat", "dog"], val_fraction=0.0)
    sample = data.train_dataset(10, augment=False)[0]
    assert sample["image"].shape == (1, 10, 10) and set(np.unique(sample["label"])) == {0, 1, 2}
    pal = Image.fromarray(label, mode="L").convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.save(tmp_path / "labels" / "a.png")
    from scipy import ndimage
    indexed = load_multiclass_data(tmp_path, class_names=["cat", "dog"], val_fraction=0.0)
    assert np.array_equal(indexed.train_dataset(12, augment=False)[0]["label"],
                          ndimage.zoom(label, (12 / 10, 1.0), order=0))  # palette indices are the classes
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)[label]
    Image.fromarray(colours).save(tmp_path / "labels" / "a.png")
    with pytest.raises(UserError, match="no palette given"):
        load_multiclass_data(tmp_path, class_names=["cat", "dog"]).train_dataset(12)[0]
    coloured = load_multiclass_data(tmp_path, class_names=["cat", "dog"], val_fraction=0.0,
                                    palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]], channels=3)
    sample = coloured.train_dataset(10, augment=False).get(0)
    assert sample["image"].shape == (3, 10, 10)
    assert np.array_equal(sample["label"], ndimage.zoom(label, (1.0, 10 / 12), order=0))
    Image.fromarray(np.where(label == 2, 3, label).astype(np.uint8)).save(tmp_path / "labels" / "a.png")
    with pytest.raises(UserError, match=r"labels/a\.png: label value 3 >= num_classes 3"):
        load_multiclass_data(tmp_path, class_names=["cat", "dog"]).train_dataset(12)[0]


def test_augment_is_seeded_and_moves_image_and_label_together():
    aug = SliceAugment()
    label = np.zeros((16, 20), np.int64)
    label[2:6, 3:12], label[9:14, 10:18] = 1, 2
    image = label.astype(np.float32) * 0.5
    outcomes = set()
    for seed in range(24):
        i1, l1 = aug(image, label, np.random.default_rng(seed))
        i2, l2 = aug(image, label, np.random.default_rng(seed))
        assert np.array_equal(i1, i2) and np.array_equal(l1, l2)
        assert np.array_equal(i1, l1.astype(np.float32) * 0.5)  # same geometric transform on both
        assert set(np.unique(l1)) <= {0, 1, 2}
        outcomes.add((l1.shape, l1.tobytes()))
    assert len(outcomes) > 5  # rot90/flip and rotations really happen


def test_loader_batches_are_reproducible(tmp_path):
    data = load_multiclass_data(_synapse(tmp_path), val_fraction=0.0)
    ds = data.train_dataset(16)
    first = [b for b in BatchLoader(ds, 4, seed=5, num_workers=2)]
    second = [b for b in BatchLoader(ds, 4, seed=5, num_workers=0)]
    assert len(first) == 3
    for a, b in zip(first, second):
        assert a["image"].shape == (4, 1, 16, 16) and a["label"].shape == (4, 16, 16)
        assert a["image"].dtype == np.float32 and a["label"].dtype == np.int64
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["label"], b["label"])


def test_synthetic_organs_deterministic_with_every_class(tmp_path):
    image, label = render_organ_volume(seed=3, case_index=1, size=64, depth=6)
    again = render_organ_volume(seed=3, case_index=1, size=64, depth=6)
    other = render_organ_volume(seed=4, case_index=1, size=64, depth=6)
    assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    assert not np.array_equal(label, other[1])
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
    assert set(np.unique(label)) == set(range(len(SYNTHETIC_ORGANS) + 1))
    # organs differ in mean intensity, so the task is not a single threshold away from trivial
    means = [float(image[label == c].mean()) for c in range(1, len(SYNTHETIC_ORGANS) + 1)]
    assert min(np.diff(sorted(means))) > 0.03

    out = tmp_path / "syn"
    manifest = make_synthetic_organs(out, seed=3, train_cases=2, test_cases=1, size=48, depth=4)
    data = load_multiclass_data(out, val_fraction=0.0)
    assert data.class_names == SYNTHETIC_ORGANS and len(data.train_slices) == 8
    vol = next(data.iter_volumes("test"))
    assert vol.spacing == (3.0, 2.5, 2.5)
    assert np.array_equal(vol.label, render_organ_volume(3, 2, size=48, depth=4)[1])
    assert make_synthetic_organs(out, seed=3, train_cases=2, test_cases=1, size=48, depth=4) == manifest
    with pytest.raises(UserError, match="different dataset"):
        make_synthetic_organs(out, seed=4, train_cases=2, test_cases=1, size=48, depth=4)


def test_h5_spacing_round_trip(tmp_path):
    path = write_h5(tmp_path / "v.h5", np.ones((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.uint8), spacing=(2, 1, 0.5))
    image, label, spacing = read_h5(path)
    assert image.shape == (2, 3, 4) and spacing == (2.0, 1.0, 0.5)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_acdc_h5_volumes_beside_the_slices_folder(tmp_path):
    """<root>/slices/*_slice_<k>.h5 with the volumes in <root> itself: the volumes are found (they were
    missed when only a data/ or volumes/ folder was searched), test = patients without training slices."""
    rng = np.random.default_rng(2)
    for vol in ("patient001_frame01", "patient002_frame01", "patient003_frame01"):
        image = rng.random((2, 8, 8), dtype=np.float32)
        label = rng.integers(0, 4, (2, 8, 8)).astype(np.uint8)
        write_h5(tmp_path / f"{vol}.h5", image, label)
        if vol != "patient003_frame01":
            for k in range(2):
                write_h5(tmp_path / "slices" / f"{vol}_slice_{k}.h5", image[k], label[k])
    data = load_multiclass_data(tmp_path, val_fraction=0.5, seed=0)
    assert data.kind == "acdc_h5"
    assert [v.name for v in data.test_volumes] == ["patient003_frame01"]
    assert len(data.val_volumes) == 1 and len(data.train_slices) == 2

