"""A small, resumable, shardable batch loader over any indexable dataset (no framework needed).

Why not Jittor's own Dataset: its worker processes make runs hard to resume exactly and hard to
shard by hand; decoding with PIL/cv2 releases the GIL, so a thread pool is enough on our machines.

Order contract (what makes resuming exact): epoch ``e`` visits ``np.random.default_rng(seed + e)
.permutation(n)`` (or ``range(n)`` without shuffling) in consecutive *global* batches of
``batch_size * world_size`` samples; rank ``r`` takes the ``r``-th ``batch_size`` slice of each.
So ``batch_size`` is per rank. Augmentation randomness comes from a generator seeded with
``(seed, epoch, sample index)``, independent of threads, ranks and resumption.
"""
from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Deque, Dict, Iterator, List, Sequence

import numpy as np

from jittor_pranet.errors import UserError


class BatchLoader:
    """Yields dicts of stacked numpy arrays (strings and other values are gathered into lists).

    With ``drop_last=False`` the last batch of an epoch is smaller; with ``world_size > 1`` it is
    instead padded with samples from the start of the epoch's order, so that every rank runs the
    same number of equal-size steps (needed by collective operations).
    """

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = True, seed: int = 0,
                 num_workers: int = 2, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 prefetch_batches: int = 2) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is not valid for world size {world_size}")
        if len(dataset) == 0:
            raise UserError("the dataset is empty: nothing to load")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_workers = max(0, int(num_workers))
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.prefetch_batches = max(1, int(prefetch_batches))
        self.epoch = 0
        self.position = 0
        if len(self) == 0:
            raise UserError(
                f"{len(dataset)} samples make no full batch of {self.global_batch_size} "
                f"(batch size {batch_size} x world size {world_size}) with drop_last"
            )

    # -- order -----------------------------------------------------------------------------------

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        n = len(self.dataset)
        if self.drop_last:
            return n // self.global_batch_size
        return math.ceil(n / self.global_batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Dataset indices in the order epoch ``epoch`` visits them (all ranks together)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng(self.seed + epoch).permutation(n)

    def batch_indices(self, epoch: int) -> List[np.ndarray]:
        """This rank's dataset indices for every batch of ``epoch``."""
        order = self.epoch_order(epoch)
        out = []
        for b in range(len(self)):
            chunk = order[b * self.global_batch_size:(b + 1) * self.global_batch_size]
            out.append(self._rank_slice(chunk, order))
        return out

    def _rank_slice(self, chunk: np.ndarray, order: np.ndarray) -> np.ndarray:
        if self.world_size == 1:
            return chunk
        per_rank = math.ceil(len(chunk) / self.world_size)
        missing = per_rank * self.world_size - len(chunk)
        if missing:
            chunk = np.concatenate([chunk, np.resize(order, missing)])
        return chunk[self.rank * per_rank:(self.rank + 1) * per_rank]

    # -- resumption ------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate; keeps the resume position when it is already the current one."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def state_dict(self) -> Dict[str, int]:
        """Where the loader stands: batches consumed in the current epoch, and what fixes the order."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_samples": len(self.dataset),
            "global_batch_size": self.global_batch_size,
        }

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Continue where ``state`` left off: the next iteration yields the rest of that epoch."""
        position = int(state.get("position", 0))
        if position:
            self._check_same_order(state)
        if not 0 <= position <= len(self):
            raise UserError(f"loader state position {position} is outside an epoch of {len(self)} batches")
        self.seed = int(state.get("seed", self.seed))
        self.epoch = int(state.get("epoch", 0))
        self.position = position
        if self.position == len(self):
            self.epoch, self.position = self.epoch + 1, 0

    def _check_same_order(self, state: Dict[str, int]) -> None:
        expected = {"num_samples": len(self.dataset), "global_batch_size": self.global_batch_size}
        for key, value in expected.items():
            if key in state and int(state[key]) != value:
                raise UserError(
                    f"cannot resume mid-epoch: the checkpoint's loader had {key}={state[key]}, now {value} "
                    "(same data and batch size x world size are needed)"
                )

    # -- iteration -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        """The remaining batches of the current epoch.

        A batch counts as consumed once handed out; handing out the last one already moves the
        state to (next epoch, 0), so a checkpoint saved after that step resumes at the next epoch.
        """
        epoch = self.epoch
        pending = self.batch_indices(epoch)[self.position:]
        for batch in self._load_batches(epoch, pending):
            self._advance()
            yield batch

    def _advance(self) -> None:
        self.position += 1
        if self.position >= len(self):
            self.epoch, self.position = self.epoch + 1, 0

    def _load_sample(self, epoch: int, index: int) -> Dict[str, Any]:
        index = int(index)
        getter = getattr(self.dataset, "get", None)
        if getter is not None and getattr(self.dataset, "augment", None) is not None:
            return getter(index, np.random.default_rng((self.seed, epoch, index)))
        return self.dataset[index]

    def _load_batches(self, epoch: int, batches: Sequence[np.ndarray]) -> Iterator[Dict[str, Any]]:
        if self.num_workers == 0:
            for indices in batches:
                yield collate([self._load_sample(epoch, i) for i in indices])
            return
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="batch-loader") as pool:
            queue: Deque[List[Future]] = deque()
            upcoming = iter(batches)
            try:
                for indices in upcoming:
                    queue.append([pool.submit(self._load_sample, epoch, i) for i in indices])
                    if len(queue) > self.prefetch_batches:
                        yield collate([f.result() for f in queue.popleft()])
                while queue:
                    yield collate([f.result() for f in queue.popleft()])
            finally:
                for futures in queue:
                    for future in futures:
                        future.cancel()


def collate(samples: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack arrays and numbers along a new first axis; keep everything else (names) as a list."""
    batch: Dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], np.ndarray):
            batch[key] = np.stack(values)
        elif isinstance(values[0], (np.generic, int, float)):
            batch[key] = np.asarray(values)
        else:
            batch[key] = values
    return batch
