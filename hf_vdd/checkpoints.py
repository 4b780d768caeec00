"""Checkpoints of long runs (class-parallel distillation, Latte fine-tuning): `accelerator.save_state`, written safely.

A checkpoint is a folder `<checkpoint_dir>/checkpoint-<N>/` holding what `accelerator.save_state` writes (prepared
models and optimisers, the objects registered with `register_for_checkpointing` as `custom_checkpoint_<i>.pkl`,
every process's random states) plus `hf_vdd_run.json`: the run it belongs to (method, the settings that change its
trajectory, the data's fingerprint), so that resuming refuses a checkpoint of another run with the differences
listed.

Accelerate's `ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=...)` is deliberately not used:
its pruning removes every folder under `<project_dir>/checkpoints/` (also one a user put there) and it writes in
place, so a run killed mid-save leaves a half checkpoint that `load_state` then picks. Here every process writes into
one temporary folder beside the target, the main process moves it into place when all have finished
(`utils.atomic_folder`: nothing half-written is ever visible), and pruning keeps the newest `total_limit` folders
named `checkpoint-<N>` that hold `hf_vdd_run.json` -- only folders hf_vdd wrote.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path

from .utils import HfVddError, atomic_folder

RUN_FILE = "hf_vdd_run.json"  # written last into every checkpoint: the run it belongs to, and the marker
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(folder) -> list[Path]:
    """`folder/checkpoint-<N>/` folders hf_vdd wrote (they hold `hf_vdd_run.json`), oldest first."""
    folder = Path(folder or ".")
    found = [p for p in folder.glob("checkpoint-*") if CHECKPOINT_RE.match(p.name) and (p / RUN_FILE).is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def prune_checkpoints(folder, total_limit: int | None) -> None:
    """Remove all but the newest `total_limit` checkpoints hf_vdd wrote in `folder` (`None`/0: keep all)."""
    if total_limit:
        for old in list_checkpoints(folder)[:-total_limit]:
            shutil.rmtree(old)


def find_checkpoint(path: str, folder: str | None) -> Path:
    """The checkpoint folder `path` names; `latest` is the newest in `folder`."""
    if path == "latest":
        ckpts = list_checkpoints(folder)
        if not ckpts:
            raise FileNotFoundError(f"No checkpoint-<N> folder in {folder}; nothing to resume from. Drop "
                                    f"--resume_from_checkpoint to start a new run.")
        return ckpts[-1]
    if (Path(path) / "state.pt").is_file() and not (Path(path) / RUN_FILE).is_file():
        raise HfVddError(f"{path} is a checkpoint of an older hf_vdd (torch.save'd state.pt, before checkpoints "
                         f"moved to accelerator.save_state); it cannot be resumed. Drop --resume_from_checkpoint.")
    if not (Path(path) / RUN_FILE).is_file():
        raise FileNotFoundError(f"{Path(path) / RUN_FILE} not found; pass a checkpoint-<N> folder or `latest`.")
    return Path(path)


def verify_checkpoint(path: Path, run: dict) -> None:
    """Raise `HfVddError` listing what differs between the run that wrote checkpoint `path` and `run`."""
    meta_file = path / RUN_FILE
    saved = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if "data" not in saved:
        raise HfVddError(f"Checkpoint {path} was written without its run's settings (an older hf_vdd), so it cannot "
                         f"be checked against this run. Start a new run: drop --resume_from_checkpoint.")
    saved, run = json.loads(json.dumps(saved, default=str)), json.loads(json.dumps(run, default=str))
    defaults, diff = run.get("defaults") or {}, []
    for section in ("method", "config", "data"):
        old, new = saved.get(section), run.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            # a setting the checkpoint does not record was added since; at its default, the run is the same
            added = {k for k in set(new) - set(old) if section == "config" and k in defaults and new[k] == defaults[k]}
            diff += [f"{section}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k) and k not in added]
        elif old != new:
            diff.append(f"{section}: {old!r} -> {new!r}")
    if diff:
        raise HfVddError(f"Checkpoint {path} belongs to another run; these settings differ (checkpoint -> now): "
                         f"{'; '.join(diff[:8])}{' ...' if len(diff) > 8 else ''}. Resume with the checkpoint's "
                         f"settings, or drop --resume_from_checkpoint (or use another --checkpoint_dir) to restart.")


def resolve_checkpoint(path: str, folder: str | None, run: dict) -> Path:
    """The checkpoint `path` names (`latest`: the newest hf_vdd wrote in `folder`), checked to belong to `run`."""
    ckpt = find_checkpoint(path, folder)
    verify_checkpoint(ckpt, run)
    return ckpt


def save_state(accelerator, folder, index: int, run: dict, total_limit: int | None = None) -> Path:
    """`accelerator.save_state` into `folder/checkpoint-<index>/` atomically, with `run` as `hf_vdd_run.json`; then
    keep only the newest `total_limit` checkpoints hf_vdd wrote there. Collective: every process calls it.

    Every process writes into one temporary folder (the main process makes it and broadcasts its path); the main
    process moves it into place once all have written, replacing an older `checkpoint-<index>` only if hf_vdd wrote
    that one."""
    from accelerate.utils import broadcast_object_list

    target = Path(folder or ".") / f"checkpoint-{index}"
    main = accelerator.is_main_process
    with atomic_folder(target, marker=RUN_FILE) if main else contextlib.nullcontext() as tmp:
        box = [str(tmp) if main else None]
        if accelerator.num_processes > 1:
            broadcast_object_list(box)
        accelerator.save_state(box[0])
        accelerator.wait_for_everyone()
        if main:
            (Path(box[0]) / RUN_FILE).write_text(json.dumps(run, indent=2, default=str))
    if main:
        prune_checkpoints(folder, total_limit)
    accelerator.wait_for_everyone()
    return target


class ClassStates:
    """The state of a class-parallel run, as one object registered with `register_for_checkpointing`:
    `{"iteration", "classes": {class: per-class state, tensors on the CPU}, "losses", "elapsed_seconds",
    "iteration_seconds"}` (the timings let a resumed run report the whole run's)."""

    def __init__(self):
        self.state: dict = {}

    def state_dict(self) -> dict:
        return self.state

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


class Checkpointer:
    """Saves and loads a class-parallel run's `ClassStates` with `accelerator.save_state` / `load_state`.

    It owns a dedicated `Accelerator` (sharing the process's Accelerate state) on which only its `ClassStates` is
    registered: the run's own accelerator may hold prepared students of a benchmark, and Accelerate cannot
    unregister objects, so registering on it would pile one object per distiller into every later checkpoint."""

    def __init__(self):
        from accelerate import Accelerator

        self.states = ClassStates()
        self.accelerator = Accelerator()
        self.accelerator.register_for_checkpointing(self.states)

    def save(self, folder, index: int, state: dict, run: dict, total_limit: int | None) -> Path:
        self.states.load_state_dict(state)
        return save_state(self.accelerator, folder, index, run, total_limit)

    def load(self, path: str, folder: str | None, run: dict) -> dict:
        """The state of the checkpoint `path` names (`latest`: the newest in `folder`), checked to belong to `run`."""
        self.accelerator.load_state(str(resolve_checkpoint(path, folder, run)))
        return self.states.state_dict()
