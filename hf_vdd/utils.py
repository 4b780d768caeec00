"""Small shared helpers: shared-data folder, thread defaults, user errors, safe atomic folder writes."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

SHARED_DATA_ENV = "HF_VDD_SHARED_DATA"


class HfVddError(ValueError):
    """A user error hf_vdd detected: recipes print its message (what is wrong and the fix) and exit with status 2."""


class OutputExistsError(HfVddError):
    """Writing would replace or mix with a folder that must be kept."""


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


# ---- progress bars and logs: one path ---------------------------------------------------------------------------
def progress(*args, disable: bool = False, **kwargs):
    """`tqdm` for every long loop (pass `disable=not accelerator.is_local_main_process`). When stderr is not a
    terminal (CI, `> log`), the bar refreshes at most every 30 s instead of hundreds of times."""
    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 30.0)
    return tqdm(*args, disable=disable, **kwargs)


class _Stream(logging.StreamHandler):
    """Writes to whatever `sys.stdout`/`sys.stderr` is when a record is emitted (so captured output works too)."""

    def __init__(self, name: str, levels: tuple[int, int]):
        super().__init__()
        self._name, self._levels = name, levels
        self.addFilter(lambda record: levels[0] <= record.levelno < levels[1])
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the live sys stream is used instead
        pass


class _MainProcessLogger(logging.LoggerAdapter):
    """Accelerate's `get_logger` without its need for an initialised state: once Accelerate's state exists, records
    are emitted by the main process only (not once per process under `accelerate launch`); before, as usual."""

    def log(self, level, msg, *args, **kwargs):
        if _main_process():
            self.logger.log(level, msg, *args, **kwargs)


def _main_process() -> bool:
    """True on Accelerate's main process, and wherever Accelerate's state was never initialised."""
    from accelerate.state import PartialState

    return not PartialState._shared_state or PartialState().is_main_process


def get_logger(name: str) -> logging.LoggerAdapter:
    """The library's one way to log: `logger = get_logger(__name__)` (a child of the `hf_vdd` logger that
    `configure_logging` sets up), main process only under Accelerate."""
    return _MainProcessLogger(logging.getLogger(name), {})


def configure_logging(level: str | int | None = None) -> None:
    """Recipes: hf_vdd's log records (`get_logger(__name__)` in the library) go to stdout (info)
    and stderr (warnings and errors), at `level` (default `$HF_VDD_LOG_LEVEL`, else INFO)."""
    logger = logging.getLogger("hf_vdd")
    logger.setLevel(level or os.environ.get("HF_VDD_LOG_LEVEL", "INFO"))
    if not any(isinstance(h, _Stream) for h in logger.handlers):
        logger.addHandler(_Stream("stdout", (0, logging.WARNING)))
        logger.addHandler(_Stream("stderr", (logging.WARNING, logging.CRITICAL + 1)))
    logger.propagate = False


# ---- output folders: never destroy what hf_vdd did not write -------------------------------------------------
# A folder is written as `.<name>.hf_vdd-tmp-<pid>-<random>` beside its target and moved into place when complete.
# Replacing an existing target swaps the two folders in one atomic `renameat2(RENAME_EXCHANGE)` (Linux); elsewhere
# the old folder is first renamed to `.<name>.hf_vdd-old-<pid>`. A kill therefore leaves the old or the new folder
# at the target (or the old one under its backup name, restored by the next write), plus temporary folders that
# the next write to the same target removes (`recover_interrupted`).
_TMP, _OLD = ".hf_vdd-tmp-", ".hf_vdd-old-"
# names hf_vdd 0.1.0 used before this scheme: `.<name>.tmp-<8 mkdtemp characters>` and `.<name>.old-<pid>`
_LEGACY = {".tmp-": re.compile(r"[a-z0-9_]{8}"), ".old-": re.compile(r"\d+")}


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path, kind: str) -> list[Path]:
    """`.<name><kind>*` siblings of `target` left by interrupted writes (not those of a live process)."""
    found = []
    for p in target.parent.glob(f".{_glob_escape(target.name)}{kind}*"):
        rest = p.name[len(target.name) + 1 + len(kind):]
        if kind in _LEGACY:  # only the exact names the old scheme made, never a look-alike of the user's
            if _LEGACY[kind].fullmatch(rest) and p.is_dir():
                found.append(p)
            continue
        pid = rest.split("-")[0]
        if not (pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid()):
            found.append(p)
    return sorted(found, key=lambda p: p.stat().st_mtime)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def recover_interrupted(target: str | os.PathLike) -> list[Path]:
    """Finish what a killed write to `target` left: restore the old folder if the target is missing, then remove
    the temporary and backup folders. Returns the removed paths."""
    target = Path(target).expanduser().resolve()
    if not target.parent.is_dir():
        return []
    backups = _leftovers(target, _OLD) + _leftovers(target, ".old-")
    if backups and not target.exists():
        with contextlib.suppress(OSError):  # another process may have restored it first
            os.replace(backups[-1], target)  # the killed write had moved the old folder away: put it back
            backups = backups[:-1]
    removed = backups + _leftovers(target, _TMP) + _leftovers(target, ".tmp-")
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux `renameat2(RENAME_EXCHANGE)`); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _has_marker(folder: Path, marker: str | tuple[str, ...] | None) -> bool:
    markers = (marker,) if isinstance(marker, str) else marker or ()
    return any((folder / m).exists() for m in markers)


def check_replaceable(target: Path, marker: str | tuple[str, ...] | None) -> None:
    """Raise unless `target` is absent, empty, or carries hf_vdd's `marker` file (so hf_vdd wrote it)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputExistsError(f"{target} is a file, not a folder; hf_vdd will not replace it. Choose another "
                                f"output folder.")
    if any(target.iterdir()) and not _has_marker(target, marker):
        raise OutputExistsError(f"{target} already holds files that hf_vdd did not write (no {marker or 'marker'} "
                                f"file); hf_vdd never replaces such a folder. Choose another output folder.")


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike):
    """Yield a temporary path beside the file `target`; move it onto `target` (`os.replace`) only if the block
    succeeds, so a reader or a killed process never sees a half-written file. On error the temporary file is
    removed and `target` is left as it was."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}{_TMP}{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, marker: str | tuple[str, ...] | None = None):
    """Yield a temporary folder beside `target`; move it into place only if the block succeeds.

    Nothing half-written is ever visible at `target`: on error the temporary folder is removed and an existing
    `target` is left untouched. An existing non-empty `target` is replaced only if it holds `marker` (a file only
    hf_vdd writes there, e.g. `distillation.json`): hf_vdd never replaces a folder it did not write.
    """
    target = Path(target).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted(target)
    check_replaceable(target, marker)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP}{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not target.exists():
        os.replace(tmp, target)
    elif _exchange(tmp, target):  # tmp now holds the old folder
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        backup = target.with_name(f".{target.name}{_OLD}{os.getpid()}")
        os.replace(target, backup)
        os.replace(tmp, target)
        shutil.rmtree(backup, ignore_errors=True)


def _contains(parent: Path, child: Path) -> bool:
    return parent == child or parent in child.parents


def check_output_dir(target: str | os.PathLike, overwrite: bool = False,
                     marker: str | tuple[str, ...] | None = "distillation.json",
                     protect: Iterable[str | os.PathLike] = (), flag: str = "--output_dir") -> Path:
    """Refuse, before any work, an output folder that writing would destroy or that cannot be written.

    - never the working directory, one of its parents, a protected input folder (the source dataset), a folder
      containing one, or a folder inside one;
    - an existing non-empty folder only with `overwrite=True`, and then only if it holds `marker` (hf_vdd wrote it);
    - the nearest existing parent must accept a new folder (probed by creating and removing one).
    Returns the resolved path. Raises `OutputExistsError` (a `ValueError`) naming the folder and the fix.
    """
    path = Path(target).expanduser().resolve()
    recover_interrupted(path)
    cwd = Path.cwd().resolve()
    if _contains(path, cwd):
        raise OutputExistsError(f"{flag} {target} is the working directory or one of its parents; hf_vdd never "
                                f"replaces it. Pass a new folder, e.g. {flag} outputs/<name>.")
    for source in protect:
        src = Path(source).expanduser().resolve()
        if _contains(path, src) or _contains(src, path):
            raise OutputExistsError(f"{flag} {target} is, contains or lies inside the input dataset folder {src}; "
                                    f"the input is never written to. Pass a folder outside it.")
    if path.exists():
        if not path.is_dir():
            raise OutputExistsError(f"{flag} {target} is a file. Pass a folder path that does not exist yet.")
        if any(path.iterdir()):
            if not overwrite:
                raise OutputExistsError(
                    f"{flag} {target} already exists and is not empty; nothing was written. Pass a new {flag}, or "
                    f"--overwrite to replace it (allowed only for a folder hf_vdd wrote, which holds {marker}).")
            if not _has_marker(path, marker):
                raise OutputExistsError(
                    f"{flag} {target} holds files hf_vdd did not write (no {marker}); hf_vdd never replaces such "
                    f"a folder, even with --overwrite. Pass a new {flag}.")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputExistsError(f"{flag} {target} lies under {parent}, which is a file. Pass another folder.")
    try:
        Path(tempfile.mkdtemp(prefix=".hf_vdd-write-probe-", dir=parent)).rmdir()
    except OSError as err:
        raise OutputExistsError(f"{flag} {target} cannot be written: creating a folder in {parent} failed "
                                f"({err.strerror}). Pass a writable folder.") from err
    return path


# ---- randomness that does not depend on the number of processes ---------------------------------------------------
def derived_generator(*keys: int) -> torch.Generator:
    """A `torch.Generator` seeded from integer keys, e.g. `(seed, iteration, class_id)`."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0]))


