"""``jittor-pranet export``: a checkpoint to ONNX through the model's PyTorch twin, checked against Jittor."""
from __future__ import annotations

import argparse

from ..errors import UserError
from .common import add_device_arg

DESCRIPTION = """\
Export CKPT (a jittor-pranet .pkl or an official .pth) to OUT.onnx.  Jittor cannot write ONNX, so the
weights are loaded into the model's exact PyTorch reference (jittor_pranet/reference/, same parameter
names), exported with a dynamic batch dimension and dynamic height/width (any multiple of 32), checked by
onnx.checker, then run in onnxruntime on CPU next to the Jittor model on the same random inputs
(--batch x --size x --size, and one image of another shape): every output must agree within --tolerance
relative (max|onnx - jittor| / max|jittor|).  The table of that check is printed; OUT is written only
when it passes.  Needs the export extra: pip install 'jittor-pranet[export]' (torch, onnx, onnxruntime).

The ONNX model takes an ImageNet-normalised RGB batch "image" [N, 3, H, W] and returns every output of
the model under its official name (V2: fg2..fg5, bg2..bg5; V1: lateral_map_5..2); the prediction of
the official protocol is fg2+fg3+fg4+fg5 (V1: lateral_map_2), then resize, sigmoid and min-max.
"""


def register(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (via the PyTorch twin), checked against Jittor",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint to export")
    p.add_argument("out", metavar="OUT.onnx", help="ONNX file to write (its folder must exist)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("--model", default=None, help="model name when the checkpoint does not record it")
    p.add_argument("--num-classes", type=int, default=None, metavar="N", help="output classes (default: from CKPT)")
    p.add_argument("--size", type=int, default=None,
                   help="input side of the trace and of the check (default: the checkpoint's test size, else 352)")
    p.add_argument("--batch", type=int, default=2, metavar="N", help="batch size of the check (default 2)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest relative difference allowed on any output (default 1e-4)")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .common import setup_device

    if not args.tolerance > 0:
        raise UserError(f"--tolerance must be > 0, not {args.tolerance}")
    if not str(args.out).lower().endswith(".onnx"):
        raise UserError(f"{args.out}: the output file name must end in .onnx")
    from ..export import export_onnx, require_export_deps

    require_export_deps()
    setup_device(args.device)
    report = export_onnx(args.checkpoint, args.out, model=args.model, num_classes=args.num_classes, size=args.size,
                         batch=args.batch, opset=args.opset, tolerance=args.tolerance)
    print(f"wrote {report.path} (worst output {report.worst:.2e} relative, bound {report.tolerance:g}; "
          f"{report.seconds:.1f} s)")
    return 0
