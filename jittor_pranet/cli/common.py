"""Small helpers shared by subcommands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..engine.inference import PRECISIONS
from ..engine.tta import add_tta_args, check_tta_args, with_tta
from ..errors import UserError


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="compute device (default: cuda when a usable GPU is found, else cpu)")


def setup_device(device: str = "auto"):
    """Configure and import Jittor for ``device``; returns the jittor module."""
    from .. import runtime

    try:
        runtime.configure(device)
        jt = runtime.import_jittor(device)
        runtime.set_device(device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    return jt


def model_choices(task=None):
    """The registered model names (from the registry, without importing Jittor)."""
    from ..models.registry import list_models

    return list_models(task)


def check_output_file(path, option: str) -> None:
    """Fail before the work rather than after it: ``path`` must be creatable as a file."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {p}: is a folder, expected a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{option} {p}: {parent} is not a folder")
    from ..utils.io import can_create_in

    if not can_create_in(parent):
        raise UserError(f"{option} {p}: {parent} is not writable")


def check_output_folder(path, option: str) -> None:
    """``path`` must be a folder that exists and is writable, or one that can be created."""
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {p}: exists and is not a folder")
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{option} {p}: {probe} is not a folder")
    from ..utils.io import can_create_in

    if not can_create_in(probe):
        raise UserError(f"{option} {p}: {probe} is not writable")


class RemovedIfLeftEmpty:
    """Folders a command may create: when it fails, those it created and left empty are removed again,
    so that a bad input leaves nothing behind (a folder that existed before is never touched)."""

    def __init__(self, *folders):
        from pathlib import Path

        self.created = []
        for folder in folders:
            if folder is None:
                continue
            p = Path(folder).absolute()
            chain = []
            while not p.exists() and p != p.parent:
                chain.append(p)
                p = p.parent
            self.created.extend(chain)  # deepest first

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            for folder in self.created:
                try:
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
                except OSError:
                    pass
        return False


# ------------------------------------------------------------------------------ model and checkpoint options
# (predict, test and the video path of predict)
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
    from ..config import load_config, read_yaml_file

    cfg = load_config(path)
    raw = read_yaml_file(Path(path)) or {}  # the file load_config just read and checked
    if not isinstance(raw, dict):
        raise UserError(f"--config {path}: a config must be a mapping of sections")
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
    from ..models.registry import model_info

    problem = model_info(spec.name).input.problem(size)
    if problem:
        where = "--size" if args.size is not None else f"the test size from the {spec.sources.get('test_size')}"
        raise UserError(f"{where} {problem} (the input sizes {spec.name} accepts)")
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


def write_or_fail(what: str, path, action) -> None:
    """Run a write; an OSError becomes one line naming what could not be written."""
    try:
        action()
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)
