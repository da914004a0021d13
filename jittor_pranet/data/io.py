"""Reading images and masks from disk into plain numpy arrays.

Every loader in the project goes through these two functions so that odd files (grayscale, RGBA,
palette, 16-bit, JPEG masks) are handled the same way everywhere, and a broken file produces one
readable error naming it instead of a traceback from deep inside PIL.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Tuple, Union

import cv2
import numpy as np
from PIL import Image

from jittor_pranet.errors import UserError

PathLike = Union[str, "os.PathLike[str]"]

#: File name endings (lower case) that count as images; everything else in a folder is skipped.
IMAGE_EXTENSIONS: Tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm",
                                     ".ppm")

# Lossy formats: a mask stored this way carries compression noise around 0 and 255.
_LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")

# Formats whose every common variant PIL decodes: when PIL fails on one, the file is broken.
_PIL_AUTHORITATIVE = (".png", ".jpg", ".jpeg", ".bmp")


def is_image_file(path: PathLike) -> bool:
    """True for a visible file whose extension is one of :data:`IMAGE_EXTENSIONS`."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: PathLike) -> Tuple[List[Path], int]:
    """Image files directly inside ``folder``, sorted by name, and how many other files were skipped.

    Hidden files (``.DS_Store``, ``._foo.png`` from macOS archives) and non-image files are skipped
    and counted, so that callers can tell the user that something was ignored. Sub-folders are
    neither listed nor counted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    images: List[Path] = []
    skipped = 0
    for entry in os.scandir(folder):
        if entry.is_dir():
            continue
        if is_image_file(entry.name):
            images.append(folder / entry.name)
        else:
            skipped += 1
    images.sort(key=lambda p: p.name)
    return images, skipped


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale integer or float pixel data of any depth to uint8 (16-bit: /257; floats in [0,1]: *255)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64))
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    peak = int(array.max()) if array.size else 0
    if peak <= 255:
        return np.clip(array, 0, 255).astype(np.uint8)
    # 16-bit data (or 32-bit integers holding 16-bit values, PIL's mode "I"): map 0..65535 to 0..255.
    top = 65535.0 if peak <= 65535 else float(peak)
    return np.clip(np.rint(array.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """HxW or HxWxC uint8 array from a PIL image of any mode; alpha and palettes are resolved here."""
    mode = img.mode
    if mode == "P":
        # Palette (with or without transparency) -> its colours; the alpha it may carry is dropped.
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("1", "L", "RGB"):
        pass
    elif mode in ("LA", "La"):
        img = img.convert("L")
    elif mode in ("PA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    # Modes "I", "I;16*", "F" are kept as raw numbers and scaled by _to_uint8 (PIL's own convert
    # would clip 16-bit values to 255 instead of scaling them).
    array = np.asarray(img)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    return _to_uint8(array)


def _open_with_pil(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return _pil_to_array(img)


def _open_with_cv2(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None:
        raise ValueError("cv2 cannot decode it")
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 4:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
        elif channels == 3:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
        else:
            array = array[:, :, 0]
    return _to_uint8(array)


def _read_any(path: PathLike) -> np.ndarray:
    """Decoded pixels as uint8, HxW (gray) or HxWx3 (RGB). PIL first, cv2 for what PIL rejects.

    PIL handles every variant of PNG/JPEG/BMP that datasets use, so for those a PIL failure means a
    broken file and cv2 is not asked (it can take seconds on garbage and prints warnings); cv2 helps
    with TIFF compressions and other formats that PIL may lack a decoder for.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image file not found: {path}")
    try:
        return _open_with_pil(path)
    except Exception as pil_error:  # any decoder failure: a broken file, or a format for cv2
        if path.suffix.lower() not in _PIL_AUTHORITATIVE:
            try:
                return _open_with_cv2(path)
            except Exception:
                pass
        raise UserError(f"cannot read image {path}: corrupt or unsupported file ({pil_error})") from None


def read_image_rgb(path: PathLike) -> np.ndarray:
    """Image as HxWx3 uint8 RGB, whatever its mode (gray, RGBA, palette, 16-bit).

    Like the official ``rgb_loader`` (PIL ``convert('RGB')``) no EXIF rotation is applied, so
    images stay aligned with their masks.
    """
    array = _read_any(path)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def _luminance(array: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in PIL's fixed-point form, bit-identical to ``convert('L')`` (used upstream)."""
    if array.ndim == 2:
        return array
    weights = np.array([19595, 38470, 7471], dtype=np.uint32)
    return ((array.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)


def read_mask_gray(path: PathLike) -> np.ndarray:
    """Mask as HxW uint8 luminance, no thresholding (what upstream's ``binary_loader`` returns)."""
    return _luminance(_read_any(path))


def read_mask(path: PathLike, threshold: int = 128) -> np.ndarray:
    """Mask as HxW float32 in {0, 1}: luminance ``> threshold``.

    Thresholding (rather than ``/255``) removes the compression noise of JPEG masks such as
    Kvasir-SEG's. Label maps stored losslessly as 0/1 (not 0/255) are recognised and kept, since a
    threshold of 128 would otherwise turn them into empty masks.
    """
    gray = read_mask_gray(path)
    is_lossy = os.fspath(path).lower().endswith(_LOSSY_EXTENSIONS)
    if not is_lossy and gray.size and gray.max() == 1:
        return gray.astype(np.float32)
    return (gray > threshold).astype(np.float32)


def image_size(path: PathLike) -> Tuple[int, int]:
    """(height, width) of an image, read from its header when PIL can (fast), else by decoding."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            return height, width
    except Exception:  # fall back to a full decode, which raises UserError if broken
        array = _read_any(path)
        return array.shape[0], array.shape[1]
