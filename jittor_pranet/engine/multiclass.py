"""Multi-class training and volume testing (Synapse, ACDC, custom label maps) on the binary trainer.

:class:`MultiClassTrainer` keeps everything :class:`~jittor_pranet.engine.trainer.Trainer` gives a
run (run folder, ``last.pkl``/``best.pkl``, crash-safe resume, NaN guard, ``steps.csv``, curves,
MPI) and changes what differs in the official EMCAD/MIST recipe:

* data: slices of a multi-class dataset (:func:`~jittor_pranet.data.load_multiclass_data`), the
  official augmentation (rot90 + flip or a small rotation), one scale;
* step: one update per batch with the multi-class loss (DSRA fg/bg or CE + Dice, summed over the
  supervised output subsets), no gradient clamp, AdamW in the recipes;
* validation: whole validation *volumes* (cases held out from training) scored per class, the
  best checkpoint is the best validation mean Dice: the test volumes are never looked at.

Grayscale slices go to EMCAD as one channel (its 1 -> 3 stem); PraNet-V2 models take the channel
repeated three times.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..ops import jt
from .trainer import LAST, Trainer, TrainingDiverged

TASK = "multiclass"


def takes_grayscale(model_name: str) -> bool:
    """EMCAD has the official 1 -> 3 channel stem for grayscale slices; PraNet takes RGB."""
    from ..models.registry import model_info

    return model_info(model_name).in_channels == 1


def as_model_input(images: np.ndarray, model_name: str) -> np.ndarray:
    """N x C x S x S slices as the model takes them: EMCAD accepts 1 channel, PraNet needs 3."""
    if images.shape[1] == 1 and not takes_grayscale(model_name):
        return np.repeat(images, 3, axis=1)
    return images


def load_data(cfg: Dict[str, Any], log: Callable[[str], None] = print):
    """The multi-class dataset a config names (``data.synthetic`` generates the embedded one)."""
    from ..data.multiclass_layouts import load_multiclass_data

    d, t = cfg["data"], cfg["train"]
    root = d["train"]
    if d.get("synthetic"):
        from ..data.synthetic_organs import make_synthetic_organs

        syn = dict(d["synthetic"])
        root = syn.pop("root", "data/synthetic_organs")
        try:
            make_synthetic_organs(root, **syn)
        except TypeError as exc:
            raise UserError(f"data.synthetic: {exc}") from None
        d["train"] = root
    data = load_multiclass_data(root, class_names=d.get("class_names"), label_remap=d.get("label_remap", "auto"),
                                val_fraction=float(d["val_fraction"]), seed=int(t["seed"]),
                                palette=d.get("palette"), channels=int(d.get("channels") or 1))
    fmt = d.get("format", "auto")
    if fmt != "auto" and fmt != data.kind:
        raise UserError(f"data.format is {fmt}, but {root} holds the {data.kind} layout")
    log(f"data: {data.summary()}")
    if data.intensity is not None:  # raw volumes (nnU-Net NIfTI): normalised as fitted on the training cases
        from ..data.nnunet import cases_of, check_cases, training_cases
        from .volume_predict import describe_preprocessing

        val_slices = [s for v in data.val_volumes for s in v.slices]
        check_cases(cases_of(list(data.train_slices) + val_slices), data.num_classes)
        pre = data.intensity.fit(training_cases(data.train_slices))
        log(f"intensity: {describe_preprocessing(pre)} ({pre.get('source') or 'channel ' + repr(data.intensity.channel)})")
    return data


def resolve_loss(cfg: Dict[str, Any], info) -> Callable:
    """``train.loss`` as a function of (outputs, labels) for the model of catalog row ``info``
    (``auto``: the model's own supervision, ``info.loss``); see :func:`jittor_pranet.losses.select_loss`."""
    from ..losses import multiclass_dsra_loss, multiclass_loss, select_loss

    kind, supervision = cfg["train"]["loss"], cfg["train"]["supervision"]
    if kind == "auto":
        kind = info.loss
    custom = cfg["train"].get("loss_weights")
    if custom:  # Table 4's components: CE, Dice, background BCE; an omitted term keeps its official weight
        official = {"ce": 0.5, "dice": 0.7, "bg_bce": 0.3} if kind == "dsra" else {"ce": 0.3, "dice": 0.7, "bg_bce": 0.0}
        w = {**official, **{k: float(v) for k, v in custom.items()}}
        if kind != "dsra" and w["bg_bce"] != 0:
            raise UserError("train.loss_weights.bg_bce needs train.loss=dsra (a model with background outputs)")
        if not any(w.values()):
            raise UserError("train.loss_weights: every term is 0; keep at least one loss term")
        if kind == "dsra":
            if not info.dual:
                raise UserError(f"train.loss=dsra needs a model with fg/bg outputs; {cfg['model']['name']} has "
                                f"{len(info.outputs)} outputs")
            weights3 = (w["ce"], w["dice"], w["bg_bce"])
            return lambda outs, labels: multiclass_dsra_loss(outs, labels, supervision=supervision, weights=weights3)
        weights2 = (w["ce"], w["dice"])
        fg = (lambda outs: list(outs)[:len(info.fg_outputs)]) if info.dual else list
        return lambda outs, labels: multiclass_loss(fg(outs), labels, supervision=supervision, weights=weights2)
    return select_loss(info, kind, supervision, cfg["model"]["name"])


def logits_function(model, model_name: str, rule: Optional[str] = None) -> Callable[[np.ndarray], np.ndarray]:
    """numpy N x C x S x S -> numpy logits N x K x S x S, the map the official test scripts arg-max
    (``rule``: another of the catalog's prediction rules, e.g. the model's validation rule)."""
    from ..models import prediction_logits

    def predict(batch: np.ndarray) -> np.ndarray:
        with jt.no_grad():
            x = jt.array(np.ascontiguousarray(as_model_input(batch, model_name), dtype=np.float32))
            return prediction_logits(model, model(x), rule).numpy()

    return predict


class _LabelAsMask:
    """The slice dataset with ``label`` also under ``mask``, the key the trainer's loop reads."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.augment = dataset.augment

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.get(index)

    def get(self, index: int, rng: Optional[np.random.Generator] = None) -> Dict[str, Any]:
        sample = self.dataset.get(index, rng)
        sample["mask"] = sample.pop("label")
        return sample


def _slice_augment(flag):
    from ..data.multiclass import SliceAugment

    if not flag:
        return None
    return SliceAugment(**flag) if isinstance(flag, dict) else SliceAugment()


class MultiClassTrainer(Trainer):
    """The multi-class recipe on the binary trainer's machinery (module docstring)."""

    def _setup_data(self) -> None:
        from ..data import BatchLoader
        from ..data.multiclass import MultiClassSliceDataset

        d, t, m = self.cfg["data"], self.cfg["train"], self.cfg["model"]
        self.data = load_data(self.cfg, self.log)
        if not self.data.train_slices:
            raise UserError(f"{self.data.root}: no training slices left after the validation split")
        if int(m["num_classes"]) == 1:
            m["num_classes"] = self.data.num_classes
        elif int(m["num_classes"]) != self.data.num_classes:
            raise UserError(f"model.num_classes is {m['num_classes']} but the data has {self.data.num_classes} "
                            f"classes (background + {', '.join(self.data.class_names)})")
        if [float(r) for r in t["multi_scale"]] != [1.0]:
            self.log(f"note: train.multi_scale {t['multi_scale']} is not used: multi-class training runs at "
                     "data.train_size only, as the official recipe")
        self.train_size = int(d["train_size"])
        self.val_size = int(t["val_size"] or self.train_size)
        self.val_pairs = self.data.val_volumes  # what the base loop checks before validating
        self.train_set = MultiClassSliceDataset(
            self.data.train_slices, self.data.num_classes, self.train_size, augment=_slice_augment(d["augment"]),
            label_table=self.data.label_table, palette=self.data.palette, channels=self.data.channels)
        rank, world = (jt.rank, jt.world_size) if jt.in_mpi else (0, 1)
        self.loader = BatchLoader(_LabelAsMask(self.train_set), int(t["batch_size"]), shuffle=True,
                                  seed=int(t["seed"]), num_workers=int(d["num_workers"]), rank=rank, world_size=world)
        self.log(f"split: {len(self.data.train_slices)} training slices / {len(self.data.val_volumes)} validation "
                 f"volumes (by case, seed {t['seed']}); {len(self.loader)} batches per epoch")

    def _setup_model(self) -> None:
        super()._setup_model()
        from ..models.registry import model_info

        self.loss_fn = resolve_loss(self.cfg, model_info(self.cfg["model"]["name"]))

    def _meta(self) -> Dict[str, Any]:
        meta = super()._meta()
        meta.update(task=TASK, class_names=list(self.data.class_names))
        from .volume_predict import training_preprocessing  # intensity / layout for predict on NIfTI

        meta["preprocessing"] = training_preprocessing(self.data)
        return meta

    def train_sizes(self) -> List[int]:
        return [self.train_size]  # one scale, as the official recipe

    def batch_losses(self, images: np.ndarray, labels: np.ndarray) -> Iterator[Tuple[int, "jt.Var"]]:
        x = jt.array(as_model_input(images, self.cfg["model"]["name"]))
        yield self.train_size, self.loss_fn(self.model(x), jt.array(labels))

    def validation_warmup_input(self) -> Optional[np.ndarray]:
        """A batch of validation-size slices, as :meth:`validate` feeds the model."""
        if not self.val_pairs:
            return None
        return np.zeros((8, self.data.channels, self.val_size, self.val_size), np.float32)

    def validation_logits(self, images: np.ndarray) -> np.ndarray:
        from ..models.registry import model_info

        name = self.cfg["model"]["name"]
        return logits_function(self.model, name, model_info(name).validation_rule)(images)

    def train_batch(self, images: np.ndarray, labels: np.ndarray) -> Dict[int, float]:
        """One update on the batch at the training size; returns {size: loss}."""
        _, loss = next(self.batch_losses(images, labels))
        self.optimizer.step(loss)
        jt.sync(self.buffers + [loss])  # materialise BatchNorm statistics (see Trainer.train_batch)
        value = float(loss.item())
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss became {value} at epoch {self.epoch + 1}, step {self.step + 1}; "
                                   f"stopped, last good checkpoint kept: {self.run_dir / LAST}")
        return {self.train_size: value}

    def validate(self) -> Dict[str, float]:
        """Mean Dice / IoU over classes of the validation volumes (no HD95: selection needs Dice only)."""
        from ..evaluation.volumes import evaluate_volumes
        from ..models.registry import model_info

        rule = model_info(self.cfg["model"]["name"]).validation_rule
        self.model.eval()
        try:
            result = evaluate_volumes(self.data.iter_volumes("val"), logits_function(self.model, self.cfg["model"]["name"], rule),
                                      self.data.class_names, self.val_size, batch_size=8, progress=False,
                                      total=len(self.data.val_volumes), compute_hd95=False)
        finally:
            self.model.train()
        means = result.means()
        return {"val_mDice": means["mDice"], "val_mIoU": means["mIoU"]}


