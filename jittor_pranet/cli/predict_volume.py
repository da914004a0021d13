"""``predict`` on NIfTI volumes (``.nii`` / ``.nii.gz`` files and folders of them) with a multi-class model."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Sequence

from ..errors import UserError
from .common import warn

VOLUME_HELP = """\
NIfTI volumes (.nii / .nii.gz files, or folders of them) with a multi-class checkpoint: each volume is
cut along its slice axis (the clearly thickest voxel axis, else the one pointing head-foot; --axis to
choose), given the intensity preprocessing recorded in the checkpoint at training time (CT window or
per-volume MRI min-max; old checkpoints: the Synapse CT window [-125, 275], with a warning), resized to
the model input, arg-maxed and resized back (nearest). Writes <stem>_seg.nii.gz (uint8 labels, the
input's affine and header), <stem>_montage.png (a few slices with the classes drawn; --montage 0: none)
and with --probabilities <stem>_prob_<k>_<class>.nii.gz (float32 softmax per class).
"""


def add_volume_args(p) -> None:
    g = p.add_argument_group("NIfTI volumes")
    g.add_argument("--axis", type=int, choices=(0, 1, 2), default=None,
                   help="voxel axis to slice along (default: from the affine and voxel sizes)")
    g.add_argument("--probabilities", action="store_true", help="also write per-class probability volumes")
    g.add_argument("--montage", type=int, default=4, metavar="N",
                   help="slices in <stem>_montage.png (default 4; 0: no montage)")
    g.add_argument("--tile", action="store_true",
                   help="slices larger than the model input: overlapping input-size windows instead of resizing")


def _is_nifti(path: Path) -> bool:
    from ..engine.volume_predict import is_nifti

    return is_nifti(path)


def wants_volumes(args) -> bool:
    """True when an input is a NIfTI file or a folder holding NIfTI files."""
    for item in getattr(args, "inputs", None) or []:
        path = Path(item)
        if path.is_file() and _is_nifti(path):
            return True
        if path.is_dir():
            try:
                if any(_is_nifti(p) for p in path.iterdir() if p.is_file()):
                    return True
            except OSError:
                continue
    return False


def collect_volumes(inputs: Sequence[str]) -> List[Path]:
    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise UserError(f"input not found: {path}")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _is_nifti(p) and not p.name.startswith("."))
            if not found:
                raise UserError(f"{path}: no .nii / .nii.gz files (volumes and images cannot be mixed in one run)")
            files.extend(found)
        elif _is_nifti(path):
            files.append(path)
        else:
            raise UserError(f"{path} is not a NIfTI volume: predict volumes and images in separate runs")
    unique = list(dict.fromkeys(f.resolve() for f in files))
    return [Path(f) for f in unique]


def run_volumes(args) -> int:
    from ..engine.model_spec import load_model
    from ..engine.multiclass import logits_function
    from ..engine.outputs import prepare_output_folder
    from ..engine.volume_predict import (
        DEFAULT_PREPROCESSING,
        check_nifti_header,
        check_preprocessing,
        describe_preprocessing,
        nifti_stem,
        predict_nifti,
    )
    from .common import open_checkpoint, setup_device

    if args.montage < 0:
        raise UserError(f"--montage must be >= 0, not {args.montage}")
    if getattr(args, "tta", None):
        raise UserError("--tta applies to images and videos; NIfTI volumes are predicted slice by slice without it")
    if args.threshold is not None or args.overlay:
        warn("--threshold / --overlay do not apply to NIfTI volumes (see --montage)")
    files = collect_volumes(args.inputs)
    stems = {}
    for f in files:
        other = stems.setdefault(nifti_stem(f), f)
        if other != f:
            raise UserError(f"{other} and {f} would both write {nifti_stem(f)}_seg.nii.gz; predict them separately")
    shapes = {f: check_nifti_header(f) for f in files}  # every header before the model is loaded
    loaded, spec, size = open_checkpoint(args)
    if spec.num_classes < 2:
        raise UserError(f"{args.checkpoint} is a {spec.num_classes}-class model; NIfTI volumes need a multi-class "
                        "checkpoint (trained with task: multiclass)")
    meta = loaded.meta if isinstance(loaded.meta, dict) else {}
    pre = meta.get("preprocessing")
    if pre is None:
        pre = dict(DEFAULT_PREPROCESSING)
        warn(f"{args.checkpoint} records no intensity preprocessing (trained before it was recorded, or on data "
             f"without a dataset.json); assuming the Synapse CT window: {describe_preprocessing(pre)}")
    pre = check_preprocessing(pre)
    names = list(meta.get("class_names") or [f"class{i}" for i in range(1, spec.num_classes)])
    if len(names) != spec.num_classes - 1:
        names = [f"class{i}" for i in range(1, spec.num_classes)]
    out = Path(args.out)
    prepare_output_folder(out, "--out")
    jt = setup_device(args.device)
    model, spec = load_model(args.checkpoint, spec, loaded=loaded, precision=args.precision)
    device = "cuda" if jt.flags.use_cuda else "cpu"
    print(f"model: {spec.describe()} from {args.checkpoint}; input {size}x{size}; device {device}", file=sys.stderr)
    print(f"intensity: {describe_preprocessing(pre)}", file=sys.stderr)
    predict_logits = logits_function(model, spec.name)
    for f in files:
        result = predict_nifti(f, out, predict_logits, size, pre, names, axis=args.axis, batch_size=args.batch_size,
                               probabilities=args.probabilities, montage_slices=args.montage, tile=args.tile,
                               progress=not args.no_progress)
        print(f"{f.name}: {'x'.join(map(str, shapes[f]))}, slices along axis {result.slice_axis} -> {result.labels}")
    print(f"wrote {len(files)} label volume(s) to {out}")
    return 0


__all__ = ["VOLUME_HELP", "add_volume_args", "collect_volumes", "run_volumes", "wants_volumes"]
