"""``jittor-pranet predict``: probability maps (and masks, overlays) for images of any size."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..engine.inference import PRECISIONS
from ..engine.tta import add_tta_args, check_tta_args, with_tta
from ..errors import UserError
from .common import add_device_arg, model_choices
from .predict_video import VIDEO_HELP, add_video_args, run_video, wants_video

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


# ------------------------------------------------------------------------------ shared with `test`
def add_model_args(p: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    p.add_argument("--checkpoint", required=checkpoint_required, metavar="FILE",
                   help="weights: a jittor-pranet .pkl, or an official PyTorch .pth (read without torch)")
    p.add_argument("--model", choices=model_choices(), default=None,
                   help="model architecture (default: the one recorded in the checkpoint / config)")
    p.add_argument("--encoder", default=None, metavar="NAME",
                   help="encoder variant (default: the one recorded in the checkpoint, else the model's own), "
                        "e.g. pvt_v2_b0 or res2net101_v1b_26w_4s")
    p.add_argument("--num-classes", type=int, default=None, metavar="N",
                   help="output classes (default: from the checkpoint; official .pth files: from its weights)")
    p.add_argument("--config", metavar="YAML", default=None,
                   help="experiment config (as for train): the model.name / num_classes / encoder / gain and "
                        "data.test_size (else data.train_size) it sets are used; explicit options win")
    p.add_argument("--size", type=int, default=None,
                   help="network input side, a multiple of 32 (default: data.test_size, else data.train_size, of "
                        "--config or of the config saved in a training checkpoint; else 352, the official size)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N",
                   help="images per forward pass (default 4; a short last batch is padded). The other images "
                        "of a batch never change a map beyond float32 rounding; another N runs other kernels: "
                        "a rare pixel may move by one grey level")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="fp32 (default), or fp16: half-precision inference (AMP): weights and activations in "
                        "float16, sums in float32, logits back in float32; probabilities within 1e-2 of fp32 "
                        "(measured 3e-3). For GPUs: on CPU it is ~170x slower (no float16 kernels). No bf16: "
                        "Jittor's CPU kernels accumulate it in bf16 (docs/benchmarks.md)")
    add_device_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tta_args(p)


_CONFIG_KEYS = ("model.name", "model.num_classes", "model.encoder", "model.gain", "data.test_size", "data.train_size")


def read_config(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The values of an experiment config that matter for inference, *only those the file sets*.

    The file is loaded and validated by :mod:`jittor_pranet.config` (unknown keys are errors); values it
    leaves at their defaults are not used, so that e.g. a config without ``model.name`` does not override
    the model recorded in the checkpoint."""
    if not path:
        return None
    import yaml

    from ..config import load_config

    cfg = load_config(path)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:  # load_config read it a moment ago; be safe anyway
        raise UserError(f"--config {path}: cannot read it ({exc})") from None
    picked: Dict[str, Dict[str, Any]] = {}
    for key in _CONFIG_KEYS:
        section, name = key.split(".")
        if isinstance(raw.get(section), dict) and name in raw[section]:
            picked.setdefault(section, {})[name] = cfg.get(section, {}).get(name, raw[section][name])
    return picked


def open_checkpoint(args):
    """Read the checkpoint and decide the model spec (no Jittor needed); returns (loaded, spec, size)."""
    from ..checkpoint import read_state_dict
    from ..engine.inference import DEFAULT_SIZE, resolve_model_spec

    config = read_config(getattr(args, "config", None))
    loaded = read_state_dict(args.checkpoint)
    spec = resolve_model_spec(loaded.meta, loaded.state_dict, model=args.model, num_classes=args.num_classes,
                              encoder=args.encoder, config=config, source=str(args.checkpoint))
    random_tensors = loaded.meta.get("random_tensors") or []
    if random_tensors:
        warn(f"{args.checkpoint}: {len(random_tensors)} tensors were not in the checkpoint it was converted from "
             f"(convert --partial) and hold random values, e.g. {random_tensors[0]}: predictions are not meaningful")
    size = args.size if args.size is not None else (spec.test_size or DEFAULT_SIZE)
    if size < 32 or size % 32:
        where = "--size" if args.size is not None else f"the test size from the {spec.sources.get('test_size')}"
        raise UserError(f"{where} must be a positive multiple of 32 (the encoders downsample by 32), not {size}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, not {args.batch_size}")
    check_tta_args(args, size)
    return loaded, spec, size


def build_predictor(args, loaded, spec, size: int):
    """Configure Jittor for --device, build and load the model; a Predictor with --batch-size."""
    from .common import setup_device

    jt = setup_device(args.device)
    from ..engine.inference import Predictor, load_model

    model, spec = load_model(args.checkpoint, spec, loaded=loaded, precision=args.precision)
    device = "cuda" if jt.flags.use_cuda else "cpu"
    print(f"model: {spec.describe()} from {args.checkpoint}; input {size}x{size}; device {device}"
          + ("" if args.precision == "fp32" else f"; precision {args.precision}"), file=sys.stderr)
    # Always the full --batch-size (a short batch is padded): one forward shape, so a map never depends on
    # how many other images were in the run (batched kernels round differently for other batch sizes).
    predictor = with_tta(Predictor(model, size=size, batch_size=args.batch_size, num_classes=spec.num_classes), args)
    if predictor.__class__ is not Predictor:
        print(predictor.describe(), file=sys.stderr)
    return predictor


def header_check(paths: Sequence[Path], skip_bad: bool, hint: str = "") -> Tuple[List[Path], List[Tuple[Path, str]]]:
    """Cheap early check (image header) so that a non-image fails before the model is loaded."""
    from ..data import image_size

    good, bad = [], []
    for path in paths:
        try:
            image_size(path)
            good.append(path)
        except UserError as exc:
            if not skip_bad:
                raise UserError(f"{exc}{hint}") from None
            bad.append((path, str(exc)))
    return good, bad


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------ predict
def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict probability maps / masks / overlays for images",
        description=DESCRIPTION + "\n" + VIDEO_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    from ..engine.inference import ImageJob, OutputOptions, predict_files, prepare_output_folder

    if wants_video(args):
        return run_video(args)
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
    prepare_output_folder(out)

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
