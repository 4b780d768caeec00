"""Teachers: a video classifier that scores or embeds real and synthetic clips (DAViD's reward, Realism's score).

`load_teacher(None, train_set)` trains a ConvNet3D on the full real train split with the shared evaluation trainer
and caches it on disk (keyed by the data and the training config), so the next call reuses it.
`load_teacher("folder-or-id", ...)` loads a saved ConvNet3D (`config.json` + safetensors from `save_pretrained`)
or any transformers VideoMAE video classifier.

Every method takes pixel-space videos `(N, T, C, H, W)` in [0, 1]; normalisation happens inside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data.decoding import normalize
from .data.loading import VideoClassificationSet
from .models import ConvNet3D, VideoMAEStudent
from .training import TrainConfig, train_student
from .utils import atomic_folder

TEACHER_TRAIN_DEFAULTS = TrainConfig(steps=500, batch_size=32, runs=1, seed=0)


def default_cache_dir() -> Path:
    """`$HF_VDD_CACHE/teachers`, default `~/.cache/hf_vdd/teachers`."""
    return Path(os.environ.get("HF_VDD_CACHE", Path.home() / ".cache" / "hf_vdd")) / "teachers"


class Teacher(nn.Module):
    """A frozen classifier with pixel-space `logits`, `probs` and `features` (batched, no grad by default)."""

    def __init__(self, model: nn.Module, num_frames: int, frame_size: int, source: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.num_frames, self.frame_size, self.source = num_frames, frame_size, source
        self.autocast = contextlib.nullcontext

    def on(self, accelerator=None) -> Teacher:
        """Move the teacher to `accelerator.device` and run its forwards under the accelerator's mixed-precision
        autocast (outputs stay fp32); without an accelerator, unchanged. Returns `self`."""
        if accelerator is not None:
            self.to(accelerator.device)
            self.autocast = accelerator.autocast
        return self

    def _fit(self, videos: torch.Tensor) -> torch.Tensor:
        """Resample `(N, T, C, H, W)` videos to the teacher's input shape (nearest in time, bilinear in space)."""
        if videos.ndim != 5:
            raise ValueError(f"Teacher expects (N, T, C, H, W) videos, got {tuple(videos.shape)}.")
        n, t, c, h, w = videos.shape
        if t != self.num_frames:
            idx = torch.linspace(0, t - 1, self.num_frames).round().long()
            videos = videos[:, idx]
        if (h, w) != (self.frame_size, self.frame_size):
            flat = videos.reshape(-1, c, h, w).float()
            flat = F.interpolate(flat, size=(self.frame_size, self.frame_size), mode="bilinear", align_corners=False)
            videos = flat.reshape(n, self.num_frames, c, self.frame_size, self.frame_size)
        return normalize(videos.float())

    def _batched(self, fn, videos: torch.Tensor, batch_size: int) -> torch.Tensor:
        """`fn` of `videos` in batches on the teacher's device, fp32 on the CPU."""
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(videos), batch_size):
            x = self._fit(videos[i:i + batch_size].to(device, non_blocking=True))
            with self.autocast():
                out.append(fn(x).float().cpu())
        return torch.cat(out)

    def logits(self, videos: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """`(N, K)` logits of pixel-space videos."""
        return self._batched(self.model, videos, batch_size)

    def probs(self, videos: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """`(N, K)` softmax probabilities."""
        return F.softmax(self.logits(videos, batch_size), -1)

    def features(self, videos: torch.Tensor, batch_size: int = 64, grad: bool = False) -> torch.Tensor:
        """`(N, D)` penultimate features (`embed`). With `grad=True` one differentiable batch is returned."""
        if grad:
            with self.autocast():
                return self.model.embed(self._fit(videos)).float()
        with torch.no_grad():
            return self._batched(self.model.embed, videos, batch_size)

    forward = logits


def _cache_key(train_set: VideoClassificationSet, config: TrainConfig) -> str:
    facts = {"name": train_set.name, "classes": train_set.class_names, "n": len(train_set),
             "labels": hashlib.sha1(train_set.labels.tobytes()).hexdigest(), "num_frames": train_set.num_frames,
             "frame_size": train_set.frame_size, "interval": train_set.interval,
             "train": {k: v for k, v in asdict(config).items() if k not in ("show_progress", "runs")}}
    return hashlib.sha1(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_teacher(teacher: str | os.PathLike | None, train_set: VideoClassificationSet,
                 train_config: TrainConfig | None = None, cache_dir: str | os.PathLike | None = None,
                 accelerator=None, show_progress: bool = True) -> Teacher:
    """A frozen `Teacher` for `train_set`'s classes.

    Args:
        teacher: a folder or Hub id (saved ConvNet3D, or a transformers VideoMAE classifier); `None` trains a
            ConvNet3D on `train_set` (the full real train split) and caches it under `cache_dir`.
        train_set: the real training split; defines the classes and, for a trained teacher, the input shape.
        train_config: how the teacher is trained (default: 500 steps, batch 32, seed 0).
    """
    if teacher is not None:
        return _load_saved(str(teacher), train_set)
    config = replace(train_config or TEACHER_TRAIN_DEFAULTS, runs=1, show_progress=show_progress)
    folder = Path(cache_dir or default_cache_dir()) / f"convnet3d-{_cache_key(train_set, config)}"
    if (folder / "config.json").is_file():
        return _load_saved(str(folder), train_set)
    torch.manual_seed(config.seed)  # before the model exists: its initialisation is part of the seeded run
    model = ConvNet3D(num_classes=train_set.num_classes)
    model = train_student(model, train_set.with_options(train=True).preload(show_progress=show_progress), config,
                          config.seed, accelerator)
    is_main = accelerator is None or accelerator.is_main_process
    if is_main:
        with atomic_folder(folder, marker="teacher.json") as tmp:
            model.save_pretrained(tmp)
            (Path(tmp) / "teacher.json").write_text(json.dumps(
                {"source": train_set.name, "class_names": train_set.class_names, "num_frames": train_set.num_frames,
                 "frame_size": train_set.frame_size, "train_config": asdict(config)}, indent=2))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return Teacher(model.cpu(), train_set.num_frames, train_set.frame_size, source=str(folder))


def _load_saved(id_or_dir: str, train_set: VideoClassificationSet) -> Teacher:
    from .hub import resolve_folder

    folder = resolve_folder(id_or_dir, "teacher")
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if config.get("model_type") == "videomae":
        model = VideoMAEStudent.from_pretrained(str(folder), train_set.num_classes)
        num_frames, frame_size = model.model.config.num_frames, model.model.config.image_size
    elif "widths" in config or "num_classes" in config:
        model = ConvNet3D.from_pretrained(str(folder))
        num_frames, frame_size = train_set.num_frames, train_set.frame_size
    else:
        raise ValueError(f"Teacher '{id_or_dir}' is neither a saved ConvNet3D nor a VideoMAE classifier "
                         f"(config.json model_type={config.get('model_type')!r}). Pass a folder written by "
                         f"ConvNet3D.save_pretrained or VideoMAEForVideoClassification.save_pretrained.")
    num_classes = model.num_classes
    if num_classes != train_set.num_classes:
        raise ValueError(f"Teacher '{id_or_dir}' predicts {num_classes} classes but the data has "
                         f"{train_set.num_classes}; train a teacher on this dataset (omit --teacher).")
    return Teacher(model, num_frames, frame_size, source=id_or_dir)
