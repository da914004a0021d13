"""Data layer: reading, pairing, preprocessing and batching images and masks (numpy only, no Jittor).

Kept framework-free so that it can be tested and used (e.g. by evaluation tools) without importing
Jittor; the trainer turns the numpy batches into Jittor variables.
"""
from jittor_pranet.data.datasets import (
    DEFAULT_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SPLIT_LAYOUTS,
    Augment,
    PairReport,
    SegmentationDataset,
    check_pairs,
    denormalize_image,
    discover_pairs,
    find_split,
    find_test_sets,
    load_for_inference,
    normalize_image,
    pair_by_stem,
    preprocess_rgb,
    resize_image,
    resize_mask,
    split_train_val,
)
from jittor_pranet.data.io import (
    IMAGE_EXTENSIONS,
    image_size,
    list_images,
    read_image_rgb,
    read_mask,
    read_mask_gray,
)
from jittor_pranet.data.loader import BatchLoader, collate
from jittor_pranet.data.synthetic import make_synthetic_polyps, render_polyp_sample

__all__ = [
    "IMAGE_EXTENSIONS", "image_size", "list_images", "read_image_rgb", "read_mask", "read_mask_gray",
    "DEFAULT_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "SPLIT_LAYOUTS", "Augment", "PairReport",
    "SegmentationDataset", "check_pairs", "denormalize_image", "discover_pairs", "find_split",
    "find_test_sets", "load_for_inference", "normalize_image", "pair_by_stem", "preprocess_rgb",
    "resize_image", "resize_mask", "split_train_val", "BatchLoader", "collate",
    "make_synthetic_polyps", "render_polyp_sample",
]
