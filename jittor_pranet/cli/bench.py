"""``jittor-pranet bench``: Jittor vs PyTorch throughput, memory and FLOP/s on this machine (options here,
the benchmark in :mod:`jittor_pranet.bench`)."""
from __future__ import annotations

from .common import model_choices


def _ints(text: str):
    return tuple(int(v) for v in text.replace(",", " ").split())


def _variants(text: str):
    """Split on spaces and on commas outside brackets: 'torch,jittor[conv,bn]' -> (torch, jittor[conv,bn])."""
    out, cur, depth = [], "", 0
    for ch in text:
        if ch in ", " and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    if cur:
        out.append(cur)
    return tuple(out)


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark inference/training throughput against the PyTorch reference",
        description="Times the Jittor models and the PyTorch reference with identical weights in one process, "
                    "interleaved round by round (warm-up excluded, synchronised, median/min/max of --repeats), "
                    "and reports images/s, GFLOP/s and fraction of the measured matmul peak, peak memory, "
                    "Jittor's first-call (compile) time and torch/jittor ratios (>1: Jittor is faster). "
                    "Variants: torch, jittor_plain (Jittor's own convolutions), jittor (default fast path), "
                    "jittor_fused (inference with BatchNorm folded).")
    p.add_argument("--models", type=lambda s: tuple(m for m in s.replace(",", " ").split()),
                   help=f"comma-separated models (default all: {','.join(model_choices())}; --quick: pranet_v2_res2net)")
    p.add_argument("--batches", type=_ints, help="inference batch sizes (default 1,8,16; --quick: 1)")
    p.add_argument("--size", type=int, default=352, help="inference and single-scale training size (default 352)")
    p.add_argument("--train-batch", type=int, help="training batch (default 8; --quick: 2)")
    p.add_argument("--train-size", type=int, help="single-scale training size (default: --size)")
    p.add_argument("--multiscale", type=_ints, default=(256, 352, 448),
                   help="multi-scale recipe sizes, one step each (default 256,352,448; '' to skip)")
    p.add_argument("--repeats", type=int, help="timed rounds per measurement (default 5; --quick: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per variant and shape (default 1)")
    p.add_argument("--variants", type=_variants, default=("torch", "jittor_plain", "jittor", "jittor_fused"),
                   help="space/comma-separated: torch, jittor_plain, jittor, jittor_fused (default: these four), "
                        "or jittor[feature,...] with features conv,bn,attention,tokens,norm,linear and "
                        "conv=auto|nchw|onednn, "
                        "e.g. 'torch jittor_plain jittor[conv] jittor[conv,bn] jittor'")
    p.add_argument("--no-inference", action="store_true", help="skip inference")
    p.add_argument("--no-training", action="store_true", help="skip training")
    p.add_argument("--eval-images", type=int, help="synthetic maps for the eval timing (default 3; 0 skips)")
    p.add_argument("--eval-size", default="1225x966", help="WxH of the synthetic maps (default 1225x966)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both frameworks (default: their own default, i.e. all cores)")
    p.add_argument("--glibc-defaults", action="store_true",
                   help="leave glibc's malloc trimming on (by default freed memory is kept in the process: with "
                        "trimming PyTorch page-faults every large activation and its first model runs ~35%% slow)")
    p.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU (see the defaults above)")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown tables to FILE")
    p.add_argument("--from-json", metavar="FILE", help="only print the Markdown tables of an earlier --json result")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu",
                   help="cpu (default) or cuda; torch runs on the same device")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench.command import run_command

    return run_command(args, model_choices())
