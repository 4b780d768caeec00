"""Teachers: a video classifier that scores or embeds real and synthetic clips (DAViD's reward, Realism's score).

`load_teacher(None, train_set)` trains a ConvNet3D on the full real train split with the shared evaluation trainer
and caches it on disk (keyed by the data and the training config), so the next call reuses it.
`load_teacher("folder-or-id", ...)` loads a saved ConvNet3D (`config.json` + safetensors from `save_pretrained`)
or any transformers VideoMAE video classifier.

A teacher never scores with a random head. A VideoMAE's `id2label` is matched to the data's class names (case, spaces,
`_` and `-` ignored: "ApplyEyeMakeup" = "apply_eye_makeup"); when every class is found, the head's rows are selected
and ordered like the data's classes (a Kinetics-400 head serves a dataset of Kinetics classes). Unnamed labels
(`LABEL_0`, ...) are taken in index order when their number matches. Otherwise (other classes, or a backbone-only
checkpoint) `teacher_head="probe"` (default) fits a linear probe on the frozen backbone's pooled features of the real
train split and records its accuracy in `Teacher.probe` (the distilled set's card states it); `teacher_head="error"`
raises instead.

Every method takes pixel-space videos `(N, T, C, H, W)` in [0, 1] (or uint8); normalisation happens inside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.decoding import normalize
from .data.loading import VideoClassificationSet
from .models import ConvNet3D
from .training import TrainConfig, train_student
from .utils import atomic_folder, precision_key, progress

if TYPE_CHECKING:
    from .models.videomae import VideoMAEStudent

TEACHER_TRAIN_DEFAULTS = TrainConfig(steps=500, batch_size=32, runs=1, seed=0)
TEACHER_HEADS = ("probe", "error")
PROBE_HELD_OUT = 0.2  # share of each class held out to measure the probe when no eval split is given


def default_cache_dir() -> Path:
    """`$HF_VDD_CACHE/teachers`, default `~/.cache/hf_vdd/teachers`."""
    return Path(os.environ.get("HF_VDD_CACHE", Path.home() / ".cache" / "hf_vdd")) / "teachers"


class Teacher(nn.Module):
    """A frozen classifier with pixel-space `logits`, `probs` and `features` (batched, no grad by default)."""

    def __init__(self, model: nn.Module, num_frames: int, frame_size: int, source: str, head: str = "checkpoint"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.num_frames, self.frame_size, self.source = num_frames, frame_size, source
        self.head = head  # where the classifier comes from, in words (cards state it)
        self.probe: dict | None = None  # set by `fit_probe`: accuracies and sizes of the fitted linear head
        self.autocast = contextlib.nullcontext

    def info(self) -> dict:
        """`{"source", "head", "probe"}`: what a distilled set's `stats` and card say about its teacher."""
        return {"source": self.source, "head": self.head, "probe": self.probe}

    def on(self, accelerator=None) -> Teacher:
        """Move the teacher to `accelerator.device` and run its forwards under the accelerator's mixed-precision
        autocast (outputs stay fp32); without an accelerator, unchanged. Returns `self`."""
        if accelerator is not None:
            self.to(accelerator.device)
            self.autocast = accelerator.autocast
        return self

    def _fit(self, videos: torch.Tensor) -> torch.Tensor:
        """Resample `(N, T, C, H, W)` videos (float in [0, 1], or uint8) to the teacher's input shape (nearest in
        time, bilinear in space), normalised."""
        if videos.ndim != 5:
            raise ValueError(f"Teacher expects (N, T, C, H, W) videos, got {tuple(videos.shape)}.")
        if videos.dtype == torch.uint8:
            videos = videos.float() / 255.0
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