def recorded_preprocessing(meta, checkpoint) -> Dict[str, Any]:
    """The intensity preprocessing a checkpoint records; without one (older runs, official weights) the
    Synapse CT window, with a warning, as ``predict`` on NIfTI files does."""
    from .volume_predict import DEFAULT_PREPROCESSING, check_preprocessing, describe_preprocessing

    pre = meta.get("preprocessing") if isinstance(meta, dict) else None
    if pre is None:
        pre = dict(DEFAULT_PREPROCESSING)
        _log(f"warning: {checkpoint} records no intensity preprocessing; the raw volumes get the Synapse CT "
             f"window: {describe_preprocessing(pre)}")
    return check_preprocessing(pre)


def checkpoint_path(run_dir: Path) -> Path:
    """best.pkl (chosen on validation volumes) when there is one, else last.pkl."""
    run_dir = Path(run_dir)
    return run_dir / "best.pkl" if (run_dir / "best.pkl").is_file() else run_dir / LAST


def evaluate_checkpoint(checkpoint, data, out_dir: Optional[Path], size: Optional[int] = None,
                        batch_size: int = 8, progress: bool = True, compute_hd95: bool = True,
                        overlays_per_volume: int = 3, hd95_convention: str = "medpy"):
    """Test volumes of ``data`` (a :class:`MultiClassData`) through a multi-class checkpoint.

    Returns ``(VolumeEvalResult, ModelSpec, size)``; with ``out_dir`` the per-class tables and
    overlays are written there."""
    from ..checkpoint import read_state_dict
    from ..evaluation.volumes import evaluate_volumes
    from .model_spec import load_model

    loaded = read_state_dict(checkpoint)
    model, spec = load_model(checkpoint, loaded=loaded)
    size = int(size or spec.test_size or 224)
    if data.intensity is not None:  # raw volumes: normalised as the model's training data was
        data.intensity.use(recorded_preprocessing(loaded.meta, checkpoint))
    if spec.num_classes != data.num_classes:
        raise UserError(f"{checkpoint}: the model has {spec.num_classes} classes, the data {data.num_classes} "
                        f"(background + {', '.join(data.class_names)})")
    if not data.test_volumes:
        raise UserError(f"{data.root}: no test volumes")
    result = evaluate_volumes(data.iter_volumes("test"), logits_function(model, spec.name), data.class_names, size,
                              batch_size=batch_size, out_dir=out_dir, overlays_per_volume=overlays_per_volume,
                              progress=progress, total=len(data.test_volumes), compute_hd95=compute_hd95,
                              hd95_convention=hd95_convention)
    return result, spec, size


