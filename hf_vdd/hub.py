"""Cards, preview images and Hub uploads (the same folder is written locally and pushed)."""

from __future__ import annotations

import importlib.resources
import os
import tempfile
from dataclasses import is_dataclass
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    get_token,
    snapshot_download,
)
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .utils import HfVddError

# Jinja card templates: the top-level model_cards/ of a checkout, or hf_vdd/model_cards/ inside an installed wheel.
_SOURCE_TEMPLATES = Path(__file__).resolve().parents[1] / "model_cards"
TEMPLATES = _SOURCE_TEMPLATES if _SOURCE_TEMPLATES.is_dir() else importlib.resources.files("hf_vdd") / "model_cards"
MODEL_FILES = ("config.json", "model_index.json", "preprocessor_config.json")


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
    # one image of tiles (1-pixel white gaps) drawn by one imshow: an axes per frame made a 10-class grid take ~3 s
    tiles = []
    for c in classes:
        v = videos[int(np.flatnonzero(labels == c)[0])]
        v = v.float() / 255.0 if v.dtype == torch.uint8 else v.float()
        tiles.append(v[np.linspace(0, v.shape[0] - 1, cols).round().astype(int)].clamp(0, 1).permute(0, 2, 3, 1))
    h, w = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    grid = np.ones((len(classes) * (h + 1) - 1, cols * (w + 1) - 1, 3), np.float32)
    for row, t in enumerate(tiles):
        for col in range(cols):
            grid[row * (h + 1):row * (h + 1) + t.shape[1], col * (w + 1):col * (w + 1) + t.shape[2]] = t[col].numpy()
    fig, ax = plt.subplots(figsize=(1.1 * cols, 1.15 * len(classes)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([row * (h + 1) + h / 2 for row in range(len(classes))],
                  [class_names[c][:14] for c in classes], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_preview_gif(videos, labels, class_names, path: str | os.PathLike, max_classes: int = 12,
                     columns: int = 4, min_side: int = 64, frame_ms: int = 250) -> None:
    """Write an animated GIF (the Hub renders it in cards): one tile per class (its first video) in a grid of
    `columns`, every tile playing its frames in step; rows shorter than the longest are expanded by interleave-repeat.

    `videos`: sequence of `(T, C, H, W)` tensors, uint8 or float in pixel space [0, 1].
    """
    from PIL import Image

    labels = np.asarray(labels)
    classes = [c for c in range(len(class_names)) if (labels == c).any()][:max_classes]
    if not classes:
        raise ValueError("No video to draw.")
    clips = []
    for c in classes:
        v = videos[int(np.flatnonzero(labels == c)[0])]
        v = v.float() / 255.0 if v.dtype == torch.uint8 else v.float()
        clips.append((v.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())  # (T, H, W, C)
    t = max(len(v) for v in clips)
    h, w = clips[0].shape[1:3]
    scale = max(1, -(-min_side // min(h, w)))  # small frames are enlarged so the preview is readable
    cols = min(columns, len(clips))
    rows = -(-len(clips) // cols)
    frames = []
    for i in range(t):
        canvas = np.zeros((rows * h, cols * w, 3), np.uint8)
        for k, v in enumerate(clips):
            r, q = divmod(k, cols)
            canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = v[i * len(v) // t][..., :3]
        frames.append(Image.fromarray(canvas).resize((cols * w * scale, rows * h * scale), Image.NEAREST))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)


def hub_offline() -> bool:
    """True when `HF_HUB_OFFLINE` is set (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") or \
        bool(getattr(constants, "HF_HUB_OFFLINE", False))


def check_push_settings(push_to_hub: bool, repo_id: str | None, flag: str = "--hub_repo_id") -> None:
    """Before any work: `--push_to_hub` needs a valid `<org>/<name>` repo id, a connection and a login."""
    if repo_id is not None:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as err:
            raise HfVddError(f"{flag} '{repo_id}' is not a valid Hub repo id ({err}). Use <org>/<name>.") from err
    if not push_to_hub:
        return
    if not repo_id or "/" not in repo_id:
        raise HfVddError(f"--push_to_hub needs {flag} <org>/<name> (got {repo_id!r}).")
    if hub_offline():
        raise HfVddError("--push_to_hub cannot upload: HF_HUB_OFFLINE is set. Unset it on a connected machine, or "
                         "drop --push_to_hub and upload the output folder later with `hf upload`.")
    if get_token() is None:
        raise HfVddError("--push_to_hub needs a Hub login: run `hf auth login` (or set HF_TOKEN) first.")


def check_model_ref(ref: str, flag: str) -> None:
    """Before any work: `ref` must be a saved model folder, or a Hub id that is reachable (cached when offline)."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in MODEL_FILES):
            raise HfVddError(f"{flag} {ref} is not a saved model folder (none of {list(MODEL_FILES)} in it). Pass "
                             f"a folder written by save_pretrained, or a Hub model id.")
        return
    if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise HfVddError(f"{flag} {ref}: no such folder, and not an <org>/<name> Hub id. Check the path.")
    try:
        if hub_offline():
            snapshot_download(ref, local_files_only=True)
        else:
            HfApi().model_info(ref, timeout=8)
    except Exception as err:  # noqa: BLE001 - every failure means the same to the user
        why = ("HF_HUB_OFFLINE is set and it is not in the local Hub cache" if hub_offline()
               else f"the Hub said {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}")
        raise HfVddError(f"{flag} {ref}: no such local folder, and {why}. Pass a local folder written by "
                         f"save_pretrained, or check the Hub id and your connection.") from err


# Config fields that name a model (a local folder or a Hub id), checked before any work; values that are keywords.
MODEL_FIELDS = {"feature_model": (), "teacher": (), "detector": ("motion",), "generator": (), "encoder": (),
                "pretrained": (), "student_pretrained": ()}


def check_models(*configs) -> None:
    """Check every model a config field names (see `MODEL_FIELDS`) before any work; dicts are accepted too."""
    for config in configs:
        values = config if isinstance(config, dict) else vars(config) if is_dataclass(config) else {}
        for name, keywords in MODEL_FIELDS.items():
            ref = values.get(name)
            if isinstance(ref, str) and ref not in keywords:
                check_model_ref(ref, f"--{name}")


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
        hint = ("HF_HUB_OFFLINE is set: unset it on a connected machine" if hub_offline()
                else "check the network and log in with `hf auth login` (or pass token=)")
        raise HfVddError(f"Could not push {folder} to the Hub {repo_type} repo '{repo_id}': {reason}. {hint}. "
                         f"Nothing was uploaded.") from err
    return str(getattr(info, "commit_url", info))


def with_temp_folder(write, repo_id: str, **push_kwargs) -> str:
    """Write a repo folder with `write(folder)` into a temporary directory and push it."""
    with tempfile.TemporaryDirectory(prefix="hf_vdd-push-") as tmp:
        folder = Path(tmp) / "repo"
        write(folder)
        return push_folder(folder, repo_id, **push_kwargs)
