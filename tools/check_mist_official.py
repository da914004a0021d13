"""Compare our PyTorch MIST decoder twin with the official ``CAM`` decoder, weights shared.

Usage: ``python tools/check_mist_official.py OFFICIAL_MIST_DIR`` where OFFICIAL_MIST_DIR is
``multiclass_seg/MIST`` of an ai4colonoscopy/PraNet-V2 checkout (``lib/MIST.py`` needs only torch and
numpy; it is loaded by file path).  For the single and the dual decoder (9 and 4 classes) at the
'small' widths and 256-input feature sizes (64, 32, 16, 8), batch 2, float64, eval mode:

* the state_dict keys, their order and shapes must be identical;
* our twin's random weights are loaded into the official decoder and every output compared
  (max |ours - official| / max |official|).  The official ``F.dropout`` calls have no ``training=``
  and stay active in eval; they are disabled for the comparison (``torch.nn.functional.dropout``
  replaced by the identity while the official forward runs).

Prints one line per case; exits 1 if keys differ or any relative difference exceeds 1e-12.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from jittor_pranet.reference import torch_mist as tmist
from jittor_pranet.reference.torch_models import randomize_

TOL = 1e-12


def _load_official_cam(mist_dir: Path):
    spec = importlib.util.spec_from_file_location("official_mist_cam", mist_dir / "lib" / "MIST.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CAM


def main(argv) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    CAM = _load_official_cam(Path(argv[0]))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    skips = [torch.randn((2, c, s, s), generator=gen, dtype=torch.float64)
             for c, s in ((96, 64), (192, 32), (384, 16), (768, 8))]
    failed = False
    for dual, num_classes in ((False, 9), (True, 9), (True, 4)):
        kw = dict(channels=[768, 384, 192, 96], n_class=num_classes) if dual else {}
        official = CAM("args", **kw).double().eval()
        ours = randomize_(tmist.MISTDecoder(dual=dual, num_classes=num_classes), seed=3).double().eval()
        o_sd, t_sd = official.state_dict(), ours.state_dict()
        keys_ok = [(k, tuple(v.shape)) for k, v in o_sd.items()] == [(k, tuple(v.shape)) for k, v in t_sd.items()]
        official.load_state_dict(t_sd, strict=True)
        dropout = F.dropout
        F.dropout = lambda x, *a, **k: x
        try:
            with torch.no_grad():
                o_out = official(*skips)
        finally:
            F.dropout = dropout
        with torch.no_grad():
            t_out = ours(*skips)
        rels = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(t_out, o_out)]
        n_params = sum(p.numel() for p in ours.parameters())
        print(f"dual={dual} classes={num_classes}: keys identical={keys_ok} ({len(t_sd)} keys, {n_params} "
              f"parameters), outputs {len(t_out)}/{len(o_out)}, worst relative difference {max(rels):.3e}")
        failed |= not keys_ok or len(t_out) != len(o_out) or max(rels) > TOL
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
