"""Cards, preview images and Hub uploads (the same folder is written locally and pushed)."""

from __future__ import annotations

import importlib.resources
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, ModelCard, ModelCardData, snapshot_download

TEMPLATES = importlib.resources.files("hf_vdd") / "model_cards"


def template_path(name: str) -> str:
    return str(TEMPLATES / name)


def render_dataset_card(card_data: DatasetCardData, template: str = "distilled_dataset_card.md",
                        **kwargs) -> DatasetCard:
    return DatasetCard.from_template(card_data, template_path=template_path(template), **kwargs)


def render_distiller_card(method: str, class_name: str, source: str, ipc: int, num_frames: int, frame_size: int,
                          parts: str, config_json: str, repo_id: str = "<org>/<repo>") -> ModelCard:
    data = ModelCardData(library_name="hf_vdd", tags=["hf_vdd", "dataset-distillation", method],
                         datasets=[source] if "/" in source else None)
    return ModelCard.from_template(data, template_path=template_path("distiller_card.md"), method=method,
                                   class_name=class_name, source=source, ipc=ipc, num_frames=num_frames,
                                   frame_size=frame_size, parts=parts, config_json=config_json, repo_id=repo_id)


def resolve_folder(id_or_dir: str | os.PathLike, what: str) -> Path:
    """A local folder as is, otherwise `snapshot_download` of a Hub model repo (clear error when unreachable)."""
    path = Path(id_or_dir)
    if path.is_dir():
        return path
    try:
        return Path(snapshot_download(str(id_or_dir)))
    except Exception as err:  # noqa: BLE001
        raise FileNotFoundError(f"Could not load {what} '{id_or_dir}': not a local folder, and the Hub said "
                                f"{str(err).splitlines()[0][:160]}. Pass the folder written by "
                                f"save_pretrained.") from err


def save_frames_grid(videos, labels, class_names, path: str | os.PathLike, max_classes: int = 12,
                     max_frames: int = 8, title: str | None = None) -> None:
    """Write a PNG grid: one row per class (its first video), `max_frames` frames evenly spaced.

    `videos`: sequence of `(T, C, H, W)` tensors, uint8 or float in pixel space [0, 1].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    classes = [c for c in range(len(class_names)) if (labels == c).any()][:max_classes]
    if not classes:
        raise ValueError("No video to draw.")
    cols = min(max_frames, max(int(videos[int(np.flatnonzero(labels == c)[0])].shape[0]) for c in classes))
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.1 * cols, 1.15 * len(classes)), squeeze=False)
    for row, c in enumerate(classes):
        v = videos[int(np.flatnonzero(labels == c)[0])]
        v = v.float() / 255.0 if v.dtype == torch.uint8 else v.float()
        idx = np.linspace(0, v.shape[0] - 1, cols).round().astype(int)
        for col in range(cols):
            ax = axes[row, col]
            ax.imshow(v[idx[col]].clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(class_names[c][:14], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def push_folder(folder: str | os.PathLike, repo_id: str, repo_type: str = "dataset", token: str | None = None,
                private: bool | None = None, commit_message: str = "Upload with hf_vdd") -> str:
    """`create_repo` + `upload_folder`; a clear error when offline or unauthenticated."""
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, private=private)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                 commit_message=commit_message)
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types; all mean the same to the user
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        hint = ("HF_HUB_OFFLINE is set: unset it on a connected machine" if os.environ.get("HF_HUB_OFFLINE") in
                ("1", "true", "True") else "check the network and log in with `hf auth login` (or pass token=)")
        raise RuntimeError(f"Could not push to the Hub {repo_type} repo '{repo_id}': {reason}. {hint}. Nothing "
                           f"was written locally; use .save(<folder>) to keep a copy.") from err
    return str(getattr(info, "commit_url", info))


def with_temp_folder(write, repo_id: str, **push_kwargs) -> str:
    """Write a repo folder with `write(folder)` into a temporary directory and push it."""
    with tempfile.TemporaryDirectory(prefix="hf_vdd-push-") as tmp:
        folder = Path(tmp) / "repo"
        write(folder)
        return push_folder(folder, repo_id, **push_kwargs)
