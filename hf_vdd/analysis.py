"""Temporal-redundancy analysis: which classes need motion, and how redundant a video set is.

- `class_deltas`: DAViD's Eq. 6, `Delta_c = acc_c(full) - acc_c(static)`, where the static student trains and tests
  on one frame per video (random for training, the middle one for testing) repeated T times.
- `temporal_redundant_subset`: the top-k classes by Delta as a relabelled `DatasetDict` (a TR-UCF-style split).
- `redundancy_metrics`: IDTD's Sec. 4.5 per class, `R_t = tanh(1 / mean_b var_t(F_t(b)))` on temporal features of
  the student's last conv block, and `R_IC = tanh(1 / var_b(F_IC))` on its pooled features (variances averaged
  over feature dimensions, features scaled by their spread over the whole set). The paper writes
  `R_IC = tanh(1 / ((1/B) var(F_IC)))`; the extra `1/B` makes the value depend on the batch size (it tends to 1
  for large B), so it is left out.
- `delta_groups`: mean per-class accuracy of each method per Delta group (DAViD's Fig. 3).

Each has a `plot_*` helper (matplotlib PNG); `recipes/temporal_redundancy.py` runs them from the command line.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from datasets import ClassLabel, DatasetDict

from .data.decoding import normalize
from .data.loading import VideoClassificationSet
from .training import TrainConfig, evaluate_distilled


def class_deltas(train_set: VideoClassificationSet, test_set: VideoClassificationSet,
                 config: TrainConfig | None = None, accelerator=None) -> dict:
    """Per-class accuracy of a student on full clips and on single frames, and their difference (Eq. 6).

    Returns `{"class_names", "acc_full", "acc_static", "delta", "top1_full", "top1_static"}` (accuracies in %).
    """
    config = config or TrainConfig(runs=1)
    full = evaluate_distilled(train_set.with_options(static=False), test_set.with_options(static=False), config,
                              accelerator)
    static = evaluate_distilled(train_set.with_options(static=True), test_set.with_options(static=True), config,
                                accelerator)
    delta = (np.asarray(full.per_class) - np.asarray(static.per_class)).tolist()
    return {"class_names": list(train_set.class_names), "acc_full": full.per_class, "acc_static": static.per_class,
            "delta": delta, "top1_full": full.top1, "top1_static": static.top1, "runs": config.runs}


def temporal_redundant_subset(train_set: VideoClassificationSet, test_set: VideoClassificationSet,
                              deltas: dict, k: int) -> DatasetDict:
    """The `k` classes with the largest Delta, as a `DatasetDict` with `train`/`test` splits and new class ids.

    Pass the result to `load_video_dataset` like any source (no video is decoded or copied).
    """
    names = deltas["class_names"]
    if names != list(train_set.class_names):
        raise ValueError("deltas were computed on other classes than train_set; recompute them with class_deltas.")
    if not 0 < k <= len(names):
        raise ValueError(f"k must be in 1..{len(names)}, got {k}.")
    keep = [int(c) for c in np.argsort(-np.asarray(deltas["delta"]), kind="stable")[:k]]
    keep.sort()
    remap = {old: new for new, old in enumerate(keep)}
    label = ClassLabel(names=[names[c] for c in keep])
    out = {}
    for split, vset in (("train", train_set), ("test", test_set)):
        col = vset.label_column
        ds = vset.hf.filter(lambda y: y in remap, input_columns=col)
        ds = ds.map(lambda y, col=col: {col: remap[y]}, input_columns=col)
        out[split] = ds.cast_column(col, label)
    return DatasetDict(out)


@torch.no_grad()
def redundancy_metrics(train_set: VideoClassificationSet, model, max_per_class: int = 64) -> dict:
    """IDTD's within-sample (`R_t`) and inter-sample (`R_IC`) redundancy of every class, in [0, 1].

    `model`: a ConvNet3D (its `feature_map` gives the temporal features, `embed` the pooled ones), e.g. a teacher.
    Features are divided by their standard deviation over the whole set (per dimension) first, so variances are
    relative to the set's spread; raw ConvNet3D features have variances far below 1 and `tanh(1 / var)` saturated
    at 1 for every class.
    """
    model = model.eval()
    by_class = train_set.indices_per_class()
    temporal, pooled = {}, {}
    for c in range(train_set.num_classes):
        idx = by_class.get(c, [])
        if len(idx):
            x = normalize(train_set.stack(idx[:max_per_class], train=False))
            temporal[c] = model.feature_map(x).flatten(2).transpose(1, 2)     # (B, t, d)
            pooled[c] = model.embed(x)                                        # (B, d)
    t_scale = torch.cat([f.flatten(0, 1) for f in temporal.values()]).std(0).clamp_min(1e-8)
    p_scale = torch.cat(list(pooled.values())).std(0).clamp_min(1e-8)
    r_t, r_ic = [], []
    for c in range(train_set.num_classes):
        if c not in temporal:
            r_t.append(float("nan"))
            r_ic.append(float("nan"))
            continue
        var_t = (temporal[c] / t_scale).var(dim=1, unbiased=False).mean().item()  # mean over b, d of var over t
        var_ic = (pooled[c] / p_scale).var(dim=0, unbiased=False).mean().item()
        r_t.append(float(np.tanh(1.0 / max(var_t, 1e-12))))
        r_ic.append(float(np.tanh(1.0 / max(var_ic, 1e-12))))
    return {"class_names": list(train_set.class_names), "R_t": r_t, "R_IC": r_ic}


def delta_groups(deltas: dict, per_class_acc: dict[str, list[float]], num_groups: int = 11) -> dict:
    """Mean per-class accuracy of each method in `num_groups` groups of classes sorted by Delta (DAViD's Fig. 3).

    Group 0 holds the most static classes. With fewer classes than groups, each class is its own group.
    """
    order = np.argsort(np.asarray(deltas["delta"]), kind="stable")
    groups = [g for g in np.array_split(order, min(num_groups, len(order))) if len(g)]
    return {"groups": [[deltas["class_names"][i] for i in g] for g in groups],
            "mean_delta": [float(np.mean([deltas["delta"][i] for i in g])) for g in groups],
            "accuracy": {m: [float(np.mean([acc[i] for i in g])) for g in groups] for m, acc in per_class_acc.items()}}


# ---- plots ------------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)


def plot_deltas(deltas: dict, path: str | os.PathLike) -> None:
    """Bar chart of Delta per class, sorted, with full and static accuracy as markers."""
    plt = _plt()
    order = np.argsort(np.asarray(deltas["delta"]))
    names = [deltas["class_names"][i] for i in order]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names)), 4))
    ax.bar(range(len(names)), [deltas["delta"][i] for i in order], color="tab:blue", label="Delta = full - static")
    ax.plot(range(len(names)), [deltas["acc_full"][i] for i in order], "k^", label="acc full")
    ax.plot(range(len(names)), [deltas["acc_static"][i] for i in order], "rv", label="acc static")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylabel("accuracy / Delta (%)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_delta_groups(groups: dict, path: str | os.PathLike) -> None:
    plt = _plt()
    methods = list(groups["accuracy"])
    n = len(groups["groups"])
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * n), 4))
    for j, m in enumerate(methods):
        ax.bar(np.arange(n) + j * width, groups["accuracy"][m], width, label=m)
    ax.set_xticks(np.arange(n) + 0.4 - width / 2, [f"G{i}\n{d:.0f}" for i, d in enumerate(groups["mean_delta"])])
    ax.set_xlabel("group (mean Delta), static → dynamic")
    ax.set_ylabel("mean per-class accuracy (%)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_redundancy(metrics: dict, path: str | os.PathLike) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(metrics["R_t"], metrics["R_IC"])
    for name, x, y in zip(metrics["class_names"], metrics["R_t"], metrics["R_IC"]):
        ax.annotate(name, (x, y), fontsize=7)
    ax.set_xlabel("within-sample redundancy R_t")
    ax.set_ylabel("inter-sample redundancy R_IC")
    _save(fig, path)
