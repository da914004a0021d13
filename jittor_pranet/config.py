"""Experiment configs: one YAML per experiment, ``key=value`` overrides, unknown keys rejected.

Every key has a default below (the official recipe); a YAML file overrides some of them and the
command line overrides again (``train.epochs=5 model.name=pranet_v2_pvt``).  The resolved config is
saved next to the run's outputs.  A misspelt key is an error with a suggestion, never ignored.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml

from .errors import UserError

DEFAULTS: Dict[str, Any] = {
    "task": "auto",                 # binary (PraNet polyps) | multiclass (organs/cardiac volumes) | auto (by model)
    "model": {
        "name": "pranet_v2_res2net",
        "num_classes": 1,
        "encoder": None,            # default encoder of the model; e.g. res2net101_v1b_26w_4s, pvt_v2_b0
        "gain": "softmax",          # V2 DSRA reverse gain: softmax (official) | sigmoid | difference
        "drop_path_rate": 0.1,      # PVT encoders only
        "backbone_weights": None,   # ImageNet .pth (res2net50_v1b_26w_4s-3cf99910.pth / pvt_v2_b2.pth)
        "init_checkpoint": None,    # full-model checkpoint to start from (fine-tuning)
    },
    "data": {
        "train": "data/TrainDataset",  # PraNet layout {images,masks} (or image/mask), or Kvasir-SEG
        "test": None,                  # optional TestDataset tree, evaluated after training
        "synthetic": None,             # {root, n_train, n_test, seed}: generate the embedded dataset
        "train_size": 352,
        "test_size": None,             # inference size for test/predict (default: train_size)
        "val_fraction": 0.1,           # validation split carved from the training data (seeded)
        "mask_threshold": 128,
        "num_workers": 2,
        "augment": False,              # off: the official recipe uses none
        "on_size_mismatch": "error",   # error | drop
        # multi-class data (task multiclass): data.train is the dataset root, layout auto-detected
        "format": "auto",              # auto | synapse | acdc_npz | acdc_h5 | custom (checked against the layout found)
        "label_remap": "auto",         # auto (dataset.json) | none | synapse14 (raw 14-label Synapse -> 8 organs)
        "class_names": None,           # foreground class names (default: dataset.json / the layout's class set)
        "palette": None,               # custom data with RGB label maps: one [r, g, b] per class id
        "channels": 1,                 # custom data: 1 (grayscale) or 3 (colour) images
    },
    "train": {
        "epochs": 30,
        "batch_size": 8,               # per process (MPI rank)
        "optimizer": "adam",           # adam (PyTorch-exact; official PraNet) | adamw (official EMCAD/MIST)
        "lr": 1e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
        "clip": 0.5,                   # per-element gradient clamp; null disables
        "loss": "auto",                # multiclass: dsra (fg/bg outputs) | baseline (CE + Dice) | auto (by model outputs)
        "supervision": "mutation",     # multiclass: mutation (all output subsets, official) | deep_supervision | last_layer
        "multi_scale": [0.75, 1.0, 1.25],
        "lr_decay_rate": 0.1,
        "lr_decay_every": 50,          # epochs; the official 30-epoch runs never decay
        "seed": 0,
        "sync_bn": True,               # MPI only: BatchNorm statistics over all ranks (= one big batch)
        "checkpoint_every": 0,         # also checkpoint every N steps mid-epoch (0: epoch ends only)
        "val_every": 1,
        "val_size": None,              # default: data.train_size
        "max_steps": None,             # stop after N optimizer batches (smoke runs)
        "time_limit_min": None,        # stop after this many minutes (ends the epoch early)
    },
    "output": {
        "dir": "runs",
        "name": None,                  # default: <model>-<timestamp>
        "predict_test": True,          # after training, write test-set predictions + metrics
    },
}


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "synthetic":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


_KNOWN = set(_flatten(DEFAULTS))


def _check_key(key: str) -> None:
    if key in _KNOWN or key.startswith("data.synthetic."):
        return
    close = difflib.get_close_matches(key, sorted(_KNOWN), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UserError(f"unknown config key {key!r}{hint}")


def _set(cfg: Dict[str, Any], key: str, value: Any) -> None:
    _check_key(key)
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def _merge(cfg: Dict[str, Any], update: Dict[str, Any], source: str) -> None:
    if not isinstance(update, dict):
        raise UserError(f"{source}: a config must be a mapping of sections (model:, data:, train:, output:)")
    for key, value in _flatten(update).items():
        try:
            _set(cfg, key, copy.deepcopy(value))
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None


def parse_override(text: str):
    if "=" not in text:
        raise UserError(f"override {text!r} must look like key=value (e.g. train.epochs=5)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """Defaults <- YAML file <- ``key=value`` overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
        _merge(cfg, data, str(p))
    for item in overrides:
        key, value = parse_override(item)
        _set(cfg, key, value)
    validate(cfg)
    return cfg


