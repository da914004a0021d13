"""``jittor-pranet prepare synapse|acdc RAW OUT``: raw NIfTI releases -> the preprocessed layouts.

Synapse: CT window [-125, 275] -> [0, 1], TransUNet's 12 test cases as h5 volumes, the rest as npz
slices (TransUNet layout). ACDC: per-volume min-max normalisation, SSL4MIS h5 layout with a standard
70/10/20 patient split. Voxel spacing is kept in the h5 volumes and in OUT/dataset.json.
"""
from __future__ import annotations

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("prepare", help="convert raw Synapse / ACDC NIfTI files to the training layouts",
                       description=__doc__)
    p.add_argument("dataset", choices=["synapse", "acdc", "kits19"], help="which release RAW holds")
    p.add_argument("raw", help="folder with the raw NIfTI files (searched recursively)")
    p.add_argument("out", help="new (or empty) folder to write")
    p.add_argument("--remap", action="store_true",
                   help="synapse: write the 8-organ labels now (default: keep the 14 labels; the loader remaps)")
    p.add_argument("--test-cases", default=None,
                   help="synapse: comma-separated test cases (default: the TransUNet list of 12)")
    p.add_argument("--split", default="cascade", choices=["cascade", "ssl4mis"],
                   help="acdc: patient split (default cascade: the MT-UNet/CASCADE/MIST lists)")
    p.add_argument("--seed", type=int, default=0, help="kits19: seed of the random 168/42 case split (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.prepare import SYNAPSE_TEST_CASES, prepare_acdc, prepare_synapse

    progress = not args.no_progress
    if args.dataset == "kits19":
        return _kits19(args, progress)
    if args.dataset == "synapse":
        if args.test_cases is not None:
            cases = tuple(c.strip() for c in args.test_cases.split(",") if c.strip())
            if not cases:
                raise UserError("--test-cases: give at least one case name, e.g. case0001,case0002")
        else:
            cases = SYNAPSE_TEST_CASES
        manifest = prepare_synapse(args.raw, args.out, remap=args.remap, test_cases=cases, progress=progress)
        train, test = manifest["cases"]["train"], manifest["cases"]["test"]
        print(f"wrote {args.out}: {len(train)} training cases as slices, {len(test)} test volumes "
              f"({manifest['labels']} labels)")
        if manifest["missing_test_cases"]:
            print(f"note: test cases not in RAW: {', '.join(manifest['missing_test_cases'])}")
    else:
        if args.remap or args.test_cases:
            raise UserError("--remap and --test-cases apply to synapse only")
        manifest = prepare_acdc(args.raw, args.out, split=args.split, progress=progress)
        vols = manifest["volumes"]
        print(f"wrote {args.out}: {len(vols['train'])} training / {len(vols['val'])} validation / "
              f"{len(vols['test'])} test volumes ({args.split} split)")
        if manifest["skipped"]:
            print(f"note: {len(manifest['skipped'])} volumes of patients outside 1..100 skipped")
    return 0


def _kits19(args, progress: bool) -> int:
    from ..data.kits19 import prepare_kits19

    if args.remap or args.test_cases:
        raise UserError("--remap and --test-cases apply to synapse only")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, not {args.seed}")
    manifest = prepare_kits19(args.raw, args.out, seed=args.seed, progress=progress)
    split = manifest["split"]
    n_slices = sum(len(v) for v in manifest["slices_kept"].values())
    print(f"wrote {args.out}: {len(split['train'])} training / {len(split['test'])} test cases (seed {args.seed}, "
          f"saved in split.json), {n_slices} slices with both kidney and tumor kept, CT window {manifest['ct_window']}")
    print(f"test cases: {', '.join(split['test'])}")
    return 0
