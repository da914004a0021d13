"""The official PraNet training recipe in Jittor, crash-safe.

One optimizer step per multi-scale rate (sizes ``round(size*rate/32)*32``, images and masks resized
bilinear with ``align_corners=True``), structure loss on every side output (+0.8 background BCE for
V2), per-element gradient clamp, PyTorch-exact Adam, step LR decay.

Everything a run needs to continue lives in ``last.pkl`` (model, optimizer moments, epoch/step,
data-loader position, history, config), written atomically (temp file, fsync, rename) at the end of
each epoch and every ``train.checkpoint_every`` steps; ``--resume`` continues bit-for-bit on CPU.
Randomness is re-seeded per step from (seed, step) so it does not depend on where a run resumed.
A non-finite loss stops the run before anything is written, so the last good checkpoint survives.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .. import checkpoint as ck
from ..config import scale_sizes
from ..errors import UserError
from ..models.registry import model_info
from ..ops import jt, resize_bilinear
from .optim import OPTIMIZERS, trainable_parameters

LAST, BEST = "last.pkl", "best.pkl"


class TrainingDiverged(UserError):
    """The loss became NaN/inf: the run stops and the last good checkpoint is kept."""


def rescale_batch(images: "jt.Var", masks: "jt.Var", size: int):
    """Multi-scale resize of the official loop (bilinear, align_corners=True, images and masks)."""
    if images.shape[2] == size and images.shape[3] == size:
        return images, masks
    return (resize_bilinear(images, (size, size), align_corners=True),
            resize_bilinear(masks, (size, size), align_corners=True))


def is_main_process() -> bool:
    return not jt.in_mpi or jt.rank == 0


class Trainer:
    """Builds data, model and optimizer from a resolved config and runs (or resumes) training."""

    def __init__(self, cfg: Dict[str, Any], run_dir: Path, resume: bool = False, progress: bool = True,
                 log=print, prepare_run_dir=None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress and is_main_process()
        self.log = log if is_main_process() else (lambda *a, **k: None)
        self.history: List[Dict[str, Any]] = []
        self.epoch = 0          # epochs completed
        self.step = 0           # optimizer batches completed (each = len(multi_scale) updates)
        self.best_score = -1.0
        self._setup_data()
        self._setup_model()
        # BatchNorm running statistics: materialised after every update (see train_batch)
        self.buffers = [v for n, v in self.model.named_parameters() if n.endswith(("running_mean", "running_var"))]
        self.optimizer = self._build_optimizer()
        # Materialise the initial state: a lazily initialised tensor fused into the first step's graph
        # rounds differently from the same values held in memory (as after a warm-up or a resume).
        jt.sync([p for _, p in self.model.named_parameters()] + self.optimizer.exp_avg + self.optimizer.exp_avg_sq)
        if prepare_run_dir is not None:  # created only once data and model are known to be good
            prepare_run_dir()
        if resume:
            self._resume()

    # ------------------------------------------------------------------ setup
    def _build_optimizer(self):
        """``train.optimizer``: PyTorch-exact Adam (the official PraNet recipe) or AdamW."""
        t = self.cfg["train"]
        cls = OPTIMIZERS[t.get("optimizer") or "adam"]
        return cls(trainable_parameters(self.model), lr=float(t["lr"]), betas=tuple(t["betas"]),
                   weight_decay=float(t["weight_decay"]), clip_value=t["clip"])

    def _setup_data(self) -> None:
        from ..data import BatchLoader, SegmentationDataset, discover_pairs, make_synthetic_polyps, split_train_val

        d, t = self.cfg["data"], self.cfg["train"]
        train_root = d["train"]
        if d.get("synthetic"):
            syn = dict(d["synthetic"])
            root = make_synthetic_polyps(syn.pop("root", "data/synthetic"), **syn)
            train_root = str(Path(root) / "TrainDataset")
            if d.get("test") is None:
                d["test"] = str(Path(root) / "TestDataset")
        pairs, report = discover_pairs(train_root, on_mismatch=d["on_size_mismatch"])
        self.log(f"data: {train_root}: {report.summary()}")
        train_pairs, val_pairs = split_train_val(pairs, float(d["val_fraction"]), seed=int(t["seed"]))
        if not train_pairs:
            raise UserError(f"{train_root}: no training pairs left after the validation split")
        self.val_pairs = val_pairs
        self.train_size = int(d["train_size"])
        self.val_size = int(t["val_size"] or self.train_size)
        self.train_set = SegmentationDataset(train_pairs, size=self.train_size, mask_threshold=int(d["mask_threshold"]),
                                             augment=_augment(d["augment"]))
        self.val_set = SegmentationDataset(val_pairs, size=self.val_size, mask_threshold=int(d["mask_threshold"]))
        rank, world = (jt.rank, jt.world_size) if jt.in_mpi else (0, 1)
        self.loader = BatchLoader(self.train_set, int(t["batch_size"]), shuffle=True, seed=int(t["seed"]),
                                  num_workers=int(d["num_workers"]), rank=rank, world_size=world)
        self.log(f"split: {len(train_pairs)} train / {len(val_pairs)} validation images "
                 f"(seed {t['seed']}); {len(self.loader)} batches per epoch")

    def _setup_model(self) -> None:
        from ..models import build_model

        m = self.cfg["model"]
        jt.set_global_seed(int(self.cfg["train"]["seed"]))
        kw: Dict[str, Any] = {}
        if m.get("encoder"):
            kw["encoder"] = m["encoder"]
        info = model_info(m["name"])
        if info.dual:
            kw["gain"] = m["gain"]
        if info.takes_drop_path(m.get("encoder")):
            kw["drop_path_rate"] = float(m["drop_path_rate"])
        try:
            self.model = build_model(m["name"], num_classes=int(m["num_classes"]), **kw)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if m.get("init_checkpoint"):
            rep = ck.load_checkpoint(self.model, m["init_checkpoint"], strict=True)
            self.log(f"model: initialised from {m['init_checkpoint']} ({len(rep.loaded)} tensors)")
        elif m.get("backbone_weights") and not Path(m["backbone_weights"]).is_file():
            self.log(f"WARNING: model.backbone_weights {m['backbone_weights']} not found: the encoder starts from "
                     "RANDOM weights (see weights/README.md for the ImageNet files; set "
                     "model.backbone_weights=null to silence this)")
        elif m.get("backbone_weights"):
            self._load_backbone(m["backbone_weights"], None, "model.backbone_weights")
            second = info.encoder2_attr
            if second and m.get("backbone2_weights"):
                if not Path(m["backbone2_weights"]).is_file():
                    self.log(f"WARNING: model.backbone2_weights {m['backbone2_weights']} not found: {second} "
                             "starts from RANDOM weights")
                else:
                    self._load_backbone(m["backbone2_weights"], second, "model.backbone2_weights")
            elif second:
                self.log(f"warning: model.backbone2_weights is not set: {second} starts from random weights")
        else:
            self.log("warning: model.backbone_weights is not set: the encoder starts from random weights "
                     "(fine for the synthetic quickstart; for real data use the ImageNet .pth)")

        if jt.in_mpi:
            self._setup_data_parallel()

    def _load_backbone(self, path: str, attr: Optional[str], key: str) -> None:
        """One ImageNet encoder file into the encoder at ``attr`` (None: the model's own); strict on shapes."""
        loaded = ck.read_state_dict(path)
        rep, mapped, ignored = ck.match_backbone(self.model, loaded.state_dict, attr)
        prefix = ck.backbone_prefix(self.model, attr)
        if not mapped or rep.mismatched or rep.missing:
            raise UserError(f"{path} ({key}): does not match the {self.cfg['model']['name']} encoder "
                            f"'{prefix[:-1]}' ({rep.summary()})")
        ck.assign_state_dict(self.model, mapped, rep.loaded)
        n_random = len(ck.model_shapes(self.model)) - len(rep.loaded)
        self.log(f"model: {prefix[:-1]} from {path} ({len(rep.loaded)} tensors; {len(ignored)} file keys unused); "
                 f"{n_random} other tensors not from this file")

    def _setup_data_parallel(self) -> None:
        """MPI: every rank starts from rank 0's weights (Jittor seeds ranks differently) and, with
        ``train.sync_bn``, BatchNorm normalises with the statistics of all ranks' batches, so that
        N ranks x batch b follow the same trajectory as one process with batch N*b."""
        from ..ops import set_sync_batchnorm

        sync = bool(self.cfg["train"]["sync_bn"])
        set_sync_batchnorm(self.model, sync)
        params = [p for _, p in self.model.named_parameters()]  # running statistics included
        for p in params:
            p.assign(p.mpi_broadcast(0))
        jt.sync(params)
        self.log(f"data parallel: {jt.world_size} ranks x batch {self.cfg['train']['batch_size']} "
                 f"(global batch {jt.world_size * int(self.cfg['train']['batch_size'])}), "
                 f"BatchNorm statistics {'synchronised' if sync else 'per rank'}")

    # ------------------------------------------------------------------ checkpoints
    def _meta(self) -> Dict[str, Any]:
        m = self.cfg["model"]
        return {"model": m["name"], "num_classes": int(m["num_classes"]), "encoder": m.get("encoder"),
                "config": self.cfg, "epoch": self.epoch, "step": self.step}

    def save(self, name: str = LAST, with_state: bool = True) -> Path:
        if not is_main_process():
            return self.run_dir / name
        meta = self._meta()
        if with_state:
            meta["train_state"] = {
                "optimizer": self.optimizer.state_dict(),
                "loader": self.loader.state_dict(),
                "history": self.history,
                "best_score": self.best_score,
            }
        return ck.save_checkpoint(self.model, self.run_dir / name, meta=meta)

    def _resume(self) -> None:
        path = self.run_dir / LAST
        if not path.is_file():
            raise UserError(f"{path}: nothing to resume (no {LAST} in the run folder)")
        loaded = ck.read_state_dict(path)
        state = loaded.meta.get("train_state")
        if not state:
            raise UserError(f"{path}: has no training state to resume from")
        ck.load_state_dict(self.model, loaded.state_dict, strict=True, source=str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.history = list(state["history"])
        self.best_score = float(state["best_score"])
        self.epoch = int(loaded.meta["epoch"])
        self.step = int(loaded.meta["step"])
        self.log(f"resumed from {path}: epoch {self.epoch}, step {self.step}")

    # ------------------------------------------------------------------ training
    def _lr_for_epoch(self, epoch: int) -> float:
        t = self.cfg["train"]
        return float(t["lr"]) * float(t["lr_decay_rate"]) ** ((epoch + 1) // int(t["lr_decay_every"]))

    def train_sizes(self) -> List[int]:
        """Network input side of each update of a batch (the multi-scale sizes)."""
        return list(scale_sizes(self.train_size, self.cfg["train"]["multi_scale"]))

    def batch_losses(self, images: np.ndarray, masks: np.ndarray) -> Iterator[Tuple[int, "jt.Var"]]:
        """(size, loss) of each update of one batch; the next forward is built only after the
        caller has updated the model with the previous loss (as the official loop does)."""
        from ..losses import select_loss

        x, y = jt.array(images), jt.array(masks)
        loss_fn = select_loss(model_info(self.cfg["model"]["name"]))
        for size in self.train_sizes():
            xs, ys = rescale_batch(x, y, size)
            yield size, loss_fn(self.model(xs), ys)

    def train_batch(self, images: np.ndarray, masks: np.ndarray) -> Dict[int, float]:
        """One official batch: an update per multi-scale rate. Returns the losses by size."""
        losses = {}
        for size, loss in self.batch_losses(images, masks):
            self.optimizer.step(loss)
            # Evaluate the running-stat updates now: left lazy they would be fused into the next
            # step's graph and round differently from a run resumed from saved values.
            jt.sync(self.buffers + [loss])
            value = float(loss.item())
            if not math.isfinite(value):
                kept = (f"last good checkpoint kept: {self.run_dir / LAST}" if (self.run_dir / LAST).is_file()
                        else "no checkpoint had been written yet")
                raise TrainingDiverged(
                    f"loss became {value} at epoch {self.epoch + 1}, step {self.step + 1} (size {size}); "
                    f"stopped, {kept} (a smaller train.lr may help)")
            losses[size] = value
        return losses

    # ------------------------------------------------------------------ warm-up
    def warmup_batch_sizes(self) -> List[int]:
        """Batch sizes the loop will see: the full batch, and the smaller last batch of an epoch
        (one process only: with MPI ranks the loader pads the last batch to full size)."""
        full = int(self.loader.batch_size)
        sizes = [full]
        if self.loader.world_size == 1 and not self.loader.drop_last:
            rest = len(self.loader.dataset) % full
            if rest:
                sizes.append(rest)
        return sizes

    def validation_warmup_input(self) -> Optional[np.ndarray]:
        """One validation batch (eval mode, ``val_size``), or None without validation images."""
        if not self.val_pairs:
            return None
        n = min(8, len(self.val_set))
        return np.stack([self.val_set[i]["image"] for i in range(n)])

    def warm_up(self) -> float:
        """Compile Jittor's kernels before the first step; returns the seconds it took.

        Jittor compiles a kernel the first time it meets an operator / shape, and on a cold cache
        that takes minutes (88 kernels, 79 s for one PVTv2-b0 forward+backward at 96 px on 2
        cores), which would otherwise be charged to the first epoch and to ``train.time_limit_min``.
        One forward+backward per training input shape (every multi-scale size, full and last
        batch), one optimizer update applied to throw-away copies of the parameters, and one
        validation forward. Nothing of the run changes: the parameters and optimizer state are not
        touched, BatchNorm running statistics are restored, and the global random streams are
        restored (the loop reseeds Jittor's before every step anyway)."""
        import random

        start = time.time()
        sample = self.loader.dataset.get(0)  # no rng: never augmented, no random stream used
        batches = self.warmup_batch_sizes()
        val_input = self.validation_warmup_input()
        passes = len(batches) * len(self.train_sizes()) + (val_input is not None)
        sizes = ", ".join(f"{s} px" for s in self.train_sizes())
        self.log(f"compiling kernels (first run only): {passes} warm-up passes (training sizes {sizes}; "
                 f"batch {' and '.join(map(str, batches))}); nothing is trained")
        saved_buffers = [b.numpy().copy() for b in self.buffers]
        np_state, py_state = np.random.get_state(), random.getstate()
        scratch_params = [jt.array(p.numpy()).stop_grad() for p in self.optimizer.params]
        opt = self.optimizer
        scratch = type(opt)(scratch_params, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                            weight_decay=opt.weight_decay, clip_value=opt.clip_value)
        bar = _progress(passes, "compiling kernels (first run only)", self.progress)
        try:
            for n in batches:
                images = np.stack([sample["image"]] * n)
                masks = np.stack([sample["mask"]] * n)
                for _, loss in self.batch_losses(images, masks):
                    grads = opt.compute_grads(loss)
                    scratch.apply(grads)  # the update kernels, on copies
                    jt.sync(self.buffers + [loss])
                    if bar is not None:
                        bar.update(1)
            if val_input is not None:
                self.model.eval()
                try:
                    self.validation_logits(val_input)
                finally:
                    self.model.train()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            for buf, arr in zip(self.buffers, saved_buffers):
                buf.assign(jt.array(arr))
            jt.sync(self.buffers)
            np.random.set_state(np_state)
            random.setstate(py_state)
            del scratch, scratch_params
        seconds = time.time() - start
        self.log(f"kernels ready: warm-up took {seconds:.1f} s")
        return seconds

    def fit(self) -> Dict[str, Any]:
        t = self.cfg["train"]
        epochs = int(t["epochs"])
        max_steps = t.get("max_steps")
        ckpt_every = int(t["checkpoint_every"] or 0)
        self.model.train()
        stop = bool(max_steps and self.step >= int(max_steps))
        warnings: List[str] = []
        warmup_s, time_up = 0.0, False
        if stop:
            self.log(f"nothing to do: the run already made train.max_steps={max_steps} steps "
                     "(raise it with a train.max_steps=N override to continue)")
        elif self.epoch >= epochs:
            self.log(f"nothing to do: the run already completed train.epochs={epochs} epochs")
        elif t.get("warmup", True):
            warmup_s = self.warm_up()
        # a safety net, not the budget (the budget is train.epochs / train.max_steps): it starts after
        # the warm-up and, when it stops a run, says so loudly (here and in the result)
        limit_min = t.get("time_limit_min")
        train_start = time.time()
        deadline = train_start + 60 * float(limit_min) if limit_min else None
        while self.epoch < epochs and not stop:
            self.optimizer.lr = self._lr_for_epoch(self.epoch)
            self.loader.set_epoch(self.epoch)
            start = time.time()
            n_images, loss_sum, n_batches = 0, 0.0, 0
            bar = _progress(len(self.loader), f"epoch {self.epoch + 1}/{epochs}", self.progress,
                            initial=self.loader.state_dict()["position"])
            for batch in self.loader:
                jt.set_global_seed(int(t["seed"]) * 1000003 + self.step)  # resume-independent randomness
                t_step = time.time()
                losses = self.train_batch(batch["image"], batch["mask"])
                self.step += 1
                self._log_step(losses, time.time() - t_step)
                n_batches += 1
                n_images += len(batch["image"])
                main_loss = losses.get(self.train_size, next(iter(losses.values())))
                loss_sum += main_loss
                if bar is not None:
                    bar.set_postfix(loss=f"{main_loss:.4f}", img_s=f"{n_images / max(time.time() - start, 1e-9):.2f}")
                    bar.update(1)
                if ckpt_every and self.step % ckpt_every == 0:
                    self.save(LAST)
                if max_steps and self.step >= int(max_steps):
                    stop = True
                    break
                if deadline and time.time() > deadline:
                    stop = time_up = True
                    break
            if bar is not None:
                bar.close()
            completed = self.loader.state_dict()["position"] == 0  # the loader moved on to the next epoch
            if completed:
                self.epoch += 1
            if time_up and self.epoch < epochs:
                warnings.append(
                    f"WARNING: train.time_limit_min={float(limit_min):g} reached after {self.epoch} of {epochs} "
                    f"epochs (step {self.step}): training was CUT SHORT, so the model and its metrics are below "
                    "what the full run gives; rerun with a larger train.time_limit_min (or "
                    "train.time_limit_min=null)")
                self.log(warnings[-1])
            elif not completed:
                self.log(f"stopping early at step {self.step} (train.max_steps reached)")
            record = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.lr,
                      "train_loss": loss_sum / max(n_batches, 1), "images_per_s": n_images / max(time.time() - start, 1e-9),
                      "epoch_time_s": time.time() - start}
            if self.val_pairs and (self.epoch % int(t["val_every"]) == 0 or stop or self.epoch == epochs):
                record.update(self.validate())
            self.history.append(record)
            self.log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            score = record.get("val_mDice")
            if score is not None and score > self.best_score:
                self.best_score = score
                self.save(BEST, with_state=False)
            self.save(LAST)
            self.write_records()
        return {"epochs": self.epoch, "steps": self.step,
                "best_val_mDice": self.best_score if self.best_score >= 0 else None, "history": self.history,
                "warmup_s": warmup_s, "train_s": time.time() - train_start,
                "time_limit_reached": bool(warnings), "warnings": warnings}

    def _log_step(self, losses: Dict[int, float], seconds: float) -> None:
        """One line per optimizer batch in ``steps.csv`` (rank 0): a short run shows its loss falling.

        Appended and flushed per step; after a crash and ``--resume`` the steps since the last
        checkpoint appear twice (the later lines are the ones the resumed run computed)."""
        if not is_main_process():
            return
        path = self.run_dir / "steps.csv"
        new = not path.is_file()
        with open(path, "a") as f:
            if new:
                f.write("step,epoch,lr,size,loss,seconds\n")
            for size, value in losses.items():
                f.write(f"{self.step},{self.epoch + 1},{self.optimizer.lr:.6g},{size},{value:.6f},{seconds:.3f}\n")

    # ------------------------------------------------------------------ validation & records
    def validation_logits(self, images: np.ndarray) -> np.ndarray:
        """Logits of the validation rule for one batch (the model is in eval mode)."""
        from ..models import prediction_logits

        rule = model_info(self.cfg["model"]["name"]).validation_rule
        with jt.no_grad():
            return prediction_logits(self.model, self.model(jt.array(images)), rule).numpy()

    def validate(self) -> Dict[str, float]:
        from ..interp import probabilities
        from ..metrics.binary import Dice, IoU
        from .predictor import to_uint8_map

        self.model.eval()
        dice, iou = Dice(), IoU()
        from ..data import read_mask

        with jt.no_grad():
            for i in range(0, len(self.val_set), 8):
                items = [self.val_set[j] for j in range(i, min(i + 8, len(self.val_set)))]
                logits = self.validation_logits(np.stack([it["image"] for it in items]))
                for j in range(len(items)):
                    gt = read_mask(self.val_pairs[i + j][1], int(self.cfg["data"]["mask_threshold"]))
                    pred = to_uint8_map(probabilities(logits[j], gt.shape)[0])  # the official protocol
                    dice.step(pred, gt)
                    iou.step(pred, gt)
        self.model.train()
        return {"val_mDice": dice.results()["mDice"], "val_mIoU": iou.results()["mIoU"]}

    def write_records(self) -> None:
        if not is_main_process() or not self.history:
            return
        from ..utils.io import atomic_write_text
        from ..utils.plot import line_chart

        keys = list(dict.fromkeys(k for r in self.history for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(self.history, indent=1))
        epochs = [r["epoch"] for r in self.history]
        series = {"train loss (scaled to max 1)": (epochs, _scaled([r["train_loss"] for r in self.history]))}
        val = [(r["epoch"], r["val_mDice"]) for r in self.history if "val_mDice" in r]
        if val:
            series["val mDice"] = ([e for e, _ in val], [v for _, v in val])
        line_chart(self.run_dir / "curves.png", series, title="training", xlabel="epoch", ylabel="value")


def _scaled(values):
    top = max(values) if values else 1.0
    return [v / top if top else v for v in values]


def _augment(flag):
    if not flag:
        return None
    from ..data import Augment

    return Augment(**flag) if isinstance(flag, dict) else Augment()


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=True)
