"""Finding image/mask pairs on disk and turning them into normalised training samples.

Upstream facts this module follows (``binary_seg/utils/dataloader.py`` of PraNet-V2, identical in
PraNet-V1):

* images: PIL ``convert('RGB')`` -> ``Resize((352, 352))`` (PIL bilinear, which filters over a
  scale-dependent support when shrinking, unlike ``cv2.INTER_LINEAR``) -> ``ToTensor`` (/255) ->
  ImageNet ``Normalize``;
* masks: PIL ``convert('L')`` -> the same bilinear ``Resize`` -> ``ToTensor``, so upstream training
  targets are *soft* values in [0, 1] at the object boundary, and a JPEG mask's compression noise
  is passed through unchanged (no thresholding anywhere);
* images and masks are paired by sorting both folders and zipping them, and pairs whose sizes
  differ are dropped silently. We pair by file stem and report mismatches instead.

What :class:`SegmentationDataset` does with masks, and why, is documented on the class.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from jittor_pranet.data.io import PathLike, image_size, list_images, read_image_rgb, read_mask
from jittor_pranet.errors import UserError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: Test-time (and default training) input side, as in the official scripts.
DEFAULT_SIZE = 352

#: (image folder, mask folder) names accepted inside a split folder, in order of preference:
#: PraNet's scripts (plural), PraNet's published TrainDataset archive (singular), and the
#: original CVC-ClinicDB release. Kvasir-SEG's own archive uses the plural layout (with .jpg masks).
SPLIT_LAYOUTS: Tuple[Tuple[str, str], ...] = (
    ("images", "masks"),
    ("image", "mask"),
    ("Original", "Ground Truth"),
)

Pair = Tuple[Path, Path]


def _layouts_text() -> str:
    return ", ".join(f"{img}/ + {msk}/" for img, msk in SPLIT_LAYOUTS)


def _match_layout(root: Path) -> Optional[Tuple[Path, Path]]:
    for img_name, mask_name in SPLIT_LAYOUTS:
        img_dir, mask_dir = root / img_name, root / mask_name
        if img_dir.is_dir() and mask_dir.is_dir():
            return img_dir, mask_dir
    return None


def find_split(root: PathLike) -> Tuple[Path, Path]:
    """(image folder, mask folder) of a dataset split such as ``TrainDataset`` or ``Kvasir-SEG``.

    Raises a UserError naming the path and the accepted layouts when the folders are missing or
    hold no images, since that is almost always a wrong ``--data`` path or a half-extracted archive.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root} (expected one of: {_layouts_text()})")
    match = _match_layout(root)
    if match is None:
        hint = _subfolder_hint(root)
        raise UserError(
            f"no image/mask folders in {root}; accepted layouts: {_layouts_text()}{hint}"
        )
    for folder in match:
        if not list_images(folder)[0]:
            raise UserError(f"no image files in {folder}; accepted layouts: {_layouts_text()}")
    return match


def _subfolder_hint(root: Path) -> str:
    """Name child folders that have a layout (the user passed ``data/``, not ``data/TrainDataset``)."""
    candidates = sorted(child.name for child in root.iterdir() if child.is_dir() and _match_layout(child))
    if not candidates:
        return ""
    shown = ", ".join(str(root / name) for name in candidates[:3])
    return f" (found it in: {shown})"


