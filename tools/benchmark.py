#!/usr/bin/env python
"""Jittor vs PyTorch benchmark; the same code and options as ``jittor-pranet bench``.

Usage::

    python tools/benchmark.py --quick --json bench.json
    python tools/benchmark.py --models pranet_v2_res2net --batches 1,8 --threads 1
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jittor_pranet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench"] + sys.argv[1:]))
