"""Experiment configs: one YAML per experiment, ``key=value`` overrides, unknown keys rejected.

Every key has a default below (the official recipe); a YAML file overrides some of them and the
command line overrides again (``train.epochs=5 model.name=pranet_v2_pvt``).  A file may start from
others with ``_base_: base.yaml`` (or a list; paths relative to the file, later ones win): their keys
are applied first, the file's own keys over them, key by key, as overrides are.  The resolved config
(merged, no ``_base_``) is saved next to the run's outputs.  A misspelt key is an error with a
suggestion, never ignored.
"""
from __future__ import annotations

import ast
import copy
import difflib
import functools
import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

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
        "backbone2_weights": None,  # a second encoder's ImageNet .pth (Cascaded MERIT: backbone2)
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
        "format": "auto",              # auto | synapse | acdc_npz | acdc_h5 | custom | nnunet (checked against the layout found)
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
        "loss_weights": None,          # multiclass: {ce, dice, bg_bce} (0 switches a term off); null: official
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
        "time_limit_min": None,        # safety net: stop (with a WARNING) after this many minutes of training
        "warmup": True,                # compile Jittor's kernels before training (one pass per input shape)
    },
    "output": {
        "dir": "runs",
        "name": None,                  # default: <model>-<timestamp>
        "predict_test": True,          # after training, write test-set predictions + metrics
        "hd95_convention": "medpy",    # multiclass tables: medpy (pooled, official) | monai (directed max)
    },
}


#: the key of a config file naming the file(s) it starts from
BASE_KEY = "_base_"