def find_test_sets(root: PathLike) -> Dict[str, Tuple[Path, Path]]:
    """Test sets under a ``TestDataset`` tree: ``{name: (image folder, mask folder)}``, sorted by name.

    ``root/<set>/{images,masks}`` is the official layout; a ``root`` that is itself a split is
    accepted as one set named after the folder. Sub-folders that match no layout are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"test dataset folder not found: {root}")
    if _match_layout(root) is not None:
        return {root.name: find_split(root)}
    sets = {}
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.is_dir() and not child.name.startswith(".") and _match_layout(child) is not None:
            sets[child.name] = find_split(child)
    if not sets:
        raise UserError(
            f"no test sets in {root}: expected {root}/<set name>/ holding one of: {_layouts_text()}"
        )
    return sets


@dataclass
class PairReport:
    """Result of matching images to masks by file stem; ``summary()`` is meant for the log."""

    pairs: List[Pair]
    unpaired_images: List[Path] = field(default_factory=list)
    unpaired_masks: List[Path] = field(default_factory=list)
    skipped_files: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.pairs)} image/mask pairs"]
        for label, paths in (("images without mask", self.unpaired_images),
                             ("masks without image", self.unpaired_masks)):
            if paths:
                parts.append(f"{len(paths)} {label} (e.g. {_names(paths, 3)})")
        if self.skipped_files:
            parts.append(f"{self.skipped_files} non-image files skipped")
        return "; ".join(parts)


def _names(paths: Sequence[Path], limit: int) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (", ..." if len(paths) > limit else "")


def _by_stem(paths: List[Path], folder: Path) -> Dict[str, Path]:
    table: Dict[str, Path] = {}
    for path in paths:
        if path.stem in table:
            raise UserError(
                f"two files with the same name stem in {folder}: {table[path.stem].name} and {path.name}"
            )
        table[path.stem] = path
    return table


def pair_by_stem(img_dir: PathLike, mask_dir: PathLike) -> PairReport:
    """Match images to masks with the same file stem (``a.jpg`` <-> ``a.png``); pairs sorted by stem.

    Unlike upstream's sort-and-zip this never pairs the wrong files when one folder has an extra
    file. Raises UserError when nothing pairs up at all.
    """
    img_dir, mask_dir = Path(img_dir), Path(mask_dir)
    images, skipped_images = list_images(img_dir)
    masks, skipped_masks = list_images(mask_dir)
    image_table, mask_table = _by_stem(images, img_dir), _by_stem(masks, mask_dir)
    common = sorted(image_table.keys() & mask_table.keys())
    report = PairReport(
        pairs=[(image_table[s], mask_table[s]) for s in common],
        unpaired_images=[image_table[s] for s in sorted(image_table.keys() - mask_table.keys())],
        unpaired_masks=[mask_table[s] for s in sorted(mask_table.keys() - image_table.keys())],
        skipped_files=skipped_images + skipped_masks,
    )
    if not report.pairs:
        raise UserError(
            f"no image in {img_dir} has a mask with the same name in {mask_dir}: {report.summary()}"
        )
    return report


#: what :func:`check_pairs` does with an image and mask of different sizes (``data.on_size_mismatch``)
SIZE_MISMATCH_POLICIES = ("error", "drop")


def check_pairs(pairs: Sequence[Pair], on_mismatch: str = "error") -> List[Pair]:
    """Pairs whose image and mask have the same size; the others raise (default) or are dropped.

    Upstream drops such pairs without a word; a silent drop hides broken exports, so by default we
    stop and name the files. Only file headers are read, so this is cheap.
    """
    if on_mismatch not in SIZE_MISMATCH_POLICIES:
        raise ValueError(f"on_mismatch must be {' or '.join(map(repr, SIZE_MISMATCH_POLICIES))}, got {on_mismatch!r}")
    kept, bad = [], []
    for image_path, mask_path in _as_paths(pairs):
        img_hw, mask_hw = image_size(image_path), image_size(mask_path)
        if img_hw == mask_hw:
            kept.append((image_path, mask_path))
        else:
            bad.append(f"{image_path.name} (image {_hw(img_hw)}, mask {mask_path.name} {_hw(mask_hw)})")
    if bad and on_mismatch == "error":
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        raise UserError(
            f"{len(bad)} image/mask pairs differ in size: {shown} "
            "(fix them, or drop them with on_mismatch='drop')"
        )
    if bad:
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        warnings.warn(f"dropped {len(bad)} image/mask pairs whose sizes differ: {shown}", stacklevel=2)
    return kept


def _as_paths(pairs: Sequence[Tuple[PathLike, PathLike]]) -> List[Pair]:
    return [(Path(image), Path(mask)) for image, mask in pairs]


def _hw(hw: Tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def split_train_val(
    pairs: Sequence[Pair], val_fraction: float, seed: int = 0
) -> Tuple[List[Pair], List[Pair]]:
    """Seeded split of *training* pairs into (train, val), both sorted by stem.

    Model selection must use this validation split, never a test set (upstream picks ``best.pth``
    by test-set Dice). The result depends only on the set of pairs and the seed, not on their order.
    At least one pair ends up on each side whenever ``0 < val_fraction`` and there are two pairs.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(_as_paths(pairs), key=lambda p: (p[0].stem, str(p[0])))
    n_val = int(round(len(ordered) * val_fraction))
    if val_fraction > 0 and len(ordered) >= 2:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    val_idx = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(ordered) if i not in val_idx]
    val = [p for i, p in enumerate(ordered) if i in val_idx]
    return train, val


def discover_pairs(root: PathLike, on_mismatch: str = "error") -> Tuple[List[Pair], PairReport]:
    """find_split + pair_by_stem + check_pairs in one call, for the trainer and the CLI."""
    img_dir, mask_dir = find_split(root)
    report = pair_by_stem(img_dir, mask_dir)
    return check_pairs(report.pairs, on_mismatch=on_mismatch), report


# ---------------------------------------------------------------------------------------------
# Per-sample processing


