"""``jittor-pranet convert``: official PyTorch checkpoints -> validated Jittor (or .pth) checkpoints."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .common import model_choices

WRITTEN_SUFFIXES = (".pkl", ".pth", ".pt", ".bin")


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert an official PyTorch checkpoint (or ImageNet backbone) for Jittor",
        description="Read SRC (.pth/.pt/.pth.tar/.pkl, PyTorch zip or legacy, or Jittor; no torch needed), "
                    "check every key and shape against the model, and write DST (.pkl: Jittor checkpoint; "
                    ".pth: PyTorch state_dict). Any mismatch is an error unless --partial is given.")
    p.add_argument("src", help="checkpoint to read")
    p.add_argument("dst", help="file to write (.pkl for Jittor, .pth/.pt for PyTorch)")
    p.add_argument("--model", required=True, choices=model_choices(), help="model the checkpoint belongs to")
    p.add_argument("--num-classes", type=int, default=1, help="V2 output classes (default 1)")
    p.add_argument("--encoder", default=None, help="encoder variant, e.g. res2net101_v1b_26w_4s or pvt_v2_b3")
    p.add_argument("--backbone-only", action="store_true",
                   help="SRC is an ImageNet encoder file (res2net50_v1b_26w_4s-3cf99910.pth, pvt_v2_b2.pth): "
                        "load it into the encoder, leave the decoder randomly initialised, and say so; "
                        "MaxViT models: timm's maxxvit_rmlp_small_rw_256_sw-37e217ff.pth (head.* dropped)")
    p.add_argument("--backbone2", default=None, metavar="FILE",
                   help="with --backbone-only, for models with a second encoder (Cascaded MERIT: backbone2): "
                        "its ImageNet file, e.g. timm's maxvit_rmlp_small_rw_224_sw-6ef0ae4f.pth")
    p.add_argument("--partial", action="store_true", help="load what matches and write anyway (report the rest)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random initialisation of what is not loaded")
    p.set_defaults(func=run)


def run(args) -> int:
    from .common import check_output_file, setup_device

    dst = Path(args.dst)
    if dst.exists() and dst.is_dir():
        raise UserError(f"{dst}: is a folder; give a file name ending in .pkl or .pth")
    if dst.suffix.lower() not in WRITTEN_SUFFIXES:
        raise UserError(f"{dst}: unknown output format {dst.suffix or '(no extension)'!r}; end the name in .pkl "
                        "(Jittor checkpoint) or .pth/.pt/.bin (PyTorch state_dict)")
    if Path(args.src).resolve() == dst.resolve():
        raise UserError("SRC and DST are the same file; choose another output name")
    check_output_file(dst, "DST")
    if not Path(args.src).is_file():
        raise UserError(f"{args.src}: no such file")
    jt = setup_device("cpu")
    from .. import checkpoint as ck
    from ..models import build_model

    jt.set_global_seed(args.seed)
    kw = {"encoder": args.encoder} if args.encoder else {}
    try:
        model = build_model(args.model, num_classes=args.num_classes, **kw)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    loaded = ck.read_state_dict(args.src)
    from ..models.registry import model_info

    second = model_info(args.model).encoder2_attr
    if args.backbone2 and not (args.backbone_only and second):
        raise UserError("--backbone2 is for --backbone-only with a model that has a second encoder"
                        f"{'' if second else f' ({args.model} has one)'}")
    if args.backbone_only:
        files = [(args.src, None, loaded)]
        if args.backbone2:
            if not Path(args.backbone2).is_file():
                raise UserError(f"{args.backbone2}: no such file")
            files.append((args.backbone2, second, ck.read_state_dict(args.backbone2)))
        loaded_keys = []
        for src, attr, file in files:
            loaded_keys += _load_backbone(ck, model, args, src, attr, file)
        n_random = len(ck.model_shapes(model)) - len(loaded_keys)
        where = " and ".join(f"'{ck.backbone_prefix(model, attr)}'" for _, attr, _ in files)
        print(f"randomly initialised (seed {args.seed}): {n_random} decoder tensors "
              f"(everything outside {where}); train before use")
        rep = ck.LoadReport(loaded=loaded_keys)
        extras = {}
    else:
        rep = ck.load_state_dict(model, loaded.state_dict, strict=not args.partial, source=args.src)
        for line in rep.lines():
            print(line)
        extras = loaded.extras
        if loaded.dropped:
            print(f"dropped {len(loaded.dropped)} num_batches_tracked entries (kept for .pth export)")
    meta = {"model": args.model, "num_classes": args.num_classes, "encoder": args.encoder,
            "source": str(args.src), "backbone_only": bool(args.backbone_only)}
    random_keys = [k for k in ck.model_shapes(model) if k not in set(rep.loaded)]
    if random_keys:  # predict/test warn that these tensors were never loaded
        meta["random_tensors"] = random_keys
    ck.save_checkpoint(model, dst, meta=meta, extras=extras)
    print(f"wrote {dst}")
    return 0


def _load_backbone(ck, model, args, src, attr, loaded):
    """Load one ImageNet encoder file into the encoder at ``attr`` (None: the model's own); the keys loaded."""
    rep, mapped, ignored = ck.match_backbone(model, loaded.state_dict, attr)
    prefix = ck.backbone_prefix(model, attr)
    if not mapped:
        raise UserError(f"{src}: no key matches the {args.model} encoder '{prefix[:-1]}'; "
                        "is this the right backbone file?")
    if not rep.ok and not args.partial:
        raise UserError(f"{src}: does not match the {args.model} encoder '{prefix[:-1]}' ({rep.summary()}); "
                        "use --partial to load what matches")
    ck.assign_state_dict(model, mapped, rep.loaded)
    print(f"{src} -> {prefix[:-1]}:")
    for line in rep.lines():
        print(line)
    if ignored:
        print(f"ignored {len(ignored)} encoder-file keys with no place in the model: "
              f"{', '.join(ignored[:6])}{' ...' if len(ignored) > 6 else ''}")
    return list(rep.loaded)