def _is_mapping_option(key: str) -> bool:
    """A key whose value may itself be a mapping (``data.augment: {hflip: 0.5}``): a leaf, not a section."""
    check = SCHEMA.get(key)
    return check is not None and check.kind in ("mapping", "bool_or_mapping")


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested sections -> ``section.key`` leaves (a mapping-valued option stays one leaf)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not _is_mapping_option(key):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _unflatten(flat: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *sections, name = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return out


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


def _file_keys(path: Path, chain: Sequence[Path] = ()) -> Dict[str, Any]:
    """The ``section.key`` values a config file sets, those of its ``_base_`` files first (in order,
    each with its own bases) and its own over them. Every key is checked against the known ones."""
    here = path.resolve()
    if here in chain:
        loop = " -> ".join(str(p) for p in [*chain[chain.index(here):], here])
        raise UserError(f"{chain[-1]}: {BASE_KEY} makes a cycle: {loop}")
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    data = read_yaml_file(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a mapping of sections (model:, data:, train:, output:)")
    bases = data.pop(BASE_KEY, None)
    if isinstance(bases, str):
        bases = [bases]
    if bases is not None and not (isinstance(bases, list) and all(isinstance(b, str) and b for b in bases)):
        raise UserError(f"{path}: {BASE_KEY} must be a file name or a list of file names "
                        f"(relative to {path.parent}), not {bases!r}")
    keys: Dict[str, Any] = {}
    for base in bases or ():
        target = path.parent / base
        if not target.is_file():
            raise UserError(f"{path}: {BASE_KEY} {base!r}: {target}: config file not found")
        keys.update(_file_keys(target, [*chain, here]))
    own = _flatten(data)
    for key in own:
        try:
            _check_key(key)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None
    keys.update(own)
    return keys


def read_config_file(path: str) -> Dict[str, Any]:
    """What a config file sets, as nested sections, its ``_base_`` files merged in (no defaults, no
    ``_base_`` key, not validated): the values a file chooses, as opposed to those it leaves alone."""
    return _unflatten(copy.deepcopy(_file_keys(Path(path))))


MAX_CONFIG_BYTES = 1 << 20  # configs are a few KB; anything this large is not one
MAX_CONFIG_DEPTH = 32       # nesting levels of a config document (sections nest 3 deep)


class _AliasRefused(yaml.YAMLError):
    """A YAML anchor or alias, refused: aliases let a few bytes expand into gigabytes
    ("billion laughs") or into a recursive structure that no check can walk."""


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors (``&name``), so an alias (``*name``) can never
    refer to anything (PyYAML then reports it as undefined).

    The check runs on the event stream, before any node is built or shared, so an expanding
    document never allocates more than its own size."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if not isinstance(event, yaml.AliasEvent) and getattr(event, "anchor", None):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise _AliasRefused(f"YAML anchors and aliases (&{event.anchor} / *{event.anchor}) are not allowed in "
                                f"a config (line {line}); write the value out")
        # PyYAML composes recursively and its scanner slows down with every open bracket: a few
        # thousand nested brackets take minutes (or overflow the stack); configs nest 3 deep
        self.depth += 1
        try:
            if self.depth > MAX_CONFIG_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_CONFIG_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` without anchors/aliases and at most :data:`MAX_CONFIG_DEPTH` levels deep;
    raises ``yaml.YAMLError``."""
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml_file(path: Path) -> Any:
    """A config file's YAML (UTF-8, at most :data:`MAX_CONFIG_BYTES`, no anchors/aliases), or a
    one-line :class:`UserError` naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise UserError(f"{path}: {size} bytes is too large for a config (at most {MAX_CONFIG_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save the config as UTF-8") from None
    try:
        return safe_yaml(text)
    except _AliasRefused as exc:
        raise UserError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def parse_override(text: str):
    if "=" not in text:
        raise UserError(f"override {text!r} must look like key=value (e.g. train.epochs=5)")
    key, raw = text.split("=", 1)
    try:
        value = safe_yaml(raw) if raw != "" else None
    except _AliasRefused as exc:
        raise UserError(f"override {text!r}: {exc}") from None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """Defaults <- YAML file (over its ``_base_`` files) <- ``key=value`` overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        for key, value in _file_keys(Path(path)).items():
            _set(cfg, key, copy.deepcopy(value))
    for item in overrides:
        key, value = parse_override(item)
        _set(cfg, key, value)
    validate(cfg)
    return cfg


_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _module_constants(module: str) -> Dict[str, ast.expr]:
    """The module-level ``NAME = value`` assignments of a package module, parsed from its source."""
    path = _PACKAGE_DIR.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    consts: Dict[str, ast.expr] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            consts[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            consts[node.target.id] = node.value
    return consts


def declared(module: str, name: str) -> Tuple[Any, ...]:
    """The values the constant ``module.name`` declares, read from the module's source, not imported.

    The modules that define the choices of config keys import Jittor (the DSRA gains, the losses, the
    optimisers) or the image and volume readers, and validating a config must stay cheap and Jittor-free;
    reading the declaration keeps one definition without running its module. ``name`` is a tuple or list of literals (``*OTHER``, a constant of
    the same module, spliced in) or a dict whose keys are literals (the keys are the values)."""
    consts = _module_constants(module)

    def values(expr: ast.expr) -> List[Any]:
        if isinstance(expr, ast.Name) and expr.id in consts:
            return values(consts[expr.id])
        if isinstance(expr, (ast.Tuple, ast.List)):
            out: List[Any] = []
            for item in expr.elts:
                out.extend(values(item.value) if isinstance(item, ast.Starred) else [ast.literal_eval(item)])
            return out
        if isinstance(expr, ast.Dict) and None not in expr.keys:
            return [ast.literal_eval(k) for k in expr.keys]
        raise ValueError(ast.dump(expr))

    if name not in consts:
        raise LookupError(f"{module} declares no constant {name}")
    try:
        return tuple(values(consts[name]))
    except ValueError as exc:
        raise LookupError(f"{module}.{name} is not a tuple, list or dict of literals ({exc})") from None


def _declared(module: str, name: str) -> Callable[[], Tuple[Any, ...]]:
    """The choices of :func:`declared`, read when first needed (importing this module parses nothing)."""
    return lambda: declared(module, name)


class Check:
    """The declared type and range of one config key; ``__call__`` returns the normalised value or
    raises :class:`UserError` worded like the unknown-key error (``key must be ..., not ...``).
    ``choices`` may be a function returning them: it is called once, when they are first needed."""

    def __init__(self, kind: str, optional: bool = False, low=None, high=None, low_open: bool = False,
                 high_open: bool = False, choices: Union[Sequence[Any], Callable[[], Sequence[Any]]] = (),
                 multiple_of: int = 0, length: int = 0, nonempty: bool = False):
        self.kind, self.optional = kind, optional
        self._choices = choices if callable(choices) else tuple(choices)
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.multiple_of, self.length, self.nonempty = multiple_of, length, nonempty

    @property
    def choices(self) -> Tuple[Any, ...]:
        if callable(self._choices):
            self._choices = tuple(self._choices())
        return self._choices

    def describe(self) -> str:
        what = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a text",
                "floats": "a list of numbers", "choice": "one of " + ", ".join(map(str, self.choices)),
                "mapping": "a mapping of options", "bool_or_mapping": "true, false or a mapping of options",
                "strs": "a non-empty list of names", "list": "a list"}[self.kind]
        if self.length:
            what = f"a list of {self.length} numbers"
        elif self.kind == "floats" and self.nonempty:
            what = "a non-empty list of numbers"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        if bounds:
            what += (" each " if self.kind == "floats" else " ") + " and ".join(bounds)
        if self.multiple_of:
            what += f", a multiple of {self.multiple_of}"
        if self.optional:
            what += " (or null)"
        return what

    def _number(self, key: str, value, integer: bool):
        if isinstance(value, bool):
            raise ValueError
        if integer:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            value = float(value.strip())
        if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ValueError
        return float(value)

    def _in_range(self, x) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.high_open else x > self.high):
            return False
        return not (self.multiple_of and x % self.multiple_of)

    def __call__(self, key: str, value):
        if value is None and self.optional:
            return None
        bad = UserError(f"{key} must be {self.describe()}, not {value!r}")
        try:
            if self.kind in ("int", "float"):
                x = self._number(key, value, self.kind == "int")
                if not self._in_range(x):
                    raise ValueError
                return x
            if self.kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError
                return value
            if self.kind == "str":
                if not isinstance(value, str) or not value.strip():
                    raise ValueError
                return value
            if self.kind == "choice":
                if value not in self.choices:
                    raise ValueError
                return value
            if self.kind == "floats":
                if not isinstance(value, (list, tuple)) or (self.nonempty and not value) \
                        or (self.length and len(value) != self.length):
                    raise ValueError
                xs = [self._number(key, v, False) for v in value]
                if not all(self._in_range(x) for x in xs):
                    raise ValueError
                return xs
            if self.kind == "strs":
                if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                    raise ValueError
                return value
            if self.kind == "list":
                if not isinstance(value, list):
                    raise ValueError
                return value
            if self.kind == "mapping":
                if not isinstance(value, dict):
                    raise ValueError
                return value
            if self.kind == "bool_or_mapping":
                if not isinstance(value, (bool, dict)):
                    raise ValueError
                return value
        except (ValueError, TypeError):
            raise bad from None
        raise AssertionError(self.kind)  # pragma: no cover


#: ``task``: defined here (the two trainers; ``auto`` is decided by :func:`resolved_task`)
TASKS = ("auto", "binary", "multiclass")
_LAYOUTS = "jittor_pranet.data.multiclass_layouts"


def resolved_task(cfg: Dict[str, Any]) -> str:
    """``task`` with ``auto`` decided: multiclass for EMCAD models and for num_classes > 1."""
    if cfg.get("task", "auto") != "auto":
        return cfg["task"]
    from .models.registry import model_info

    m = cfg["model"]
    return "multiclass" if model_info(m["name"]).task == "multiclass" or int(m["num_classes"]) > 1 else "binary"


# Every key's declared type and range, checked before anything is created (a test keeps this table and
# DEFAULTS in step). Cross-key rules (sizes from multi_scale, model names) follow in ``validate``. The
# choices of a key come from the module that acts on it (``declared``), never a copy here.
SCHEMA: Dict[str, Check] = {
    "task": Check("choice", choices=TASKS),
    "model.name": Check("str"),
    "model.num_classes": Check("int", low=1),
    "model.encoder": Check("str", optional=True),
    "model.gain": Check("choice", choices=_declared("jittor_pranet.models.decoders.dsra", "GAIN_MODES")),
    "model.drop_path_rate": Check("float", low=0, high=1, high_open=True),
    "model.backbone_weights": Check("str", optional=True),
    "model.backbone2_weights": Check("str", optional=True),
    "model.init_checkpoint": Check("str", optional=True),
    "data.train": Check("str"),
    "data.test": Check("str", optional=True),
    "data.synthetic": Check("mapping", optional=True),
    "data.train_size": Check("int", low=32, multiple_of=32),
    "data.test_size": Check("int", optional=True, low=32, multiple_of=32),
    "data.val_fraction": Check("float", low=0, high=1, high_open=True),
    "data.mask_threshold": Check("int", low=0, high=255),
    "data.num_workers": Check("int", low=0),
    "data.augment": Check("bool_or_mapping"),
    "data.on_size_mismatch": Check("choice", choices=_declared("jittor_pranet.data.datasets", "SIZE_MISMATCH_POLICIES")),
    "data.format": Check("choice", choices=_declared(_LAYOUTS, "FORMATS")),
    "data.label_remap": Check("choice", choices=_declared("jittor_pranet.data.multiclass", "LABEL_REMAP_CHOICES")),
    "data.class_names": Check("strs", optional=True),
    "data.palette": Check("list", optional=True),
    "data.channels": Check("choice", choices=_declared(_LAYOUTS, "IMAGE_CHANNELS")),
    "train.epochs": Check("int", low=1),
    "train.batch_size": Check("int", low=1),
    "train.optimizer": Check("choice", choices=_declared("jittor_pranet.engine.optim", "OPTIMIZERS")),
    "train.loss": Check("choice", choices=_declared("jittor_pranet.losses", "LOSS_KINDS")),
    "train.loss_weights": Check("mapping", optional=True),
    "train.supervision": Check("choice", choices=_declared("jittor_pranet.losses.multiclass", "SUPERVISIONS")),
    "train.lr": Check("float", low=0, low_open=True),
    "train.betas": Check("floats", length=2, low=0, high=1, high_open=True),
    "train.weight_decay": Check("float", low=0),
    "train.clip": Check("float", optional=True, low=0, low_open=True),
    "train.multi_scale": Check("floats", nonempty=True, low=0, low_open=True),
    "train.lr_decay_rate": Check("float", low=0, low_open=True, high=1),
    "train.lr_decay_every": Check("int", low=1),
    "train.seed": Check("int", low=0),
    "train.sync_bn": Check("bool"),
    "train.checkpoint_every": Check("int", low=0),
    "train.val_every": Check("int", low=1),
    "train.val_size": Check("int", optional=True, low=32, multiple_of=32),
    "train.max_steps": Check("int", optional=True, low=1),
    "train.time_limit_min": Check("float", optional=True, low=0, low_open=True),
    "train.warmup": Check("bool"),
    "output.dir": Check("str"),
    "output.name": Check("str", optional=True),
    "output.predict_test": Check("bool"),
    "output.hd95_convention": Check("choice", choices=_declared("jittor_pranet.metrics.hausdorff", "HD95_CONVENTIONS")),
}


_KNOWN = set(_flatten(DEFAULTS))


def _known_models() -> List[str]:
    from .models.registry import list_models  # no Jittor: validating a config stays cheap

    return list_models()


def _model_task(name: str) -> str:
    from .models.registry import model_info

    return model_info(name).task


def _augment_options() -> Dict[str, str]:
    import dataclasses

    from .data.datasets import Augment

    return {f.name: "float" for f in dataclasses.fields(Augment)}


def _synthetic_options(task: str) -> Dict[str, str]:
    """The arguments of the generator a task uses (``root`` is the output folder)."""
    if task == "multiclass":
        return {"root": "str", "seed": "int", "train_cases": "int", "test_cases": "int", "size": "int", "depth": "int"}
    return {"root": "str", "n_train": "int", "n_test": "int", "size": "any", "seed": "int", "workers": "int"}


def _check_options(key: str, value, options: Dict[str, str]) -> None:
    """The keys of a mapping-valued option (``data.augment: {hflip: 0.5}``) and their types."""
    if not isinstance(value, dict):
        return
    for name, v in value.items():
        if name not in options:
            close = difflib.get_close_matches(str(name), sorted(options), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(options))}"
            raise UserError(f"unknown option {key}.{name}{hint}")
        kind = options[name]
        if kind in ("int", "float"):
            Check(kind, low=0)(f"{key}.{name}", v)
        elif kind == "str":
            Check("str")(f"{key}.{name}", v)


def validate(cfg: Dict[str, Any]) -> None:
    """Check every key against :data:`SCHEMA` (values normalised in place: ``"1e-4"`` -> 1e-4), then
    the rules that involve several keys. Raises :class:`UserError` with one line."""
    for key, value in _flatten(cfg).items():
        check = SCHEMA.get(key)
        if check is None:
            continue  # data.synthetic.* are the generator's own arguments
        if "." in key:
            section, name = key.split(".", 1)
            cfg[section][name] = check(key, value)
        else:
            cfg[key] = check(key, value)
    m, d, t, o = cfg["model"], cfg["data"], cfg["train"], cfg["output"]
    models = _known_models()
    if m["name"] not in models:
        close = difflib.get_close_matches(m["name"], models, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"model.name {m['name']!r} is not a model; choose one of {', '.join(models)}{hint}")
    for size in scale_sizes(d["train_size"], t["multi_scale"]):
        if size < 32:
            raise UserError(f"train.multi_scale {t['multi_scale']} gives a training size of {size} from "
                            f"data.train_size {d['train_size']}: every size must be >= 32")
    _check_options("data.augment", d["augment"], _augment_options())
    _check_options("train.loss_weights", t.get("loss_weights"), {"ce": "float", "dice": "float", "bg_bce": "float"})
    _check_options("data.synthetic", d["synthetic"], _synthetic_options(resolved_task(cfg)))
    name = o["name"]
    if name is not None and (Path(name).name != name or name in (".", "..")):
        raise UserError(f"output.name must be a plain folder name inside output.dir, not {name!r} "
                        "(use output.dir or --run-dir for another place)")
    if cfg["task"] == "binary" and (_model_task(m["name"]) == "multiclass" or m["num_classes"] > 1):
        raise UserError(f"task binary needs a one-class PraNet model; {m['name']} with num_classes "
                        f"{m['num_classes']} is trained with task: multiclass")


def save_config(cfg: Dict[str, Any], path: Path) -> None:
    from .utils.io import atomic_write_text

    atomic_write_text(path, dump_yaml(cfg))


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value shared by two keys out twice: the loader refuses anchors."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump_yaml(cfg: Dict[str, Any]) -> str:
    """The YAML text of a config, without anchors, so that :func:`load_config` reads it back."""
    return yaml.dump(cfg, Dumper=_NoAliasDumper, sort_keys=False)


def scale_sizes(train_size: int, rates: Iterable[float]) -> List[int]:
    """The official multi-scale sizes: round(size * rate / 32) * 32 (352 -> 256, 352, 448)."""
    return [int(round(train_size * float(r) / 32) * 32) for r in rates]