__all__ = ["MultiClassTrainer", "as_model_input", "checkpoint_path", "evaluate_checkpoint", "takes_grayscale", "load_data",
           "logits_function", "resolve_loss"]


# ------------------------------------------------------------------ test volumes (train, test, quickstart)

def _log(line: str) -> None:
    print(line, file=sys.stderr)


def test_data(root, cfg: Optional[Dict[str, Any]], log=_log):
    """The dataset under ``root`` read with the class names / label remap a run was trained with."""
    from ..data.multiclass_layouts import load_multiclass_data

    d = (cfg or {}).get("data") or {}
    data = load_multiclass_data(root, class_names=d.get("class_names"), label_remap=d.get("label_remap") or "auto",
                                val_fraction=0.0, palette=d.get("palette"), channels=int(d.get("channels") or 1))
    log(f"data: {data.summary()}")
    return data


def print_volume_table(result, title: str) -> None:
    print(f"\n{title}\n{result.markdown_table()}")
    print(result.conventions())
    print("HD95 (voxels): no voxel spacing, as the official tables; HD95 (mm): with each volume's spacing "
          "(n/a when a volume has none)")
    sys.stdout.flush()


#: where test_after_training writes the scores of each checkpoint (``report --checkpoint`` reads them)
TEST_FOLDERS = {"best": "test", "last": "test_last"}