def _cache_key(train_set: VideoClassificationSet, config: TrainConfig, amp: dict | None = None) -> str:
    """The trained teacher's cache name: its data and training, and the autocast it trained under (fp32 keys omit
    it, so they are what they were before mixed precision existed; likewise `channels_last` when off)."""
    facts = {"name": train_set.name, "classes": train_set.class_names, "n": len(train_set),
             "labels": hashlib.sha1(train_set.labels.tobytes()).hexdigest(), "num_frames": train_set.num_frames,
             "frame_size": train_set.frame_size, "interval": train_set.interval,
             "train": {k: v for k, v in asdict(config).items()
                       if k not in ("show_progress", "runs") and not (k == "channels_last" and not v)}}
    facts |= amp or {}  # `precision_key`: empty in fp32
    return hashlib.sha1(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_teacher(teacher: str | os.PathLike | None, train_set: VideoClassificationSet,
                 train_config: TrainConfig | None = None, cache_dir: str | os.PathLike | None = None,
                 accelerator=None, show_progress: bool = True, teacher_head: str = "probe",
                 eval_set: VideoClassificationSet | None = None) -> Teacher:
    """A frozen `Teacher` for `train_set`'s classes (logits in `train_set.class_names` order).

    Args:
        teacher: a folder or Hub id (saved ConvNet3D, or a transformers VideoMAE classifier); `None` trains a
            ConvNet3D on `train_set` (the full real train split) and caches it under `cache_dir`.
        train_set: the real training split; defines the classes and, for a trained teacher, the input shape.
        train_config: how the teacher is trained (default: 500 steps, batch 32, seed 0).
        accelerator: features of a probe are computed on `accelerator.device` (each process a share); the
            returned teacher is then on that device.
        teacher_head: what a VideoMAE whose labels are not the data's classes gets: `"probe"` (a linear probe
            fitted on `train_set`, see `fit_probe`) or `"error"` (a ValueError naming the mismatch).
        eval_set: where a probe's held-out accuracy is measured (e.g. the test split); default: 20 % of each
            class of `train_set`, held out from a first fit (the probe kept is refitted on all of `train_set`).
    """
    if teacher_head not in TEACHER_HEADS:
        raise ValueError(f"teacher_head must be one of {TEACHER_HEADS}, got {teacher_head!r}.")
    if teacher is not None:
        return _load_saved(str(teacher), train_set, teacher_head, accelerator, show_progress, eval_set)
    config = replace(train_config or TEACHER_TRAIN_DEFAULTS, runs=1, show_progress=show_progress)
    amp = precision_key(accelerator)  # bf16 trains another teacher
    folder = Path(cache_dir or default_cache_dir()) / f"convnet3d-{_cache_key(train_set, config, amp)}"
    if (folder / "config.json").is_file():
        cached = _load_saved(str(folder), train_set)
        cached.head = "ConvNet3D trained on the real train split (cached)"
        return cached
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
                 "frame_size": train_set.frame_size, "train_config": asdict(config),
                 "mixed_precision": amp.get("mixed_precision", "no")},
                indent=2))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return Teacher(model.cpu(), train_set.num_frames, train_set.frame_size, source=str(folder),
                   head="ConvNet3D trained on the real train split")


def _load_saved(id_or_dir: str, train_set: VideoClassificationSet, teacher_head: str = "probe", accelerator=None,
                show_progress: bool = True, eval_set: VideoClassificationSet | None = None) -> Teacher:
    from .hub import resolve_folder

    folder = resolve_folder(id_or_dir, "teacher")
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if config.get("model_type") == "videomae":
        return _videomae_teacher(id_or_dir, str(folder), train_set, teacher_head, accelerator, show_progress,
                                 eval_set)
    if "widths" in config or "num_classes" in config:
        model = ConvNet3D.from_pretrained(str(folder))
    else:
        raise ValueError(f"Teacher '{id_or_dir}' is neither a saved ConvNet3D nor a VideoMAE classifier "
                         f"(config.json model_type={config.get('model_type')!r}). Pass a folder written by "
                         f"ConvNet3D.save_pretrained or VideoMAEForVideoClassification.save_pretrained.")
    if model.num_classes != train_set.num_classes:
        raise ValueError(f"Teacher '{id_or_dir}' predicts {model.num_classes} classes but the data has "
                         f"{train_set.num_classes}; train a teacher on this dataset (omit --teacher).")
    return Teacher(model, train_set.num_frames, train_set.frame_size, source=id_or_dir)


