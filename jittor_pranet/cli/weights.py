"""``jittor-pranet weights``: list, verify and convert the official weight files found in a folder."""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError

DESCRIPTION = """\
list:    the official checkpoints and ImageNet encoders of the manifest (weights/manifest.json), which of
         them are in FOLDER, where each missing one comes from, and weight files the manifest does not know.
verify:  hash every file present (SHA-256) and compare with the manifest (or with the hash tag in a
         file's name, e.g. res2net50_v1b_26w_4s-3cf99910.pth); a mismatch is an error (exit 2).
convert: verify, then convert every official checkpoint present to <out>/<model>.pkl (strict: every key
         and shape), ready for predict/test without torch.  Encoders are used as they are
         (model.backbone_weights).
Nothing is downloaded.  No SHA-256 is published for most files: those are reported as unverified.
"""


def register(sub) -> None:
    p = sub.add_parser("weights", help="list / verify / convert the official weight files in a folder",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["list", "verify", "convert"], default="list")
    p.add_argument("folder", nargs="?", default="weights", help="folder holding the files (default: weights)")
    p.add_argument("--manifest", default=None, metavar="JSON",
                   help="manifest (default: FOLDER/manifest.json, else the repository's weights/manifest.json)")
    p.add_argument("--out", default=None, metavar="DIR", help="convert: output folder (default: FOLDER)")
    p.add_argument("--overwrite", action="store_true", help="convert: redo conversions that already exist")
    p.add_argument("--hashes", action="store_true", help="list/verify: show the computed SHA-256 of each file")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..weights import convert_all, default_manifest, format_rows, load_manifest, scan, verify

    manifest_path = Path(args.manifest) if args.manifest else default_manifest(args.folder)
    manifest = load_manifest(manifest_path)
    rows = scan(args.folder, manifest)
    present = sum(row.present for row in rows)
    print(f"manifest {manifest_path}: {len(manifest)} files; {present} weight file(s) in {args.folder}")
    if args.action == "list":
        print(format_rows(rows))
        return 0
    verify(rows, progress=lambda name: print(f"hashing {name} ...", file=sys.stderr))
    print(format_rows(rows, show_hash=args.hashes))
    bad = [row for row in rows if row.bad]
    if args.action == "convert":
        from ..engine.outputs import prepare_output_folder
        from .common import setup_device

        out = prepare_output_folder(args.out or args.folder, "--out")
        setup_device("cpu")
        results = convert_all(rows, out, overwrite=args.overwrite)
        if not results:
            print("no official checkpoint in the folder: nothing to convert")
        for res in results:
            print(f"- {res.name}: {res.status}" + (f" -> {res.target}" if res.target and res.status == "converted" else ""))
        failed = [res for res in results if res.status.startswith("FAILED")]
        if failed:
            raise UserError(f"{len(failed)} checkpoint(s) could not be converted: {', '.join(r.name for r in failed)}")
    if bad:
        raise UserError(f"{len(bad)} file(s) do not match the manifest: {', '.join(row.name for row in bad)} "
                        "(damaged or a different file; get it again from its source)")
    return 0