def resize_image(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB resized to size x size with PIL bilinear: bit-identical to torchvision's Resize on PIL."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


def resize_mask(mask01: np.ndarray, size: int) -> np.ndarray:
    """{0,1} mask resized like upstream (0/255 'L' image, PIL bilinear), returned as float32 in [0,1]."""
    gray = (mask01 > 0.5).astype(np.uint8) * 255
    if gray.shape[0] != size or gray.shape[1] != size:
        gray = np.asarray(Image.fromarray(gray).resize((size, size), Image.BILINEAR))
    return gray.astype(np.float32) / 255.0


def normalize_image(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32: /255 then ImageNet mean/std, as torchvision ToTensor+Normalize."""
    scaled = rgb.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


def denormalize_image(chw: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_image` (for visualising batches), HxWx3 uint8."""
    rgb = chw.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


@dataclass
class Augment:
    """Optional training augmentations (all off in the official recipe, so off by default).

    Probabilities per sample; jitter amounts are maximal relative changes (0.1 -> factor in
    [0.9, 1.1]); ``hue`` is a maximal shift as a fraction of the colour wheel. Geometric ones are
    applied to image and mask alike, colour ones to the image only.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.5
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.0

    def __call__(
        self, rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> Tuple[np.ndarray, np.ndarray]:
        rgb, mask = self._geometric(rgb, mask, rng)
        return self._colour(rgb, rng), mask

    def _geometric(self, rgb, mask, rng):
        if rng.random() < self.hflip:
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        if rng.random() < self.vflip:
            rgb, mask = rgb[::-1], mask[::-1]
        if rng.random() < self.rot90:
            k = int(rng.integers(1, 4))
            rgb, mask = np.rot90(rgb, k), np.rot90(mask, k)
        return np.ascontiguousarray(rgb), np.ascontiguousarray(mask)

    def _colour(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not (self.brightness or self.contrast or self.saturation or self.hue):
            return rgb
        amounts = np.array([self.brightness, self.contrast, self.saturation, self.hue])
        factors = rng.uniform(-1.0, 1.0, size=4) * amounts
        img = rgb.astype(np.float32)
        img = img * (1.0 + factors[0])
        gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        img = (img - gray.mean()) * (1.0 + factors[1]) + gray.mean()
        gray = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
        img = (img - gray) * (1.0 + factors[2]) + gray
        out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if factors[3]:
            out = _shift_hue(out, float(factors[3]))
        return out


def _shift_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    import cv2  # local: only needed for the (rarely enabled) hue jitter

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + int(round(shift * 180))) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


class SegmentationDataset:
    """Image/mask pairs -> dict(image=3xSxS float32, mask=1xSxS float32, name=stem).

    Images follow the official preprocessing exactly (PIL bilinear to ``size`` x ``size``, /255,
    ImageNet normalisation). Masks: the file is first binarised at ``mask_threshold`` (removing
    JPEG noise that upstream feeds to the loss as-is), then resized exactly as upstream resizes
    masks (0/255 image, PIL bilinear), which gives soft values at the boundary; by default these are
    binarised again at 0.5 so the target is in {0, 1}. ``soft_mask=True`` keeps the soft values,
    which equal upstream's targets for a clean 0/255 mask.

    ``__getitem__`` never augments; :meth:`get` with a ``numpy.random.Generator`` does (when
    ``augment`` is set), which is how :class:`~jittor_pranet.data.loader.BatchLoader` calls it with
    one generator per (seed, epoch, index) so that results do not depend on thread scheduling.
    """

    def __init__(self, pairs: Sequence[Pair], size: int = DEFAULT_SIZE, mask_threshold: int = 128,
                 augment: Optional[Augment] = None, return_background: bool = False,
                 soft_mask: bool = False) -> None:
        if size < 8:
            raise UserError(f"image size must be at least 8 pixels, got {size}")
        self.pairs = _as_paths(pairs)
        self.size = int(size)
        self.mask_threshold = mask_threshold
        self.augment = augment
        self.return_background = return_background
        self.soft_mask = soft_mask

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, object]:
        return self.get(index)

    def get(self, index: int, rng: Optional[np.random.Generator] = None) -> Dict[str, object]:
        """One sample; augmented only when both ``self.augment`` and ``rng`` are given."""
        image_path, mask_path = self.pairs[index]
        rgb = read_image_rgb(image_path)
        mask = read_mask(mask_path, self.mask_threshold)
        if rgb.shape[:2] != mask.shape:
            raise UserError(
                f"image {image_path.name} is {_hw(rgb.shape[:2])} "
                f"but its mask {mask_path} is {_hw(mask.shape)}"
            )
        rgb = resize_image(rgb, self.size)
        mask = resize_mask(mask, self.size)
        if not self.soft_mask:
            mask = (mask >= 0.5).astype(np.float32)
        if self.augment is not None and rng is not None:
            rgb, mask = self.augment(rgb, mask, rng)
        sample: Dict[str, object] = {
            "image": normalize_image(rgb),
            "mask": mask[None].astype(np.float32, copy=False),
            "name": image_path.stem,
        }
        if self.return_background:
            sample["background"] = 1.0 - sample["mask"]
        return sample


def preprocess_rgb(rgb: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Official test-time preprocessing of an RGB uint8 image: 1x3xSxS float32."""
    return normalize_image(resize_image(rgb, size))[None]


def load_for_inference(
    path: PathLike, size: int = DEFAULT_SIZE
) -> Tuple[np.ndarray, Tuple[int, int], np.ndarray]:
    """(1x3xSxS float32 input, original (H, W), original RGB uint8) for one image file.

    The prediction is resized back to (H, W) by the caller, as the official test script resizes it
    to the ground-truth size (which equals the image size).
    """
    rgb = read_image_rgb(path)
    return preprocess_rgb(rgb, size), (int(rgb.shape[0]), int(rgb.shape[1])), rgb