TASKS = ("auto", "binary", "multiclass")
DATA_FORMATS = ("auto", "synapse", "acdc_npz", "acdc_h5", "custom")


def resolved_task(cfg: Dict[str, Any]) -> str:
    """``task`` with ``auto`` decided: multiclass for EMCAD models and for num_classes > 1."""
    if cfg.get("task", "auto") != "auto":
        return cfg["task"]
    m = cfg["model"]
    return "multiclass" if m["name"].startswith("emcad") or int(m["num_classes"]) > 1 else "binary"


def validate(cfg: Dict[str, Any]) -> None:
    from .models import list_models

    m, d, t = cfg["model"], cfg["data"], cfg["train"]
    if m["name"] not in list_models():
        raise UserError(f"model.name {m['name']!r} is not a model; choose one of {', '.join(list_models())}")
    checks: List[tuple] = [
        (isinstance(m["num_classes"], int) and m["num_classes"] >= 1, "model.num_classes must be an integer >= 1"),
        (isinstance(d["train_size"], int) and d["train_size"] >= 32 and d["train_size"] % 32 == 0,
         "data.train_size must be a multiple of 32 (PraNet's decoder needs it)"),
        (0 <= float(d["val_fraction"]) < 1, "data.val_fraction must be in [0, 1)"),
        (isinstance(t["epochs"], int) and t["epochs"] >= 1, "train.epochs must be an integer >= 1"),
        (isinstance(t["batch_size"], int) and t["batch_size"] >= 1, "train.batch_size must be an integer >= 1"),
        (float(t["lr"]) > 0, "train.lr must be > 0"),
        (isinstance(t["multi_scale"], list) and len(t["multi_scale"]) >= 1 and all(float(r) > 0 for r in t["multi_scale"]),
         "train.multi_scale must be a non-empty list of positive rates, e.g. [0.75, 1, 1.25]"),
        (d["on_size_mismatch"] in ("error", "drop"), "data.on_size_mismatch must be error or drop"),
        (cfg["task"] in TASKS, f"task must be one of {', '.join(TASKS)}"),
        (t["optimizer"] in ("adam", "adamw"), "train.optimizer must be adam or adamw"),
        (t["loss"] in ("auto", "dsra", "baseline"), "train.loss must be auto, dsra or baseline"),
        (t["supervision"] in ("mutation", "deep_supervision", "last_layer"),
         "train.supervision must be mutation, deep_supervision or last_layer"),
        (d["format"] in DATA_FORMATS, f"data.format must be one of {', '.join(DATA_FORMATS)}"),
        (d["class_names"] is None or (isinstance(d["class_names"], list) and len(d["class_names"]) >= 1),
         "data.class_names must be a list of foreground class names"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)
    if cfg["task"] == "binary" and (m["name"].startswith("emcad") or m["num_classes"] > 1):
        raise UserError(f"task binary needs a one-class PraNet model; {m['name']} with num_classes "
                        f"{m['num_classes']} is trained with task: multiclass")


def save_config(cfg: Dict[str, Any], path: Path) -> None:
    from .utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))


def scale_sizes(train_size: int, rates: Iterable[float]) -> List[int]:
    """The official multi-scale sizes: round(size * rate / 32) * 32 (352 -> 256, 352, 448)."""
    return [int(round(train_size * float(r) / 32) * 32) for r in rates]
