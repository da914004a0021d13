"""The weights manifest: which official files exist, where they come from, and whether yours are intact.

``weights/manifest.json`` maps each official file name (trained checkpoints and ImageNet encoders) to
its model, the page that publishes it (``source``, ``url``) and its SHA-256 when one is known (``null``
otherwise: nothing is ever guessed).  Files named after a hash (``res2net50_v1b_26w_4s-3cf99910.pth``,
the torch.hub convention: the first hex digits of the file's SHA-256) carry that tag as
``sha256_prefix``.  Nothing here downloads: :func:`scan` says what is present in a folder and where each
missing file comes from, :func:`verify` hashes what is present, :func:`convert_all` converts every
present checkpoint to a Jittor ``.pkl`` with the strict checkpoint reader/writer.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from .errors import UserError

#: the manifest kept in the repository (next to the package in a source checkout)
REPO_MANIFEST = Path(__file__).resolve().parent.parent / "weights" / "manifest.json"
KINDS = ("checkpoint", "imagenet-encoder")
WEIGHT_SUFFIXES = (".pth", ".pt", ".pkl", ".tar", ".bin", ".ckpt")
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass
class WeightEntry:
    """One file of the manifest."""

    file: str
    kind: str
    source: str
    url: Optional[str] = None
    sha256: Optional[str] = None
    sha256_prefix: Optional[str] = None
    model: Optional[str] = None  # checkpoints: the registered model it loads into (None: no such model here)
    models: List[str] = field(default_factory=list)  # encoders: the models it initialises
    encoder: Optional[str] = None
    num_classes: int = 1
    description: str = ""

    @property
    def where(self) -> str:
        return self.source + (f" -> {self.url}" if self.url else "")


def _entry(name: str, raw: Any, manifest: Path) -> WeightEntry:
    where = f"{manifest}: {name!r}"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected an object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise UserError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(raw.get("source"), str) or not raw["source"].strip():
        raise UserError(f"{where}: every file needs a 'source' (the page that publishes it)")
    sha = raw.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64 or not _HEX.match(sha)):
        raise UserError(f"{where}: sha256 must be 64 lowercase hex digits or null")
    prefix = raw.get("sha256_prefix")
    if prefix is not None and (not isinstance(prefix, str) or not 4 <= len(prefix) <= 64 or not _HEX.match(prefix)):
        raise UserError(f"{where}: sha256_prefix must be lowercase hex digits or null")
    if sha and prefix and not sha.startswith(prefix):
        raise UserError(f"{where}: sha256 does not start with sha256_prefix")
    try:
        num_classes = int(raw.get("num_classes") or 1)
    except (TypeError, ValueError):
        raise UserError(f"{where}: num_classes must be an integer") from None
    return WeightEntry(file=name, kind=kind, source=raw["source"], url=raw.get("url"), sha256=sha,
                       sha256_prefix=prefix, model=raw.get("model"), models=list(raw.get("models") or []),
                       encoder=raw.get("encoder"), num_classes=num_classes, description=raw.get("description", ""))


def default_manifest(folder: Union[str, os.PathLike]) -> Path:
    """``<folder>/manifest.json`` when there is one, else the repository's ``weights/manifest.json``."""
    local = Path(folder) / "manifest.json"
    return local if local.is_file() else REPO_MANIFEST


def load_manifest(path: Union[str, os.PathLike]) -> Dict[str, WeightEntry]:
    """File name -> :class:`WeightEntry`; a missing or malformed manifest is a UserError."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--manifest {path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--manifest {path}: not a readable JSON file ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"--manifest {path}: expected an object of file name -> entry")
    return {name: _entry(name, value, path) for name, value in raw.items()}


def sha256_of(path: Union[str, os.PathLike], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileStatus:
    """A manifest entry (or an unknown weight file) and what was found in the folder."""

    name: str
    entry: Optional[WeightEntry]  # None: a weight file the manifest does not know
    path: Optional[Path] = None  # None: missing
    size: int = 0
    sha256: Optional[str] = None  # computed by verify
    status: str = ""

    @property
    def present(self) -> bool:
        return self.path is not None

    @property
    def bad(self) -> bool:
        return self.status.startswith("MISMATCH")


def scan(folder: Union[str, os.PathLike], manifest: Dict[str, WeightEntry]) -> List[FileStatus]:
    """Every manifest file (present or missing) and every other weight file in ``folder`` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"weights folder {folder} does not exist (or is not a folder)")
    rows = []
    for name, entry in manifest.items():
        path = folder / name
        if path.is_file():
            rows.append(FileStatus(name, entry, path, path.stat().st_size, status="present"))
        else:
            rows.append(FileStatus(name, entry, status="missing"))
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name not in manifest and path.suffix.lower() in WEIGHT_SUFFIXES:
            rows.append(FileStatus(path.name, None, path, path.stat().st_size, status="not in the manifest"))
    return rows


