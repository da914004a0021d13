"""Helper run by tests/engine/test_mpi.py (directly, or under ``mpirun -np N``): one training step's
gradients as the optimizer sees them (all-reduced mean under MPI, no clipping), the loss averaged over
ranks and the BatchNorm running statistics after the step, written by rank 0 to an .npz file.

usage: python tests/engine/mpi_worker.py DATA_ROOT OUT.npz BATCH_PER_RANK [float32|float64] [MODEL]
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

from jittor_pranet.config import load_config
from jittor_pranet.engine.optim import trainable_named_parameters
from jittor_pranet.engine.trainer import Trainer
from jittor_pranet.losses import pranet_loss
from jittor_pranet.ops import jt, mpi_mean, set_sync_batchnorm


def one_step(trainer, images, masks, sync: bool, dtype: str):
    set_sync_batchnorm(trainer.model, sync)
    loss = pranet_loss(trainer.model(jt.array(images).cast(dtype)), jt.array(masks).cast(dtype))
    grads = trainer.optimizer.compute_grads(loss)
    mean_loss = mpi_mean(loss) if jt.in_mpi else loss
    jt.sync(grads + [mean_loss] + trainer.buffers)
    names = [n for n, _ in trainable_named_parameters(trainer.model)]
    out = {f"grad:{n}": g.numpy().copy() for n, g in zip(names, grads)}
    out["loss"] = mean_loss.numpy().copy()
    out.update({f"stat:{n}": v.numpy().copy() for n, v in trainer.model.named_parameters()
                if n.endswith(("running_mean", "running_var"))})
    return out


def main() -> None:
    data, out_path, batch = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    dtype = sys.argv[4] if len(sys.argv) > 4 else "float32"
    model = sys.argv[5] if len(sys.argv) > 5 else "pranet_v2_pvt"
    cfg = load_config(None, [f"data.train={data}", f"model.name={model}", "model.encoder=pvt_v2_b0",
                             "model.drop_path_rate=0", "data.train_size=64", f"train.batch_size={batch}",
                             "train.multi_scale=[1.0]", "train.clip=null", "data.val_fraction=0",
                             "data.num_workers=1", "output.predict_test=false"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), progress=False, log=lambda *a, **k: None)
        trainer.model.train()
        if dtype != "float32":  # after rank 0's weights were broadcast
            for v in trainer.model.parameters():
                v.assign(v.cast(dtype))
            jt.sync(trainer.model.parameters())
        trainer.loader.set_epoch(0)
        first = next(iter(trainer.loader))
        synced = one_step(trainer, first["image"], first["mask"], sync=True, dtype=dtype)
        unsynced = one_step(trainer, first["image"], first["mask"], sync=False, dtype=dtype)  # the control
    record = dict(synced)
    record.update({f"nosync:{k}": v for k, v in unsynced.items() if k.startswith("grad:")})
    record["world_size"] = np.array(jt.world_size if jt.in_mpi else 1)
    if not jt.in_mpi or jt.rank == 0:
        np.savez(out_path, **record)


if __name__ == "__main__":
    main()
