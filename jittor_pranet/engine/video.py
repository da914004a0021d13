"""Video, camera and image-sequence prediction: frames in, overlay video (and masks) out.

Every frame goes through the same official per-image protocol as ``predict`` (a :class:`Predictor`,
optionally with TTA): frames are batched for the forward pass only, each map is min-max normalised on
its own.  Outputs, named after the source (``<name>`` = the video's file stem, the sequence folder's
name or ``camera<N>``):

* ``<name>_overlay.<ext>``: the frames with the predicted region tinted and outlined, at the source's
  frame rate and size;
* ``<name>_mask.<ext>`` (``mask_video``): the 0/255 mask (label colours for several classes);
* ``<name>_frames/<name>_<index>.png`` (``frame_masks``): the per-frame maps exactly as ``predict``
  writes them for an image (plus ``_mask.png`` with a threshold), index = position in the source.

Videos are written under a temporary name and renamed when complete (the frame folder likewise), so an
error or an interruption leaves no half-written output; a camera stream, which only ends when stopped,
is finalised on Ctrl-C.  Frames that cannot be decoded are reported, counted and skipped.

Codecs (OpenCV writers, no system FFmpeg needed): ``mjpg`` (default; Motion-JPEG in ``.avi`` through
OpenCV's own writer, which keeps any frame size, odd ones included) and ``mp4v`` (MPEG-4 part 2 in
``.mp4`` through the FFmpeg bundled with OpenCV; smaller files, but its writer rounds odd frame sizes
down to even ones).
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import UserError
from .outputs import OutputOptions, write_prediction
from .predictor import Predictor, binary_mask, label_map, to_uint8_map

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                    ".mts", ".m2ts", ".3gp", ".ogv")
#: name -> (fourcc, container suffix, OpenCV backend name)
CODECS = {"mjpg": ("MJPG", ".avi", "CAP_OPENCV_MJPEG"), "mp4v": ("mp4v", ".mp4", "CAP_FFMPEG")}
DEFAULT_SEQUENCE_FPS = 25.0
#: consecutive failed grabs after which a file is taken to have ended (or a camera to have stopped)
_MAX_FAILED_GRABS = 10
_MAX_FAILED_CAMERA_GRABS = 100

Frame = Tuple[int, Optional[np.ndarray], Optional[str]]  # (index, RGB uint8 or None, why it failed)
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def is_video_file(path: Union[str, os.PathLike]) -> bool:
    """A file that OpenCV should read as a video: by extension, else (not an image) by opening it."""
    from ..data.io import is_image_file

    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    if is_image_file(path) or path.suffix.lower() in (".txt", ".json", ".csv", ".yaml", ".yml", ".md"):
        return False
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return bool(cap.isOpened()) and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 1
    finally:
        cap.release()


def _natural_key(path: Path):
    """``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