def selected_epochs(run_dir: Path) -> Dict[str, Optional[Dict[str, Any]]]:
    """From the run's ``metrics.json`` history: the epoch (and validation mDice) of best.pkl, the first
    epoch with the highest validation mDice as the trainer keeps it, and of last.pkl, the final one."""
    import json

    path = Path(run_dir) / "metrics.json"
    try:
        history = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    except ValueError:
        history = []
    scored = [r for r in history if isinstance(r, dict) and r.get("val_mDice") is not None]
    best = None
    for r in scored:
        if best is None or r["val_mDice"] > best["val_mDice"]:
            best = r
    last = history[-1] if history and isinstance(history[-1], dict) else None
    pick = (lambda r: None if r is None else {"epoch": r.get("epoch"), "step": r.get("step"),
                                              "val_mDice": r.get("val_mDice")})
    return {"best": pick(best), "last": pick(last)}


def test_after_training(run_dir: Path, cfg: Dict[str, Any], progress: bool = True):
    """Score the test volumes (``data.test``, else the training root's test split) with both checkpoints
    of the run: best.pkl (chosen on the validation volumes only) into ``<run>/test`` and last.pkl (the
    final epoch) into ``<run>/test_last``; without validation there is only last.pkl, written to
    ``<run>/test``. ``<run>/test_checkpoints.json`` records which epoch each one is and its test means.
    Returns ``{"best"|"last": VolumeEvalResult}``."""
    import json

    from ..utils.io import Unfinished, atomic_write_text

    root = cfg["data"].get("test") or cfg["data"]["train"]
    data = test_data(root, cfg)
    if not data.test_volumes:
        _log(f"no test volumes in {root}: nothing to evaluate")
        return None
    run_dir = Path(run_dir)
    size = int(cfg["data"]["test_size"] or cfg["data"]["train_size"])
    convention = cfg.get("output", {}).get("hd95_convention", "medpy")
    epochs = selected_epochs(run_dir)
    plan = [("best", run_dir / "best.pkl", run_dir / TEST_FOLDERS["best"]),
            ("last", run_dir / LAST, run_dir / TEST_FOLDERS["last"])]
    if not plan[0][1].is_file():  # no validation set: last.pkl is the run's only checkpoint
        _log("no best.pkl (no validation volumes): scoring last.pkl only, into test/")
        plan = [("last", run_dir / LAST, run_dir / TEST_FOLDERS["best"])]
    results, summary = {}, {}
    for which, ckpt, folder in plan:
        with Unfinished(folder):  # an interrupted evaluation leaves no partial tables
            result, _, _ = evaluate_checkpoint(ckpt, data, folder, size=size, progress=progress,
                                               hd95_convention=convention)
        at = epochs.get(which) or {}
        chosen = (f"epoch {at.get('epoch')}, validation mDice {at['val_mDice']:.4f}" if at.get("val_mDice") is not None
                  else f"epoch {at.get('epoch')}")
        role = "best on validation" if which == "best" else "final epoch"
        print_volume_table(result, f"test volumes, {ckpt.name} ({role}: {chosen}; {len(data.test_volumes)} volumes "
                                   f"from {root}):")
        _log(f"wrote {folder}/per_class.md, per_class.csv, metrics.json, overlays/")
        results[which] = result
        summary[which] = {"checkpoint": ckpt.name, "folder": folder.name, **at, "test": result.means()}
    if len(results) == 2:
        b, last = results["best"].means()["mDice"], results["last"].means()["mDice"]
        print(f"test mean Dice: best.pkl {b:.4f} (epoch {summary['best'].get('epoch')}), last.pkl {last:.4f} "
              f"(epoch {summary['last'].get('epoch')}); best.pkl was chosen on validation volumes only")
        sys.stdout.flush()
    atomic_write_text(run_dir / "test_checkpoints.json", json.dumps(summary, indent=2) + "\n")
    return results
