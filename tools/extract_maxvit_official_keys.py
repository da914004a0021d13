"""Build the official MaxViT / MIST / Cascaded MERIT key lists (``tests/fixtures/maxvit_official_keys.json``)
from the official code, and (``--check``) compare our PyTorch twins with the official classes.

Usage: ``python tools/extract_maxvit_official_keys.py OFFICIAL_MULTICLASS_DIR [OUT.json] [--check]``
where OFFICIAL_MULTICLASS_DIR is ``multiclass_seg`` of an ai4colonoscopy/PraNet-V2 checkout (it holds
``MIST/lib`` and ``MERIT/lib``).

The official modules import a vendored copy of timm 0.6 (``lib/models_timm``) and, from the real
timm, only ``timm.data`` constants: a stand-in module provides those.  The vendored dataclasses use
instance defaults (``conv_cfg: MaxxVitConvCfg = MaxxVitConvCfg()``) that Python >= 3.11 rejects; the
official ``lib`` folder is copied to a temporary folder where those field lines become
``field(default_factory=...)`` (nothing else changes).  ``MIST_CAM`` and ``MERIT_*`` read ImageNet
files in their constructors; their ``load_pretrained_weights`` helpers are replaced by functions that
build the same backbones without a file.

Written: for each MaxViT variant, every encoder state_dict key with its shape (``num_batches_tracked``
included, as in the official files); for each of ``mist``, ``mist_dsra``, ``merit_cascaded``,
``merit_cascaded_dsra`` (9 classes) the whole model's keys.  ``--check`` loads the official models'
random weights (norm statistics and LayerScale randomised) into our twins and prints the largest
relative output difference in float64 (both are PyTorch: 0 or float rounding).
"""
from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path

VARIANTS = ("maxvit_rmlp_pico_rw_256", "maxvit_rmlp_nano_rw_256", "maxvit_rmlp_tiny_rw_256",
            "maxvit_rmlp_small_rw_224", "maxvit_rmlp_small_rw_256", "maxxvit_rmlp_nano_rw_256",
            "maxxvit_rmlp_tiny_rw_256", "maxxvit_rmlp_small_rw_256")


def _timm_stand_in() -> None:
    if "timm" in sys.modules:
        return
    timm = types.ModuleType("timm")
    timm.__version__ = "0.6.12"
    data = types.ModuleType("timm.data")
    data.IMAGENET_DEFAULT_MEAN, data.IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    data.IMAGENET_INCEPTION_MEAN = data.IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)
    timm.data = data
    sys.modules["timm"], sys.modules["timm.data"] = timm, data


def _patched_copy(project: Path) -> Path:
    """``project/lib`` copied to a temporary folder with the dataclass defaults Python 3.11 accepts."""
    root = Path(tempfile.mkdtemp(prefix=f"official_{project.name}_"))
    shutil.copytree(project / "lib", root / "lib")
    for rel in ("lib/maxxvit_4out.py", "lib/models_timm/maxxvit.py"):
        path = root / rel
        if path.exists():
            text = re.sub(r"^(\s+\w+_cfg: (MaxxVit\w+Cfg)) = \2\(\)$", r"\1 = field(default_factory=\2)",
                          path.read_text(), flags=re.M)
            text = text.replace("from dataclasses import dataclass, replace",
                                "from dataclasses import dataclass, field, replace")
            path.write_text(text)
    return root


def load_networks(project: Path):
    """The official ``lib.networks`` module of ``project`` (MIST or MERIT), importable here."""
    _timm_stand_in()
    root = _patched_copy(project)
    for name in [m for m in sys.modules if m == "lib" or m.startswith("lib.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        nets = importlib.import_module("lib.networks")
    finally:
        sys.path.remove(str(root))
    return nets


def _keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def _official_models(base: Path):
    """name -> (official model, MaxViT module) for the four registered models."""
    import torch  # noqa: F401  (the official code needs it)

    out = {}
    mist = load_networks(base / "MIST")
    m4 = sys.modules["lib.maxxvit_4out"]
    mist.load_pretrained_weights = lambda *a, **k: m4.maxxvit_rmlp_small_rw_256()
    out["mist"] = mist.MIST_CAM(n_class=9, dual=False)
    out["mist_dsra"] = mist.MIST_CAM(n_class=9, dual=True)
    maxvit_mist = m4
    merit = load_networks(base / "MERIT")
    m4m = sys.modules["lib.maxxvit_4out"]
    backbones = {256: m4m.maxxvit_rmlp_small_rw_256, 224: m4m.maxvit_rmlp_small_rw_224}
    merit.load_pretrained_weights = lambda img_size, *a, **k: backbones[img_size]()
    out["merit_cascaded"] = merit.MERIT_Cascaded(n_class=9, img_size_s1=(256, 256), img_size_s2=(224, 224))
    out["merit_cascaded_dsra"] = merit.MERIT_Cascaded_dual(n_class=9, img_size_s1=(256, 256),
                                                           img_size_s2=(224, 224))
    return out, maxvit_mist


def _randomise(model) -> None:
    import torch

    with torch.no_grad():
        for k, v in model.state_dict().items():
            if not v.dtype.is_floating_point:
                continue
            if k.endswith("running_mean"):
                v.copy_(torch.randn_like(v) * 0.1)
            elif k.endswith(("running_var", "gamma")) or ".norm" in k or "norm1" in k:
                v.copy_(torch.rand_like(v) + 0.5)


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main(argv) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if not args:
        print(__doc__)
        return 2
    base = Path(args[0])
    out_path = Path(args[1]) if len(args) > 1 else Path(__file__).resolve().parents[1] / "tests/fixtures/maxvit_official_keys.json"
    import torch

    models, m4 = _official_models(base)
    result = {"encoders": {}, "models": {}}
    for name in VARIANTS:
        enc = m4.MaxxVit(m4.model_cfgs[name], img_size=224 if name.endswith("224") else 256)
        result["encoders"][name] = _keys(enc)
    for name, model in models.items():
        result["models"][name] = _keys(model)
    out_path.write_text(json.dumps(result, separators=(",", ":")))
    print(f"wrote {out_path}: {len(result['encoders'])} encoders, {len(result['models'])} models")

    if "--check" in argv:
        from jittor_pranet.reference.torch_maxvit import build_torch_maxvit

        torch.manual_seed(0)
        for name in VARIANTS:
            size = 224 if name.endswith("224") else 256
            off = m4.MaxxVit(m4.model_cfgs[name], img_size=size).double().eval()
            _randomise(off)
            twin = build_torch_maxvit(name, img_size=size).double().eval()
            twin.load_state_dict(off.state_dict(), strict=True)
            x = torch.randn(2, 3, size, size, dtype=torch.float64)
            with torch.no_grad():
                worst = max(_rel(a, b) for a, b in zip(twin(x), off(x)))
            print(f"{name:28s} twin vs official, 4 stage maps, float64: worst relative difference {worst:.2e}")
        try:
            from jittor_pranet.reference.twins import build_twin
        except ImportError:
            return 0
        for name, off in models.items():
            try:
                twin = build_twin(name, num_classes=9).double().eval()
            except Exception as exc:  # a model without a twin yet
                print(f"{name:28s} no twin ({exc})")
                continue
            off = off.double().eval()
            _randomise(off)
            twin.load_state_dict(off.state_dict(), strict=True)
            x = torch.randn(1, 1, 256, 256, dtype=torch.float64)
            with torch.no_grad():
                a, b = twin(x), off(x)
            worst = max(_rel(p, q) for p, q in zip(a, b))
            print(f"{name:28s} twin vs official, {len(b)} outputs, float64: worst relative difference {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