_M32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32-style; odd multipliers below 2**31, so int64 never overflows), elementwise
    on int64 tensors, on any device. Returns values in [0, 2**32)."""
    x = x & _M32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & _M32
    x = ((x ^ (x >> 15)) * 0x6C8E9CF5) & _M32
    return x ^ (x >> 16)


def sample_seeds(seed: int, step: int, index: torch.Tensor) -> torch.Tensor:
    """Per-sample seeds `(B,)` from a run seed, a step and each sample's dataset index: the same sample at the same
    step gets the same seed whichever process holds it."""
    base = hash32(torch.tensor(seed * 1_000_003 + step, dtype=torch.int64, device=index.device))
    return hash32(base ^ hash32(index.long()))


def seeded_dropout(x: torch.Tensor, p: float, seeds: torch.Tensor) -> torch.Tensor:
    """Inverted dropout of `x` `(N, ...)` whose mask for row n is a function of `seeds[n]` only (not of the process
    or of the other rows), so data-parallel training draws the masks a single process would."""
    if p <= 0:
        return x
    idx = torch.arange(x[0].numel(), device=x.device, dtype=torch.int64)
    u = hash32(hash32(seeds.to(x.device).long()[:, None]) ^ idx[None, :]).to(torch.float64) / 2.0**32
    return x * (u >= p).view_as(x).to(x.dtype) / (1.0 - p)


def runtime(accelerator=None) -> tuple[torch.device, Callable]:
    """`(device, autocast)` of `accelerator`: where tensors and modules go, and a factory of its mixed-precision
    autocast context (`with autocast(): ...`). Without an accelerator: the CPU and a no-op (the one place that
    fallback lives; the engine, the coreset features, the pool selectors and Latte generation all ask here)."""
    if accelerator is None:
        return torch.device("cpu"), contextlib.nullcontext
    return accelerator.device, accelerator.autocast


def precision_key(accelerator=None) -> dict:
    """`{"mixed_precision": "bf16"}` (or fp16) when `accelerator` autocasts, `{}` in fp32 or without one. Merged into
    every key that reuses work (benchmark cells, teacher and default-model caches, pool manifests, distillation
    stats): autocast changes the numbers, and fp32 keys stay what they were before mixed precision existed."""
    precision = "no" if accelerator is None else str(accelerator.mixed_precision)
    return {} if precision == "no" else {"mixed_precision": precision}


def seconds_since(before: float | None, since: float) -> float | None:
    """`before` seconds (a resumed run's earlier ones) plus those since `time.perf_counter()` read `since`; `None`
    when `before` is unknown (a checkpoint that did not record it)."""
    return None if before is None else before + time.perf_counter() - since


MALLOC_ENV = "HF_VDD_MALLOC"  # `system`: keep glibc's default allocator settings
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the OS after every large tensor.

    By default glibc serves each allocation over 32 MB or so with its own `mmap` and unmaps it on free, and trims the
    heap as soon as 128 KB at its top are free. A distillation allocates and frees gigabytes of activations per
    iteration, so every iteration faults its memory in again page by page: DM on ucf12 at 16x64x64 with 64 real
    clips per class spent half its CPU time in the kernel (`top`: 50 % sy; 0 % with this setting), and
    `recipes/speed.py --configs 2x64x16 --real_per_class 64` measured 14.8 -> 9.8 s an iteration (README
    "Performance notes"). This sets `mallopt`
    `M_MMAP_MAX=0` (no per-allocation mmap) and `M_TRIM_THRESHOLD=-1` (no automatic trim): what the process freed
    stays mapped and is reused, so RSS stays at its peak instead of dropping between iterations. Recipes call it
    at start-up; library users may too. Returns whether it applied: not with another C library, with `$HF_VDD_MALLOC`
    set to `system`, or when the user set glibc's own `MALLOC_MMAP_MAX_` / `MALLOC_TRIM_THRESHOLD_` (theirs win)."""
    if os.environ.get(MALLOC_ENV, "").lower() == "system" or any(
            k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    libc = _libc()
    if not libc or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))


def _libc():
    """glibc through ctypes, or False where there is none."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
            _LIBC.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's `malloc_trim`; a no-op elsewhere). Decoding workers call it
    after each batch: FFmpeg's decoding threads allocate in their own malloc arenas, which otherwise keep what
    they freed (measured on ucf12: a worker's RSS 1009 MB without it, 494 MB with it)."""
    if libc := _libc():
        libc.malloc_trim(0)


_LIBC = None
