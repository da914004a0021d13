"""Build the official CASCADE decoder key list (``tests/fixtures/merit_official_decoder_keys.json``).

Usage: ``python tools/extract_merit_official_keys.py OFFICIAL_MERIT_DIR [OUT.json] [--check]``
where OFFICIAL_MERIT_DIR is ``multiclass_seg/MERIT`` of an ai4colonoscopy/PraNet-V2 checkout (it
holds ``lib/decoders.py``, which needs only torch: it is loaded from its file, nothing else of the
official package is imported).  Builds ``CASCADE_Add`` and ``CASCADE_Add_dual`` (9 classes) at the
widths of ``MERIT_Cascaded`` with the small MaxViTs (768/384/192/96) and writes every state_dict key
in order with its shape, plus the parameter counts.

``--check`` also loads our PyTorch reference's random weights (randomised BatchNorm statistics
included) into the official decoders and reports the largest relative difference of every output,
eval mode, at the feature sizes of both MERIT passes (8/16/32/64 and 7/14/28/56), 4 and 9 classes,
both DSRA gains (both are PyTorch: it should be float rounding or 0).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

CHANNELS = (768, 384, 192, 96)
NUM_CLASSES = 9


def load_official_decoders(official_dir: Path):
    spec = importlib.util.spec_from_file_location("official_merit_decoders", official_dir / "lib" / "decoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_official(decoders, dual: bool, num_classes: int = NUM_CLASSES, channels=CHANNELS, use_softmax=True):
    if dual:
        return decoders.CASCADE_Add_dual(channels=list(channels), num_class=num_classes, use_softmax=use_softmax)
    return decoders.CASCADE_Add(channels=list(channels))


def _one_key_per_line(result: dict) -> str:
    """JSON with one state_dict key per line (readable diffs)."""
    lines = ["{", f' "source": {json.dumps(result["source"])},', f' "num_classes": {result["num_classes"]},',
             f' "channels": {json.dumps(result["channels"])},', ' "decoders": {']
    names = list(result["decoders"])
    for i, name in enumerate(names):
        rec = result["decoders"][name]
        lines.append(f'  {json.dumps(name)}: {{"parameters": {rec["parameters"]}, "keys": {{')
        items = list(rec["keys"].items())
        lines += [f"   {json.dumps(k)}: {json.dumps(v)}" + ("," if j < len(items) - 1 else "")
                  for j, (k, v) in enumerate(items)]
        lines.append("  }}" + ("," if i < len(names) - 1 else ""))
    lines += [" }", "}", ""]
    return "\n".join(lines)


def check(decoders) -> float:
    """Largest relative output difference official vs reference decoder over all configurations."""
    import torch

    from jittor_pranet.reference import torch_merit, torch_models

    worst = 0.0
    for dual in (False, True):
        for num_classes in (4, 9):
            for use_softmax in ((True, False) if dual else (True,)):
                ref = torch_merit.CascadeDecoder(CHANNELS, dual=dual, num_classes=num_classes, use_softmax=use_softmax)
                ref = torch_models.randomize_(ref, 3 + num_classes).eval()
                official = build_official(decoders, dual, num_classes, use_softmax=use_softmax).eval()
                official.load_state_dict(ref.state_dict())
                for top in (8, 7):
                    gen = torch.Generator().manual_seed(top)
                    x = torch.randn(2, CHANNELS[0], top, top, generator=gen)
                    skips = [torch.randn(2, c, top * s, top * s, generator=gen)
                             for c, s in zip(CHANNELS[1:], (2, 4, 8))]
                    with torch.no_grad():
                        a, b = official(x, skips), ref(x, skips)
                    assert len(a) == len(b)
                    rel = max(float((p - q).abs().max() / q.abs().max()) for p, q in zip(a, b))
                    worst = max(worst, rel)
                    print(f"dual={dual} classes={num_classes} use_softmax={use_softmax} deepest {top}x{top}: "
                          f"{len(a)} outputs, max relative difference {rel:.2e}")
    return worst


def main(argv) -> int:
    do_check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if not args:
        print(__doc__)
        return 2
    decoders = load_official_decoders(Path(args[0]))
    default_out = Path(__file__).resolve().parents[1] / "tests/fixtures/merit_official_decoder_keys.json"
    out = Path(args[1]) if len(args) > 1 else default_out
    result = {"source": "ai4colonoscopy/PraNet-V2 multiclass_seg/MERIT lib/decoders.py CASCADE_Add(channels="
                        "[768,384,192,96]), CASCADE_Add_dual(channels=[768,384,192,96], num_class=9)",
              "num_classes": NUM_CLASSES, "channels": list(CHANNELS), "decoders": {}}
    for name, dual in (("single", False), ("dual", True)):
        model = build_official(decoders, dual)
        result["decoders"][name] = {"keys": {k: list(v.shape) for k, v in model.state_dict().items()},
                                    "parameters": int(sum(p.numel() for p in model.parameters()))}
    if do_check:
        print(f"worst relative difference official vs reference: {check(decoders):.2e}")
    out.write_text(_one_key_per_line(result))
    for name, rec in result["decoders"].items():
        print(f"{name}: {len(rec['keys'])} keys, {rec['parameters']:,} parameters")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
