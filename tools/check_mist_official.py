"""Compare our PyTorch MIST decoder twin with the official ``CAM`` decoder, weights shared.

Usage: ``python tools/check_mist_official.py OFFICIAL_MIST_DIR [--keys OUT.json]`` where
OFFICIAL_MIST_DIR is ``multiclass_seg/MIST`` of an ai4colonoscopy/PraNet-V2 checkout (``lib/MIST.py``
needs only torch and numpy; it is loaded by file path).  For the single and the dual decoder (9 and 4
classes) at the 'small' widths and 256-input feature sizes (64, 32, 16, 8), batch 2, float64, eval mode:

* the state_dict keys, their order and shapes must be identical;
* our twin's random weights are loaded into the official decoder and every output compared
  (max |ours - official| / max |official|).  The official ``F.dropout`` calls have no ``training=``
  and stay active in eval; they are disabled for the comparison (``torch.nn.functional.dropout``
  replaced by the identity while the official forward runs).

Prints one line per case; exits 1 if keys differ or any relative difference exceeds 1e-12.

``--keys OUT.json`` also builds the whole official ``MIST_CAM`` (9 classes, single and dual, without
its pretrained-file loading) and writes every state_dict key with its shape, in order, plus the
decoder / total parameter counts (``tests/fixtures/mist_official_keys.json``).  ``lib/networks.py``
imports ``timm`` for ImageNet constants only (its MaxxViT is vendored): when timm is missing a module
holding those constants stands in; Python >= 3.11 rejects two dataclass defaults of the vendored
MaxxViT (``conv_cfg: X = X()``), so ``lib`` is first copied to a temporary folder with those two
lines written as ``field(default_factory=X)``.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import types
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


def _official_networks(mist_dir: Path):
    """The official ``lib.networks`` module, importable on Python >= 3.11 and without timm."""
    if importlib.util.find_spec("timm") is None:
        timm = types.ModuleType("timm")
        data = types.ModuleType("timm.data")
        data.IMAGENET_DEFAULT_MEAN, data.IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        data.IMAGENET_INCEPTION_MEAN = data.IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)
        timm.__version__, timm.data = "0.6.12", data
        sys.modules.update({"timm": timm, "timm.data": data})
    root = Path(tempfile.mkdtemp(prefix="official_mist_"))
    shutil.copytree(mist_dir / "lib", root / "lib")
    for rel in ("lib/maxxvit_4out.py", "lib/models_timm/maxxvit.py"):
        path = root / rel
        text = re.sub(r"^(\s+\w+_cfg: (MaxxVit\w+Cfg)) = \2\(\)$", r"\1 = field(default_factory=\2)",
                      path.read_text(), flags=re.M)
        path.write_text(text.replace("from dataclasses import dataclass, replace",
                                     "from dataclasses import dataclass, field, replace"))
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("lib.networks")
    finally:
        sys.path.remove(str(root))


def write_keys(mist_dir: Path, out: Path, num_classes: int = 9) -> None:
    nets = _official_networks(mist_dir)
    nets.load_pretrained_weights = lambda *a: nets.maxxvit_rmlp_small_rw_256_4out()  # no file reading
    result = {"num_classes": num_classes, "models": {}}
    for name, dual in (("mist", False), ("mist_dsra", True)):
        model = nets.MIST_CAM(n_class=num_classes, dual=dual)
        result["models"][name] = {
            "keys": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "decoder_parameters": sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder.")),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        print(f"{name}: {len(result['models'][name]['keys'])} keys, decoder "
              f"{result['models'][name]['decoder_parameters']}, total {result['models'][name]['parameters']}")
    out.write_text(format_keys(result))


def format_keys(result: dict) -> str:
    """JSON with one ``[key, shape]`` per line."""
    lines = ["{", f'"num_classes": {result["num_classes"]},', '"models": {']
    for i, (name, entry) in enumerate(result["models"].items()):
        lines.append(f'"{name}": {{"decoder_parameters": {entry["decoder_parameters"]}, '
                     f'"parameters": {entry["parameters"]}, "keys": [')
        lines += [json.dumps(kv) + ("," if j < len(entry["keys"]) - 1 else "") for j, kv in enumerate(entry["keys"])]
        lines.append("]}" + ("," if i < len(result["models"]) - 1 else ""))
    return "\n".join(lines + ["}}", ""])


def main(argv) -> int:
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--keys"):
        print(__doc__)
        return 2
    if len(argv) == 3:
        write_keys(Path(argv[0]), Path(argv[2]))
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
