"""Small shared helpers: shared-data folder, thread defaults, atomic folder writes, RNG."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

SHARED_DATA_ENV = "HF_VDD_SHARED_DATA"


def shared_data_dir() -> Path:
    """The folder holding the shared real footage (`real_clips/`, `ucf12/`).

    Read from `$HF_VDD_SHARED_DATA`, defaulting to `../shared/data` relative to the working directory.
    """
    return Path(os.environ.get(SHARED_DATA_ENV, "../shared/data")).expanduser().resolve()


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads. Default: `$OMP_NUM_THREADS`, else 1.

    Small video models on small CPUs run much faster single-threaded (thread start-up dominates);
    see README "Performance".
    """
    if num_threads is None:
        num_threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    torch.set_num_threads(max(1, num_threads))
    return torch.get_num_threads()


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike):
    """Yield a temporary folder beside `target`; move it into place only if the block succeeds.

    Nothing half-written is ever visible at `target`: on error the temporary folder is removed and an
    existing `target` is left untouched.
    """
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, backup)
    os.replace(tmp, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def numpy_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed))