def verify(rows: List[FileStatus], progress: Optional[Callable[[str], None]] = None) -> List[FileStatus]:
    """Hash every present file and compare with the manifest's SHA-256 (or the name's hash tag)."""
    for row in rows:
        if not row.present:
            continue
        if progress is not None:
            progress(row.name)
        try:
            row.sha256 = sha256_of(row.path)
        except OSError as exc:
            row.status = f"MISMATCH: unreadable ({exc.strerror or exc})"
            continue
        entry = row.entry
        if entry is None:
            row.status = "not in the manifest"
        elif entry.sha256:
            row.status = "ok (SHA-256)" if row.sha256 == entry.sha256 else f"MISMATCH: SHA-256 is not {entry.sha256}"
        elif entry.sha256_prefix:
            row.status = (f"ok (SHA-256 starts with the name's tag {entry.sha256_prefix})"
                          if row.sha256.startswith(entry.sha256_prefix)
                          else f"MISMATCH: SHA-256 does not start with the name's tag {entry.sha256_prefix}")
        else:
            row.status = "unverified (no published SHA-256)"
    return rows


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0
    return f"{size} B"  # pragma: no cover


def format_rows(rows: List[FileStatus], show_hash: bool = False) -> str:
    """A Markdown table; missing files say where they come from."""
    lines = ["| file | kind | model | status | size |" + (" sha256 |" if show_hash else ""),
             "|---|---|---|---|---:|" + ("---|" if show_hash else "")]
    for row in rows:
        e = row.entry
        kind = e.kind if e else "?"
        model = (e.model or "(none here)") if e and e.kind == "checkpoint" else ", ".join(e.models) if e else "?"
        size = _human(row.size) if row.present else ""
        lines.append(f"| {row.name} | {kind} | {model} | {row.status} | {size} |"
                     + (f" {row.sha256 or ''} |" if show_hash else ""))
    missing = [row for row in rows if not row.present and row.entry]
    if missing:
        lines.append("")
        lines.append("Missing files (nothing is downloaded; get them from):")
        for row in missing:
            lines.append(f"- {row.name}: {row.entry.where}")
    return "\n".join(lines)


@dataclass
class Conversion:
    name: str
    target: Optional[Path]
    status: str


def convert_all(rows: List[FileStatus], out: Union[str, os.PathLike], log: Callable[[str], None] = print,
                overwrite: bool = False) -> List[Conversion]:
    """Convert every present checkpoint of the manifest to ``<out>/<model>.pkl`` (``<file stem>.pkl`` when two
    files share a model), strictly (every key and shape) with the checkpoint reader/writer.

    A file whose model is not registered here, or whose hash mismatched in ``verify``, is skipped with the
    reason; a file that does not fit its model fails alone (the others are still converted).  Jittor must be
    configured first (``cli.common.setup_device``)."""
    from . import checkpoint as ck
    from .models import build_model, list_models

    out = Path(out)
    results: List[Conversion] = []
    todo = [row for row in rows if row.present and row.entry and row.entry.kind == "checkpoint"]
    per_model: Dict[str, int] = {}
    for row in todo:
        if row.entry.model:
            per_model[row.entry.model] = per_model.get(row.entry.model, 0) + 1
    for row in todo:
        entry = row.entry
        if row.bad:
            results.append(Conversion(row.name, None, f"skipped: {row.status}"))
            continue
        if not entry.model or entry.model not in list_models():
            what = entry.model or "no model"
            results.append(Conversion(row.name, None, f"skipped: {what} is not a model of this jittor-pranet"))
            continue
        stem = entry.model if per_model[entry.model] == 1 else Path(row.name).stem
        target = out / f"{stem}.pkl"
        if target.exists() and not overwrite:
            results.append(Conversion(row.name, target, "exists (kept; --overwrite to redo)"))
            continue
        try:
            kw = {"encoder": entry.encoder} if entry.encoder else {}
            model = build_model(entry.model, num_classes=entry.num_classes, **kw)
            loaded = ck.read_state_dict(row.path)
            ck.load_state_dict(model, loaded.state_dict, strict=True, source=str(row.path))
            meta = {"model": entry.model, "num_classes": entry.num_classes, "encoder": entry.encoder,
                    "source": str(row.path), "backbone_only": False}
            ck.save_checkpoint(model, target, meta=meta, extras=loaded.extras)
        except UserError as exc:
            results.append(Conversion(row.name, None, f"FAILED: {exc}"))
            continue
        results.append(Conversion(row.name, target, "converted"))
        log(f"converted {row.name} -> {target}")
    return results


__all__ = ["Conversion", "FileStatus", "KINDS", "REPO_MANIFEST", "WeightEntry", "convert_all", "default_manifest",
           "format_rows", "load_manifest", "scan", "sha256_of", "verify"]