# ---- VideoMAE teachers: match the head to the data's classes, or fit a linear probe -----------------------------
def _norm_label(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def match_labels(checkpoint_labels: list[str], class_names: list[str]) -> list[int] | None:
    """The checkpoint head's row for each of `class_names` (compared ignoring case, spaces, `_` and `-`), or `None`
    when a class is missing or a name is ambiguous."""
    rows_of: dict[str, list[int]] = {}
    for i, name in enumerate(checkpoint_labels):
        rows_of.setdefault(_norm_label(name), []).append(i)
    rows = [rows_of.get(_norm_label(name), []) for name in class_names]
    if any(len(r) != 1 for r in rows) or len({r[0] for r in rows}) != len(rows):
        return None
    return [r[0] for r in rows]


def _set_head(student: VideoMAEStudent, weight: torch.Tensor, bias: torch.Tensor, class_names: list[str]) -> None:
    """Install a `(K, D)` linear head whose outputs are `class_names` (config labels updated to match)."""
    old = student.model.classifier
    head = nn.Linear(weight.shape[1], weight.shape[0]).requires_grad_(False)
    head.weight.copy_(weight)
    head.bias.copy_(bias)
    student.model.classifier = head.to(old.weight.device if isinstance(old, nn.Linear) else "cpu")
    cfg = student.model.config
    cfg.num_labels = student.num_classes = len(class_names)
    cfg.id2label = dict(enumerate(class_names))
    cfg.label2id = {name: i for i, name in enumerate(class_names)}


def _videomae_teacher(id_or_dir: str, folder: str, train_set: VideoClassificationSet, teacher_head: str,
                      accelerator, show_progress: bool, eval_set: VideoClassificationSet | None) -> Teacher:
    from .models.videomae import VideoMAEStudent

    student = VideoMAEStudent.from_pretrained(folder)  # the checkpoint's own head, never resized
    cfg = student.model.config
    labels = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
    names = list(train_set.class_names)
    unnamed = all(re.fullmatch(r"LABEL_\d+", name) for name in labels)
    teacher = Teacher(student, cfg.num_frames, cfg.image_size, source=id_or_dir)
    if not student.head_loaded:
        reason = "has no classifier head (a backbone-only checkpoint)"
    elif unnamed and len(labels) == len(names):
        teacher.head = "checkpoint (unnamed labels LABEL_i, taken in the data's class order)"
        return teacher
    elif unnamed:
        reason = f"has {len(labels)} unnamed labels (LABEL_0, ...) for the data's {len(names)} classes"
    elif (rows := match_labels(labels, names)) is not None:
        if rows != list(range(len(labels))):
            head = student.model.classifier
            _set_head(student, head.weight[rows].detach(), head.bias[rows].detach(), names)
            teacher.head = f"checkpoint, {len(names)} of its {len(labels)} rows in the data's class order"
        return teacher
    else:
        found = {_norm_label(name) for name in labels}
        missing = [name for name in names if _norm_label(name) not in found]
        reason = (f"labels ({len(labels)}, e.g. {labels[:3]}) do not name the data's classes (missing "
                  f"{len(missing)} of {len(names)}, e.g. {missing[:3]})")
    if teacher_head == "error":
        raise ValueError(f"VideoMAE teacher '{id_or_dir}' {reason}: its logits would not be this dataset's classes. "
                         f"Pass teacher_head='probe' (--teacher_head probe) to fit a linear probe on its frozen "
                         f"features of the real train split, or a teacher fine-tuned on these classes (with an "
                         f"id2label naming them).")
    fit_probe(teacher.on(accelerator), train_set, eval_set, accelerator, show_progress)
    return teacher


def _set_features(teacher: Teacher, data: VideoClassificationSet, accelerator, show: bool, desc: str,
                  batch_size: int = 32) -> np.ndarray:
    """`(N, D)` fp32 teacher features of every clip of `data` (centred window), each process computing a share."""
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    mine = np.arange(rank, len(data), world)
    feats = [teacher.features(data.stack(mine[i:i + batch_size]), batch_size)
             for i in progress(range(0, len(mine), batch_size), desc=desc, disable=not show, leave=False)]
    local = torch.cat(feats).numpy() if feats else np.zeros((0, 0), np.float32)
    if world == 1:
        return local
    from accelerate.utils import gather_object

    parts = [p for p in gather_object([(mine, local)]) if len(p[0])]
    out = np.empty((len(data), parts[0][1].shape[1]), np.float32)
    for idx, f in parts:
        out[idx] = f
    return out


def _logistic(x: np.ndarray, y: np.ndarray, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(K, D)` weights and `(K,)` biases of an L2 logistic regression on standardised `x`, folded back to raw
    features (absent classes get a bias of -1e4)."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit((x - mu) / sd, y)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # sklearn keeps one row for two classes: the softmax pair (-z/2, z/2) is the same
        coef, intercept = np.concatenate([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
    weight, bias = np.zeros((num_classes, x.shape[1])), np.full(num_classes, -1e4)
    weight[clf.classes_], bias[clf.classes_] = coef / sd, intercept - (coef * mu / sd).sum(1)
    return weight, bias


def fit_probe(teacher: Teacher, train_set: VideoClassificationSet, eval_set: VideoClassificationSet | None = None,
              accelerator=None, show_progress: bool = True, seed: int = 0) -> dict:
    """Replace a VideoMAE teacher's classifier by a linear probe over `train_set`'s classes; returns (and stores in
    `teacher.probe`) its accuracies.

    The backbone stays frozen: pooled features `(N, D)` of every real train clip (centred window) are computed on
    the teacher's device, then a multinomial logistic regression (scikit-learn, L-BFGS, L2 with C=1, standardised
    features: a convex fit with no learning rate or epochs to tune, the usual linear-probe protocol) is fitted on
    the CPU. Held-out accuracy: on `eval_set` when given, else on 20 % of each class held out from a first fit;
    the head kept is fitted on all of `train_set`.
    """
    show = show_progress and (accelerator is None or accelerator.is_local_main_process)
    x = _set_features(teacher, train_set, accelerator, show, "teacher probe: train features")
    y, k = np.asarray(train_set.labels), train_set.num_classes

    def accuracy(weight, bias, xs, ys):
        return round(float(((xs @ weight.T + bias).argmax(1) == ys).mean()), 4) if len(ys) else None

    weight, bias = _logistic(x, y, k, seed)
    if eval_set is not None:
        x_held, y_held = _set_features(teacher, eval_set, accelerator, show, "teacher probe: eval features"), \
            np.asarray(eval_set.labels)
        held_accuracy, held_out = accuracy(weight, bias, x_held, y_held), "the given evaluation split"
    else:
        rng = np.random.default_rng(seed)
        held = np.concatenate([rng.permutation(idx)[:int(len(idx) * PROBE_HELD_OUT)]
                               for idx in train_set.indices_per_class().values()]).astype(np.int64)
        keep = np.setdiff1d(np.arange(len(y)), held)
        y_held = y[held]
        held_accuracy = accuracy(*_logistic(x[keep], y[keep], k, seed), x[held], y_held) if len(held) else None
        held_out = f"{PROBE_HELD_OUT:.0%} of each class of the train split, held out from a first fit"
    teacher.probe = {
        "train_accuracy": accuracy(weight, bias, x, y), "held_out_accuracy": held_accuracy, "held_out": held_out,
        "num_train": int(len(y)), "num_held_out": int(len(y_held)), "feature_dim": int(x.shape[1]),
        "fit": "scikit-learn LogisticRegression (lbfgs, L2, C=1, standardised features), frozen backbone"}
    _set_head(teacher.model, torch.as_tensor(weight, dtype=torch.float32), torch.as_tensor(bias, dtype=torch.float32),
              list(train_set.class_names))
    teacher.model.eval().requires_grad_(False)
    teacher.head = f"linear probe on the frozen backbone, fitted on the real train split ({len(y)} clips)"
    return teacher.probe
