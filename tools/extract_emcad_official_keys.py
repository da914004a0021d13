"""Build the official EMCAD key list (``tests/fixtures/emcad_official_keys.json``) from the official code.

Usage: ``python tools/extract_emcad_official_keys.py OFFICIAL_EMCAD_DIR [OUT.json] [--check]``
where OFFICIAL_EMCAD_DIR is ``multiclass_seg/EMCAD`` of an ai4colonoscopy/PraNet-V2 checkout (it holds
``lib/networks.py``).  The official modules import timm only for weight initialisation helpers,
stochastic depth and a model registry; when timm is not installed, minimal stand-ins for those five
names are put in ``sys.modules`` (they do not affect names or shapes).  Builds ``EMCADNet`` as the
official ``train_synapse.py`` does (expansion 2, kernel sizes 1/3/5, relu6, no pretrained file),
without and with ``dual=True``, for 9 classes, and writes every state_dict key with its shape.

``--check`` also loads our PyTorch reference's random weights into the official models and reports
the largest relative output difference (both are PyTorch: it should be float rounding or 0).
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path


def _install_timm_stand_ins() -> None:
    try:
        import timm  # noqa: F401
        return
    except ImportError:
        pass
    import torch.nn as nn

    class DropPath(nn.Module):
        def __init__(self, drop_prob=0.0):
            super().__init__()

        def forward(self, x):
            return x

    def to_2tuple(v):
        return v if isinstance(v, tuple) else (v, v)

    def trunc_normal_(t, std=1.0, **kw):
        return nn.init.trunc_normal_(t, std=std)

    def named_apply(fn, module, name="", depth_first=True, include_root=False):
        for child_name, child in module.named_children():
            named_apply(fn, child, f"{name}.{child_name}" if name else child_name, depth_first, True)
        if include_root:
            fn(module=module, name=name)
        return module

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, trunc_normal_
    layers.trunc_normal_tf_ = trunc_normal_
    helpers = types.ModuleType("timm.models.helpers")
    helpers.named_apply = named_apply
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda f: f
    models = types.ModuleType("timm.models")
    models.layers, models.helpers, models.registry = layers, helpers, registry
    package = types.ModuleType("timm")
    package.models = models
    sys.modules.update({"timm": package, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.helpers": helpers, "timm.models.registry": registry})


def build_official(official_dir: Path, dual: bool, num_classes: int = 9):
    sys.path.insert(0, str(official_dir))
    _install_timm_stand_ins()
    from lib.networks import EMCADNet  # the official class

    return EMCADNet(num_classes=num_classes, kernel_sizes=[1, 3, 5], expansion_factor=2, dw_parallel=True,
                    add=True, lgag_ks=3, activation="relu6", encoder="pvt_v2_b2", pretrain=False, dual=dual)


def _one_key_per_line(result: dict) -> str:
    """JSON with one state_dict key per line (readable diffs)."""
    lines = ["{", f' "source": {json.dumps(result["source"])},', f' "num_classes": {result["num_classes"]},',
             ' "models": {']
    names = list(result["models"])
    for i, name in enumerate(names):
        rec = result["models"][name]
        lines.append(f'  {json.dumps(name)}: {{"decoder_parameters": {rec["decoder_parameters"]}, '
                     f'"parameters": {rec["parameters"]}, "keys": {{')
        items = list(rec["keys"].items())
        lines += [f"   {json.dumps(k)}: {json.dumps(v)}" + ("," if j < len(items) - 1 else "")
                  for j, (k, v) in enumerate(items)]
        lines.append("  }}" + ("," if i < len(names) - 1 else ""))
    lines += [" }", "}", ""]
    return "\n".join(lines)


def main(argv) -> int:
    import contextlib
    import io

    import torch

    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if not args:
        print(__doc__)
        return 2
    official_dir = Path(args[0])
    default_out = Path(__file__).resolve().parents[1] / "tests/fixtures/emcad_official_keys.json"
    out = Path(args[1]) if len(args) > 1 else default_out
    result = {"source": "ai4colonoscopy/PraNet-V2 multiclass_seg/EMCAD lib/networks.py EMCADNet(num_classes=9, "
                        "expansion_factor=2, kernel_sizes=[1,3,5], activation='relu6', lgag_ks=3, pretrain=False)",
              "num_classes": 9, "models": {}}
    for name, dual in (("emcad_b2", False), ("emcad_b2_dsra", True)):
        with contextlib.redirect_stdout(io.StringIO()):  # the official constructor prints counts
            model = build_official(official_dir, dual)
        sd = model.state_dict()
        decoder = sum(p.numel() for p in model.decoder.parameters())
        result["models"][name] = {"keys": {k: list(v.shape) for k, v in sd.items()},
                                  "decoder_parameters": int(decoder),
                                  "parameters": int(sum(p.numel() for p in model.parameters()))}
        if check:
            from jittor_pranet.reference import torch_emcad, torch_models

            ref = torch_models.randomize_(torch_emcad.build_torch_emcad(name, 9), 3).eval()
            model.load_state_dict(ref.state_dict())
            model.eval()
            x = torch.randn(2, 1, 224, 224, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                a, b = model(x), ref(x)
            rel = max(float((p - q).abs().max() / q.abs().max()) for p, q in zip(a, b))
            print(f"{name}: official vs reference, {len(a)} outputs, max relative difference {rel:.2e}")
    out.write_text(_one_key_per_line(result))
    for name, rec in result["models"].items():
        print(f"{name}: {len(rec['keys'])} keys, decoder {rec['decoder_parameters']:,} parameters, "
              f"total {rec['parameters']:,}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
