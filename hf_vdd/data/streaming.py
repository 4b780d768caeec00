"""Per-class real batches decoded ahead of the distiller by `DataLoader` workers, in constant memory.

A matching distiller (DM, IDTD, DAViD) asks, in a known order, for the real batch of class `c` at iteration `it`:
`batch(seed, it, c, n)` → `(n, T, 3, S, S)` float clips of class `c` in [0, 1] and the generator that drew them
(`derived_generator(seed, it, c)`, advanced past the batch's draws). A batch is gathered as uint8 into one tensor
(page-locked when bound for a GPU), copied as uint8 and converted to float on the sampler's `device`: a quarter of
the bytes to copy and no float conversion on the host. `PrefetchingClassSampler` is given that order
(the plan) up front and decodes the batches in worker processes while the distiller computes:

```python
keys = [(it, c) for it in range(start, iterations) for c in classes]
with PrefetchingClassSampler(train_set, cfg.seed, keys, n=cfg.batch_real, **data.sampler_options()) as sampler:
    for it in range(start, iterations):
        for c in classes:
            real, g = sampler.batch(cfg.seed, it, c, cfg.batch_real)   # same tensor and generator as ClassSampler
```

The results do not depend on the plan, the workers or the order of requests: a request the plan does not hold
next is served from the batches already fetched, by skipping ahead, or computed inline. Memory is bounded by
`num_workers * prefetch_factor` batches in flight plus as many fetched ahead; workers decode only the frames a
sample needs (`VideoClassificationSet.clip`) and hold no preload.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..utils import derived_generator, get_logger, release_memory

logger = get_logger(__name__)


def sample_class_batch(train_set, by_class: dict[int, np.ndarray], c: int, n: int,
                       generator: torch.Generator, device=None) -> torch.Tensor:
    """`min(n, #class c)` clips of class `c`, picked by `randperm` and sampled with random starts, all drawn from
    `generator`: `(n, T, 3, S, S)` float in [0, 1] on `device` (default CPU; `ClassSampler.sample`'s draws, in the
    same order), gathered as uint8 and converted on the device (`to_float`)."""
    return to_float(sample_class_uint8(train_set, by_class, c, n, generator, pin_memory=_pins(device)), device)


def sample_class_uint8(train_set, by_class: dict[int, np.ndarray], c: int, n: int, generator: torch.Generator,
                       pin_memory: bool = False) -> torch.Tensor:
    """`sample_class_batch` before its conversion: the same clips as `(n, T, 3, S, S)` uint8 on the CPU."""
    idx = by_class[c]
    pick = idx[torch.randperm(len(idx), generator=generator)[: min(n, len(idx))].numpy()]
    return train_set.stack_uint8(pick, train=True, generator=generator, pin_memory=pin_memory)


def to_float(batch: torch.Tensor, device=None) -> torch.Tensor:
    """A uint8 batch as float in [0, 1] on `device`: copied as uint8 (a quarter of the bytes; asynchronously from
    page-locked memory) and converted there, so a GPU does the conversion. Equal to `batch.float() / 255` on any
    device (one correctly rounded division per value)."""
    return batch.to(device if device is not None else batch.device, non_blocking=True).float().div_(255.0)


def _pins(device) -> bool:
    """Whether batches bound for `device` are gathered into page-locked memory (a CUDA device)."""
    return device is not None and torch.device(device).type == "cuda"


class _PlannedBatches(Dataset):
    """Item `j` of the plan: `((it, c), batch, generator state)`, or `((it, c), error, None)` when the batch cannot
    be read, so that the sampler re-raises the error itself rather than the `DataLoader`'s traceback text."""

    def __init__(self, train_set, by_class, seed: int, keys: list[tuple[int, int]], n: int):
        self.train_set, self.by_class, self.seed, self.keys, self.n = train_set, by_class, seed, keys, n

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, j: int):
        it, c = self.keys[j]
        g = derived_generator(self.seed, it, c)
        try:
            return (it, c), sample_class_uint8(self.train_set, self.by_class, c, self.n, g), g.get_state()
        except (ValueError, OSError) as err:  # CorruptVideoError, FileNotFoundError
            return (it, c), err, None
        finally:
            release_memory()  # the decoder threads' arenas keep what they free otherwise (worker RSS 1.0 -> 0.5 GB)


