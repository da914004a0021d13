"""``jittor-pranet predict``: probability maps (and masks, overlays) for images of any size."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..errors import UserError
from .common import add_model_args, build_predictor, header_check, open_checkpoint, warn
from .predict_video import VIDEO_HELP, add_video_args, run_video, wants_video
from .predict_volume import VOLUME_HELP, add_volume_args, run_volumes, wants_volumes

DESCRIPTION = """\
Predict polyp probability maps with the official test protocol: each image is resized to --size
(352), normalised with ImageNet mean/std, passed through the network (V2: fg2+fg3+fg4+fg5, V1: the
last map), resized back to its original size (bilinear), passed through a sigmoid and min-max
normalised on its own (+1e-8), then saved as <stem>.png (uint8, 0..255).  Batching never mixes images:
every map depends on its own image only (the official Jittor script normalises over a whole batch).

INPUT: image files and/or folders of images (not recursive; non-image files are skipped and
counted).  Grayscale and RGBA images are converted to RGB.  Outputs go flat into --out, named after the
input's file name without extension: two inputs with the same stem (a/1.png, b/1.jpg) are an error,
run them separately.

--threshold T also writes <stem>_mask.png (255 where map/255 >= T).  --overlay writes
<stem>_overlay.jpg (or .png): the image with the predicted region (map >= T, default 0.5) tinted and
outlined.  Multi-class checkpoints (num_classes > 1) write <stem>.png = argmax label map (uint8,
0..C-1), <stem>_color.png = its colours (class 0 black) and, with --overlay, the classes drawn on the
image; --threshold does not apply to them.
"""


# ------------------------------------------------------------------------------ predict
def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict probability maps / masks / overlays for images",
        description=DESCRIPTION + "\n" + VIDEO_HELP + "\n" + VOLUME_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files and/or folders of images; or video files, or with --sequence frame folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    add_model_args(p)
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="also write <stem>_mask.png: 255 where the normalised map (value/255) >= T, T in [0, 1]")
    p.add_argument("--overlay", nargs="?", const="jpg", choices=["jpg", "png"], default=None,
                   help="also write <stem>_overlay.jpg (or png): predicted region tinted and outlined on the image")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable/corrupt images (each named in a warning) instead of stopping")
    add_video_args(p)
    add_volume_args(p)
    p.set_defaults(func=run)


def collect_inputs(inputs: Sequence[str]) -> Tuple[List[Path], List[str]]:
    """Image files from files and folders, in the order given (folders sorted by name); warnings."""
    from ..data import list_images

    files: List[Path] = []
    notes: List[str] = []
    empty: List[str] = []
    seen = set()
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise UserError(f"input not found: {path}")
        if path.is_dir():
            try:
                images, skipped = list_images(path)
            except OSError as exc:
                raise UserError(f"cannot list {path}: {exc.strerror or exc}") from None
            if skipped:
                notes.append(f"{path}: skipped {skipped} non-image file(s)")
            if not images:
                empty.append(f"{path}" + (f" ({skipped} non-image file(s))" if skipped else ""))
        elif path.is_file():
            images = [path]
        else:
            raise UserError(f"input is neither a file nor a folder: {path}")
        for image in images:
            key = image.resolve()
            if key not in seen:
                seen.add(key)
                files.append(image)
    if not files:
        raise UserError(f"no image files in {', '.join(empty) or ', '.join(inputs)}")
    notes.extend(f"{folder}: no image files" for folder in empty)
    return files, notes


def check_output_names(files: Sequence[Path], out: Path, names_of) -> None:
    """Every output file must come from one input, and no output may overwrite an input."""
    owner: Dict[str, Path] = {}
    inputs = {f.resolve() for f in files}
    for f in files:
        for name in names_of(f.stem):
            other = owner.setdefault(name, f)
            if other != f:
                raise UserError(
                    f"{other} and {f} would both write {out / name} (outputs are named after the file stem); "
                    "predict them in separate runs with different --out folders, or rename one")
            if (out / name).resolve() in inputs:
                raise UserError(f"{out / name} would overwrite the input image {f}; choose another --out")


def run(args) -> int:
    from .common import RemovedIfLeftEmpty, check_output_folder

    check_output_folder(args.out, "--out")
    with RemovedIfLeftEmpty(args.out):
        return _predict(args)


def _predict(args) -> int:
    from ..engine.outputs import ImageJob, OutputOptions, predict_files, prepare_output_folder

    if wants_video(args):
        return run_video(args)
    if wants_volumes(args):
        return run_volumes(args)
    if not args.inputs:
        raise UserError("give INPUT image files or folders (or a video, --sequence folders, --camera N)")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold must be in [0, 1], not {args.threshold}")
    loaded, spec, size = open_checkpoint(args)
    files, notes = collect_inputs(args.inputs)
    for note in notes:
        warn(note)
    if spec.num_classes > 1 and args.threshold is not None:
        warn(f"--threshold is ignored for a {spec.num_classes}-class model (label maps are argmax)")
    options = OutputOptions(threshold=args.threshold if spec.num_classes == 1 else None, overlay=args.overlay,
                            num_classes=spec.num_classes)
    out = Path(args.out)
    check_output_names(files, out, options.names)
    files, bad = header_check(files, args.skip_bad, hint=" (--skip-bad skips unreadable images)")
    for path, reason in bad:
        warn(f"skipped: {reason}")
    if not files:
        raise UserError(f"none of the {len(bad)} input file(s) is a readable image")
    prepare_output_folder(out, "--out")

    predictor = build_predictor(args, loaded, spec, size)
    jobs = [ImageJob(f, out, f.stem) for f in files]
    summary = predict_files(predictor, jobs, options, skip_bad=args.skip_bad, progress=not args.no_progress,
                            on_skip=lambda path, reason: warn(f"skipped: {reason}"))
    n_bad = len(bad) + len(summary.bad)
    if summary.written == 0:
        raise UserError(f"no image could be read ({n_bad} unreadable)")
    rate = summary.written / summary.seconds if summary.seconds > 0 else float("inf")
    extra = [what for what, on in (("masks", options.threshold is not None), ("colour maps", spec.num_classes > 1),
                                   ("overlays", bool(options.overlay))) if on]
    kind = "label maps" if spec.num_classes > 1 else "probability maps"
    print(f"wrote {summary.written} {kind}{' + ' + ' + '.join(extra) if extra else ''} to {out} "
          f"({summary.seconds:.1f} s, {rate:.2f} img/s)" + (f"; skipped {n_bad} unreadable file(s)" if n_bad else ""))
    return 0
