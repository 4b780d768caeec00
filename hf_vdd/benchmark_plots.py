"""The benchmark's plots: accuracy against IPC and against stored bytes, and per-class accuracy heatmaps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def plot_results(records: list[dict], folder: str | os.PathLike) -> list[Path]:
    """`accuracy_vs_ipc.png`, `accuracy_vs_storage.png` and `per_class_<dataset>.png` (heatmap) in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    recs = [r for r in records if r.get("student", "convnet3d") == "convnet3d"]
    datasets = list(dict.fromkeys(r["dataset"] for r in recs))
    written = []

    def save(fig, path: Path) -> None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        for m in dict.fromkeys(r["method"] for r in recs if r["dataset"] == d and r["ipc"] is not None):
            pts = sorted((r["ipc"], r["top1"]["mean"], r["top1"]["std"]) for r in recs
                         if r["dataset"] == d and r["method"] == m and r["ipc"] is not None)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", label=m,
                        capsize=3)
        for r in recs:
            if r["dataset"] == d and r["ipc"] is None:
                ax.axhline(r["top1"]["mean"], ls="--", lw=1, color="k" if r["method"] == "full" else "grey",
                           label=f"{r['method']} data")
        ax.set_xscale("log")
        ax.set(title=d, xlabel="IPC", ylabel="top-1 (%)")
        ax.legend(fontsize=7)
    save(fig, folder / "accuracy_vs_ipc.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in recs:
        if r.get("stored_bytes"):
            ax.scatter(r["stored_bytes"] / 2**20, r["top1"]["mean"])
            ax.annotate(f"{r['method']}@{r['ipc']}", (r["stored_bytes"] / 2**20, r["top1"]["mean"]), fontsize=6)
    ax.set(xscale="log", xlabel="stored MB", ylabel="top-1 (%)", title="accuracy vs storage")
    save(fig, folder / "accuracy_vs_storage.png")
    for d in datasets:
        rows = [r for r in recs if r["dataset"] == d]
        names = rows[0].get("class_names") or [str(i) for i in range(len(rows[0]["per_class"]))]
        grid = np.asarray([r["per_class"] for r in rows], dtype=float)
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names)), max(3, 0.3 * len(rows))))
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(rows)), [f"{r['method']} {r['ipc'] or 'all'}" for r in rows], fontsize=7)
        fig.colorbar(im, ax=ax, label="accuracy (%)")
        ax.set_title(f"{d}: per-class accuracy")
        save(fig, folder / f"per_class_{Path(d).name}.png")
    return written
