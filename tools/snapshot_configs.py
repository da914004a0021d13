#!/usr/bin/env python
"""Write the resolved form of every shipped config to tests/fixtures/resolved_configs.json.

For each YAML in ``configs/`` and ``jittor_pranet/configs/``: the full config ``load_config`` returns
(defaults, file, validation) and the inference subset ``cli.common.read_config`` picks from it.
``tests/config/test_config_base.py`` compares the files against this snapshot, so that reorganising the files
(a shared ``_base_``, moved comments) is proved not to change a single value. Regenerate it only when a
recipe is meant to change:

    python tools/snapshot_configs.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SNAPSHOT = ROOT / "tests" / "fixtures" / "resolved_configs.json"


def shipped_configs() -> list:
    """Every experiment file (base files under ``_base_/`` are not experiments of their own)."""
    return sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "jittor_pranet" / "configs").glob("*.yaml"))


def resolve_all() -> dict:
    from jittor_pranet.cli.common import read_config
    from jittor_pranet.config import load_config

    return {str(p.relative_to(ROOT)): {"config": load_config(str(p)), "inference": read_config(str(p))}
            for p in shipped_configs()}


def main() -> int:
    SNAPSHOT.write_text(json.dumps(resolve_all(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT.relative_to(ROOT)} ({len(shipped_configs())} configs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