class PrefetchingClassSampler:
    """`ClassSampler` with the real batches of a known plan decoded ahead by `DataLoader` workers.

    Args:
        train_set: the `VideoClassificationSet` (not preloaded: with a preload nothing is left to decode and batches
            are computed inline).
        seed: the distiller's seed (`batch(seed, ...)` with another seed is computed inline).
        keys: the `(iteration, class)` pairs the distiller will request, in order (repeats allowed).
        n: clips per batch (`batch_real`).
        num_workers: worker processes (0: every batch inline, no process started).
        prefetch_factor: batches each worker decodes ahead.
        device: where `batch` returns its clips (default CPU). Workers hand over uint8 batches (page-locked for a
            CUDA device), converted to float on `device`.

    `batch(seed, it, c, n)` returns exactly `ClassSampler(train_set).batch(seed, it, c, n)`: the same tensor and a
    generator in the same state. Workers start at the first request (or `start()`); close them with `close()`, a
    `with` block, or by dropping the sampler. `stats` counts batches `prefetched`, computed `inline`, and worker
    (re)starts (`restarts`: 1 for a plan requested in order).
    """

    def __init__(self, train_set, seed: int, keys, n: int, num_workers: int = 2, prefetch_factor: int = 2,
                 device=None):
        if num_workers < 0 or prefetch_factor < 1:
            raise ValueError(f"num_workers must be >= 0 and prefetch_factor >= 1, got {num_workers} and "
                             f"{prefetch_factor}.")
        self.train_set, self.seed, self.n, self.device = train_set, int(seed), int(n), device
        self.by_class = train_set.indices_per_class()
        self.keys = [(int(it), int(c)) for it, c in keys]
        preloaded = getattr(train_set, "_cache", None) is not None
        self.num_workers = 0 if preloaded or not self.keys else num_workers
        self.prefetch_factor = prefetch_factor
        self.window = max(1, self.num_workers * prefetch_factor)  # batches in flight
        self._positions: dict[tuple[int, int], list[int]] = defaultdict(list)
        for j, key in enumerate(self.keys):
            self._positions[key].append(j)
        self._iterator = None
        self._next = 0  # plan position the workers deliver next
        self._ready: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # fetched ahead of their request
        self.stats = {"prefetched": 0, "inline": 0, "restarts": 0}

    def sample(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """`ClassSampler.sample`: `n` clips of class `c` drawn from `generator` (computed here, inline)."""
        return sample_class_batch(self.train_set, self.by_class, c, n, generator, self.device)

    def batch(self, seed: int, it: int, c: int, n: int) -> tuple[torch.Tensor, torch.Generator]:
        """The real batch of class `c` at iteration `it`, `(n, T, 3, S, S)` float in [0, 1], and its generator
        (`derived_generator(seed, it, c)` advanced past the batch's draws)."""
        pos = self._position((int(it), int(c))) if (seed, n) == (self.seed, self.n) and self.num_workers else None
        if pos is None:
            if self.num_workers and not self.stats["inline"] and self._next < len(self.keys):
                logger.warning(f"batch(seed={seed}, it={it}, c={c}, n={n}) is not in the prefetching plan (seed="
                               f"{self.seed}, n={self.n}, next key {self.keys[self._next]}): computed inline. Build "
                               f"the plan in the order the batches are requested.")
            self.stats["inline"] += 1
            g = derived_generator(seed, it, c)
            return self.sample(c, n, g), g
        if pos not in self._ready:
            if self._iterator is None or pos - self._next >= self.window:
                self._restart(pos)  # not started, or far ahead of the workers (a resumed run): start them there
            self._fetch(pos)
        self.stats["prefetched"] += 1
        result, state = self._ready.pop(pos)
        if state is None:
            raise result
        return to_float(result, self.device), torch.Generator().set_state(state)

    def start(self) -> PrefetchingClassSampler:
        """Start the workers on the plan now (the first `batch` does otherwise); returns `self`."""
        if self.num_workers and self._iterator is None and self._next < len(self.keys):
            self._restart(self._next)
        return self

    def close(self) -> None:
        """Stop the workers and drop the batches fetched ahead (later requests are computed inline)."""
        self._stop_workers()
        self._ready.clear()
        self._next = len(self.keys)

    def _stop_workers(self) -> None:
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    def __enter__(self) -> PrefetchingClassSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the workers go with the process
            pass

    # ---- plan bookkeeping ---------------------------------------------------------------------------------------
    def _position(self, key: tuple[int, int]) -> int | None:
        """The first plan position of `key` fetched ahead or not yet delivered (`None`: compute inline)."""
        for j in self._positions.get(key, ()):
            if j in self._ready or j >= self._next:
                return j
        return None

    def _restart(self, pos: int) -> None:
        if self._iterator is not None:
            self.close()
        self._ready.clear()
        plan = _PlannedBatches(self.train_set, self.by_class, self.seed, self.keys[pos:], self.n)
        loader = DataLoader(plan, batch_size=None, shuffle=False, num_workers=self.num_workers,
                            prefetch_factor=self.prefetch_factor, pin_memory=_pins(self.device))
        self._iterator, self._next = iter(loader), pos
        self.stats["restarts"] += 1

    def _fetch(self, pos: int) -> None:
        """Take batches from the workers up to plan position `pos`, keeping the skipped ones (at most `window`)."""
        while self._next <= pos:
            key, result, state = next(self._iterator)
            if tuple(key) != self.keys[self._next]:
                raise RuntimeError(f"Prefetched batch {tuple(key)} arrived where the plan holds "
                                   f"{self.keys[self._next]}.")
            self._ready[self._next] = (result, state)
            self._next += 1
            while len(self._ready) > self.window + 1:
                self._ready.pop(min(self._ready))  # fetched ahead but never asked for: drop the oldest
        if self._next >= len(self.keys):  # the plan is done
            self._stop_workers()