# ------------------------------------------------------------------------------ sources
@dataclass
class FrameSource:
    """Frames of one video file, camera or image folder, with the rate and size of the output videos."""

    name: str  # output name stem
    label: str  # for messages
    fps: float
    size: Tuple[int, int]  # (H, W) of the first decodable frame: the output videos' size
    total: Optional[int]  # frames announced by the source (None: a camera)
    frames: Iterator[Frame]
    live: bool = False  # a camera: runs until stopped
    notes: List[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _capture_frames(cap, first: np.ndarray, live: bool) -> Iterator[Frame]:
    """Frames of an open capture whose first frame was already read.

    ``grab`` moves to the next frame, ``retrieve`` decodes it: a frame that is grabbed but cannot be
    decoded is yielded as failed.  Grabs that fail and are followed by a good frame are failed frames
    too; failed grabs at the end are the end of the stream."""
    yield 0, _bgr_to_rgb(first), None
    index = 1
    failed_grabs = 0
    limit = _MAX_FAILED_CAMERA_GRABS if live else _MAX_FAILED_GRABS
    while True:
        if not cap.grab():
            failed_grabs += 1
            if failed_grabs >= limit:
                return
            if live:
                time.sleep(0.01)
            continue
        for _ in range(0 if live else failed_grabs):  # frames lost between two good ones
            yield index, None, "could not be read from the stream"
            index += 1
        failed_grabs = 0
        ok, frame = cap.retrieve()
        if ok and frame is not None and frame.size:
            yield index, _bgr_to_rgb(frame), None
        else:
            yield index, None, "could not be decoded"
        index += 1


def _fps_of(cap, fallback: Optional[float], label: str, notes: List[str], default: float) -> float:
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if np.isfinite(fps) and 0.5 <= fps <= 1000.0:
        return fps
    chosen = fallback if fallback else default
    notes.append(f"{label} reports no usable frame rate ({fps:g}); the output videos use {chosen:g} fps (--fps)")
    return chosen


def open_video_file(path: Union[str, os.PathLike], fps: Optional[float] = None) -> FrameSource:
    """A video file as a :class:`FrameSource`; a file OpenCV cannot open or decode is a UserError."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise UserError(f"{path}: OpenCV cannot open it as a video (not a video, or a container it does not know)")
    ok, first = cap.read()
    if not ok or first is None or not first.size:
        cap.release()
        raise UserError(f"{path}: no frame could be decoded (damaged file, or a codec this OpenCV build cannot "
                        "decode; re-encode it, e.g. to H.264 or MJPEG)")
    notes: List[str] = []
    rate = _fps_of(cap, fps, str(path), notes, DEFAULT_SEQUENCE_FPS)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    return FrameSource(path.stem, str(path), rate, first.shape[:2], total, _capture_frames(cap, first, False),
                       notes=notes, close=cap.release)


def open_camera(index: int, fps: Optional[float] = None) -> FrameSource:
    """Camera ``index`` (``/dev/video<index>`` on Linux) as a live :class:`FrameSource`."""
    import cv2

    if index < 0:
        raise UserError(f"--camera must be >= 0, not {index}")
    cap = cv2.VideoCapture(int(index))
    if not cap.isOpened():
        cap.release()
        raise UserError(f"--camera {index}: no camera could be opened (is one connected, and readable by this user?)")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise UserError(f"--camera {index}: the camera opened but delivered no frame")
    notes: List[str] = []
    rate = _fps_of(cap, fps, f"camera {index}", notes, 30.0)
    return FrameSource(f"camera{index}", f"camera {index}", rate, first.shape[:2], None,
                       _capture_frames(cap, first, True), live=True, notes=notes, close=cap.release)


def open_sequence(folder: Union[str, os.PathLike], fps: Optional[float] = None) -> FrameSource:
    """The images of a folder, in natural name order (``2.png`` before ``10.png``), as video frames.

    Frames whose size differs from the first one are drawn resized to it in the videos (their per-frame
    maps keep their own size)."""
    from ..data import list_images, read_image_rgb

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--sequence: {folder} is not a folder of images")
    try:
        files, skipped = list_images(folder)
    except OSError as exc:
        raise UserError(f"cannot list {folder}: {exc.strerror or exc}") from None
    if not files:
        raise UserError(f"--sequence: no image files in {folder}")
    files.sort(key=_natural_key)
    notes = [f"{folder}: skipped {skipped} non-image file(s)"] if skipped else []
    first_index, first = None, None
    for i, path in enumerate(files):
        try:
            first, first_index = read_image_rgb(path), i
            break
        except UserError:
            continue
    if first is None:
        raise UserError(f"--sequence: none of the {len(files)} image(s) in {folder} can be read")

    def frames() -> Iterator[Frame]:
        for i, path in enumerate(files):
            if i == first_index:
                yield i, first, None
                continue
            try:
                yield i, read_image_rgb(path), None
            except UserError as exc:
                yield i, None, str(exc)

    return FrameSource(folder.name or "sequence", str(folder), float(fps or DEFAULT_SEQUENCE_FPS),
                       first.shape[:2], len(files), frames(), notes=notes)


# ------------------------------------------------------------------------------ outputs
@dataclass
class VideoOptions:
    """What to write for a source besides the overlay video."""

    threshold: Optional[float] = None  # binary: region of the overlay / mask video, and per-frame _mask.png
    overlay_threshold: float = 0.5  # region when no threshold is given
    mask_video: bool = False
    frame_masks: bool = False
    codec: str = "mjpg"
    max_frames: Optional[int] = None
    num_classes: int = 1

    def suffix(self) -> str:
        return CODECS[self.codec][1]

    def output_names(self, name: str) -> List[str]:
        names = [f"{name}_overlay{self.suffix()}"]
        if self.mask_video:
            names.append(f"{name}_mask{self.suffix()}")
        if self.frame_masks:
            names.append(f"{name}_frames")
        return names


class _PendingVideo:
    """A VideoWriter on a temporary file in the destination folder; ``commit`` renames it into place."""

    def __init__(self, path: Path, codec: str, fps: float, size: Tuple[int, int]):
        import cv2

        if codec not in CODECS:
            raise UserError(f"unknown video codec {codec!r}; choose from {', '.join(CODECS)}")
        fourcc, suffix, backend = CODECS[codec]
        self.path = path
        self.size = size
        import secrets

        # named before it exists, and removed on any exception here (Ctrl-C included): the caller
        # holds no object to abort until the constructor returns
        self.tmp = path.parent / f".{path.stem}.{secrets.token_hex(6)}.tmp{suffix}"
        h, w = size
        try:
            os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            self.writer = cv2.VideoWriter(str(self.tmp), getattr(cv2, backend), cv2.VideoWriter_fourcc(*fourcc),
                                          float(fps), (int(w), int(h)), True)
        except BaseException:
            self.abort()
            raise
        if not self.writer.isOpened():
            self.abort()
            raise UserError(f"cannot write {path}: OpenCV has no working {codec} ({fourcc}) writer here; "
                            f"try --video-codec {'mp4v' if codec == 'mjpg' else 'mjpg'}")
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if rgb.shape[:2] != self.size:
            rgb = cv2.resize(rgb, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
        self.writer.write(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        self.frames += 1

    def commit(self) -> Path:
        self.writer.release()
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self.path

    def abort(self) -> None:
        try:
            self.writer.release()
        except Exception:  # the writer may not exist when its creation failed
            pass
        try:
            self.tmp.unlink()
        except OSError:
            pass


class _PendingFolder:
    """A temporary folder in the destination's parent; ``commit`` puts it in place of the destination."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))

    def commit(self) -> Path:
        old = None
        try:
            if self.path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old.", dir=self.path.parent))
                os.replace(self.path, old / self.path.name)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def frame_pictures(prob: np.ndarray, rgb: np.ndarray, options: VideoOptions) -> Tuple[np.ndarray, np.ndarray]:
    """(overlay, mask picture), both HxWx3 RGB uint8, of one frame's probability map.

    One class: the region is the normalised map >= threshold (``options.threshold``, else 0.5), as for
    ``predict --overlay``; the mask picture is that region in white.  Several classes: argmax labels,
    drawn in their palette colours."""
    from ..utils.overlay import colorize_labels, overlay_labels, overlay_mask

    if options.num_classes > 1:
        labels = label_map(prob)
        return overlay_labels(rgb, labels), colorize_labels(labels, options.num_classes)
    thr = options.threshold if options.threshold is not None else options.overlay_threshold
    region = binary_mask(to_uint8_map(prob), thr)
    return overlay_mask(rgb, region), np.repeat(region[:, :, None], 3, axis=2)


@dataclass
class VideoSummary:
    name: str
    frames: int = 0  # frames predicted and written
    bad: List[Tuple[int, str]] = field(default_factory=list)  # (frame index, reason) skipped
    seconds: float = 0.0  # wall time, decoding and writing included
    model_seconds: float = 0.0  # time in the predictor (forward + per-frame resize/probabilities)
    fps: float = 0.0
    size: Tuple[int, int] = (0, 0)
    outputs: List[Path] = field(default_factory=list)
    stopped: bool = False  # a live source ended by Ctrl-C

    @property
    def throughput(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def _read_chunk(frames: Iterator[Frame], n: int) -> List[Frame]:
    chunk = []
    for item in frames:
        chunk.append(item)
        if len(chunk) == n:
            break
    return chunk


def predict_source(predictor: Predictor, source: FrameSource, out: Union[str, os.PathLike],
                   options: VideoOptions, *, progress: bool = True, log: Log = _stderr) -> VideoSummary:
    """Predict every frame of ``source`` and write the outputs of :class:`VideoOptions` into ``out``.

    Frames are decoded in a background thread while the previous batch runs.  A frame that cannot be
    decoded is reported through ``log`` and skipped (it is counted in the summary, not written).
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    out = Path(out)
    summary = VideoSummary(source.name, fps=source.fps, size=source.size)
    for note in source.notes:
        log(f"warning: {note}")
    limit = options.max_frames if options.max_frames and options.max_frames > 0 else None
    total = source.total if limit is None else min(limit, source.total or limit)
    pending: list = []
    frame_options = OutputOptions(threshold=options.threshold if options.num_classes == 1 else None,
                                  num_classes=options.num_classes)
    bar = None
    read = 0
    start = time.perf_counter()
    try:
        overlay = _PendingVideo(out / f"{source.name}_overlay{options.suffix()}", options.codec, source.fps, source.size)
        pending.append(overlay)
        masks = None
        if options.mask_video:
            masks = _PendingVideo(out / f"{source.name}_mask{options.suffix()}", options.codec, source.fps, source.size)
            pending.append(masks)
        frames_dir = None
        if options.frame_masks:
            frames_dir = _PendingFolder(out / f"{source.name}_frames")
            pending.append(frames_dir)
        bar = tqdm(total=total, desc=source.name, unit="frame", file=sys.stderr, leave=False,
                   disable=None if progress else True)
        bs = predictor.batch_size
        with ThreadPoolExecutor(max_workers=1) as pool:
            want = bs if limit is None else min(bs, limit)
            future = pool.submit(_read_chunk, source.frames, want)
            try:
                while True:
                    chunk = future.result()
                    if not chunk:
                        break
                    read += len(chunk)
                    want = bs if limit is None else min(bs, limit - read)
                    future = pool.submit(_read_chunk, source.frames, want) if want > 0 else None
                    good = [(i, rgb) for i, rgb, _ in chunk if rgb is not None]
                    for i, _, reason in chunk:
                        if reason is not None:
                            summary.bad.append((i, reason))
                            log(f"warning: {source.label}: frame {i} skipped: {reason}")
                    if good:
                        t0 = time.perf_counter()
                        maps = predictor.predict_batch([rgb for _, rgb in good])
                        summary.model_seconds += time.perf_counter() - t0
                        for (i, rgb), prob in zip(good, maps):
                            pic, mask = frame_pictures(prob, rgb, options)
                            overlay.write(pic)
                            if masks is not None:
                                masks.write(mask)
                            if frames_dir is not None:
                                write_prediction(prob, rgb, frames_dir.tmp, f"{source.name}_{i:06d}", frame_options)
                            summary.frames += 1
                    bar.update(len(chunk))
                    if future is None:
                        break
            except KeyboardInterrupt:
                if not source.live:
                    raise
                summary.stopped = True
            finally:
                if future is not None:
                    future.cancel()
        summary.seconds = time.perf_counter() - start
        if summary.frames == 0:
            raise UserError(f"{source.label}: no frame could be decoded ({len(summary.bad)} failed); nothing written")
        for item in pending:
            summary.outputs.append(item.commit())
        pending.clear()
    finally:
        for item in pending:
            item.abort()
        if bar is not None:
            bar.close()
        source.close()
    if source.total and not limit and read < source.total:
        log(f"note: {source.label}: the container announces {source.total} frames, {read} could be read "
            "(the file may be truncated)")
    return summary


def format_summary(summary: VideoSummary) -> str:
    """One line: frames, rate, size, throughput and skipped frames."""
    h, w = summary.size
    model_rate = summary.frames / summary.model_seconds if summary.model_seconds > 0 else float("inf")
    line = (f"{summary.name}: {summary.frames} frames, {w}x{h} at {summary.fps:g} fps, in {summary.seconds:.1f} s: "
            f"{summary.throughput:.2f} frames/s end to end ({model_rate:.2f} frames/s in the model)")
    if summary.bad:
        line += f"; skipped {len(summary.bad)} undecodable frame(s)"
    if summary.stopped:
        line += "; stopped by Ctrl-C"
    return line


__all__ = ["CODECS", "DEFAULT_SEQUENCE_FPS", "FrameSource", "VIDEO_EXTENSIONS", "VideoOptions", "VideoSummary",
           "format_summary", "frame_pictures", "is_video_file", "open_camera", "open_sequence", "open_video_file",
           "predict_source"]
