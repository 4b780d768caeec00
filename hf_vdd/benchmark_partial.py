"""A benchmark cell's unfinished work, kept so that a killed benchmark loses at most one student run.

A cell is recorded in `results/results.json` only when all its student runs are done, and on a CPU one cell can take
hours (a DM distillation, then three students). While a cell is open, `<output_dir>/partial/<set name>/` holds:

- `set.json` + `set.safetensors`: the distilled set exactly as the distiller returned it (full precision; the
  published repo folder stores float sets as float16), with the key of the settings that made it;
- `runs-<student>.json`: the student runs finished so far, with the key of the cell's settings;
- with `--checkpointing_steps N`, `checkpoints-<set key>/`: the distiller's own checkpoints (DM, IDTD, DAViD)
  every N iterations, so a distillation killed half-way resumes from its newest checkpoint (the same trajectory).

A rerun with the same settings loads the set instead of distilling it again and trains only the missing runs. The
result is the same as an uninterrupted run: each run re-seeds from `seed + run` (`training.evaluate_distilled`). A
stored file with another key is ignored and replaced. The folder is removed when the cell is recorded. Everything is
written to a temporary file first and moved into place, so a kill mid-write leaves the previous state.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpoints import list_checkpoints
from .data.distilled import DistillationOutput
from .utils import atomic_file

PARTIAL = "partial"
MARKER = f"{PARTIAL}/hf_vdd_partial.txt"  # marks `<output_dir>` as a benchmark's before its first cell is recorded
_TENSORS = ("labels", "soft_labels", "source_index")


def partial_dir(out: Path, name: str) -> Path:
    return Path(out) / PARTIAL / name


def _make(folder: Path) -> None:
    """`folder` (a cell's) and the marker beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder.parent / Path(MARKER).name
    if not marker.exists():
        marker.write_text("Unfinished hf_vdd benchmark cells: a rerun with the same settings resumes them. Each "
                          "folder is removed when its cell is recorded in results/results.json.\n")


def _replace_text(path: Path, text: str) -> None:
    _make(path.parent)
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def save_partial_set(data: DistillationOutput, folder: Path, key: str, extra: dict | None = None) -> None:
    """Keep `data` (every field, tensors at full precision) and `extra` (JSON) under `folder` for a resumed run
    with settings `key`."""
    _make(folder)
    (folder / "set.json").unlink(missing_ok=True)  # first: a kill below must not leave new tensors under an old key
    tensors = {f"videos.{i}": v.contiguous() for i, v in enumerate(data.videos)}
    tensors |= {name: getattr(data, name).contiguous() for name in _TENSORS if getattr(data, name) is not None}
    rest = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.name not in ("videos", *_TENSORS)}
    meta = {"key": key, "stacked": isinstance(data.videos, torch.Tensor), "num_videos": len(data.videos),
            "fields": rest, "extra": extra or {}}
    with atomic_file(folder / "set.safetensors") as tmp:
        save_file(tensors, str(tmp))
    _replace_text(folder / "set.json", json.dumps(meta, default=str))  # last: the marker that the set is whole


def load_partial_set(folder: Path, key: str) -> tuple[DistillationOutput, dict] | None:
    """The set and `extra` that `save_partial_set` kept under `folder` with settings `key`; None if there is none
    or its key is another."""
    meta_file = folder / "set.json"
    if not meta_file.is_file() or not (folder / "set.safetensors").is_file():
        return None
    meta = json.loads(meta_file.read_text())
    if meta.get("key") != key:
        return None
    tensors = load_file(str(folder / "set.safetensors"))
    videos = [tensors[f"videos.{i}"] for i in range(meta["num_videos"])]
    data = DistillationOutput(videos=torch.stack(videos) if meta["stacked"] else videos,
                              **{name: tensors.get(name) for name in _TENSORS}, **meta["fields"])
    return data, meta["extra"]


def load_partial_runs(folder: Path, student: str, key: str) -> list[dict]:
    """The finished student runs kept for `student` with cell settings `key` (none if another key)."""
    path = folder / f"runs-{student}.json"
    if not path.is_file():
        return []
    stored = json.loads(path.read_text())
    return stored["runs"] if stored.get("key") == key else []


def save_partial_runs(folder: Path, student: str, key: str, runs: list[dict]) -> None:
    _replace_text(folder / f"runs-{student}.json", json.dumps({"key": key, "runs": runs}, default=str))


def checkpoint_settings(cls, folder: Path, set_key: str, steps: int, accelerator=None) -> dict:
    """The config fields that make distiller `cls` checkpoint every `steps` iterations into the open cell's
    `folder`, and resume from the newest checkpoint there; `{}` when `steps` is 0 or `cls` has no checkpoints.
    None of these fields changes the distilled set, so they are not part of the cell's key; the folder is named by
    `set_key`, so other settings never meet these checkpoints."""
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    if not steps or not {"checkpointing_steps", "checkpoint_dir", "resume_from_checkpoint"} <= known:
        return {}
    ckpt = folder / f"checkpoints-{set_key[:16]}"
    if accelerator is None or accelerator.is_main_process:
        _make(folder)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return {"checkpointing_steps": steps, "checkpoint_dir": str(ckpt),
            "resume_from_checkpoint": "latest" if list_checkpoints(ckpt) else None}


def remove_partial(folder: Path) -> None:
    """Drop a recorded cell's partial folder (only ever one this module wrote: it lives under `partial/`)."""
    if folder.parent.name == PARTIAL and folder.is_dir():
        shutil.rmtree(folder)
        if [p.name for p in folder.parent.iterdir()] == [Path(MARKER).name]:
            shutil.rmtree(folder.parent)
