"""Where a split comes from: built-in names, local folders, Hub ids and `datasets` objects resolved to a
`DatasetDict`/`Dataset` without decoding a video (`load_source`), the split and column pickers, and how a source is
named in cards (`source_name`, with the Hub commit a split was read at; `shareable` values and commands)."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import shlex
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Video, load_dataset

from ..utils import get_logger, shared_data_dir
from .toy_actions import toy_actions

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
logger = get_logger(__name__)
BUILTIN_SOURCES = ("toy-actions", "ucf12", "real_clips")


@functools.lru_cache(maxsize=4)
def _toy_actions_cached(**kwargs) -> DatasetDict:
    return toy_actions(**kwargs)


def _has_videos(folder: Path) -> bool:
    return any(p.suffix.lower() in VIDEO_EXTENSIONS for p in folder.rglob("*") if p.is_file())


def _real_clips(root: Path) -> DatasetDict:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: real_clips needs its manifest.csv (class_name, file, split1).")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["class_name"] for r in rows})
    splits = {}
    for split in ("train", "test"):
        sel = [r for r in rows if r["split1"] == split]
        splits[split] = Dataset.from_dict(
            {"video": [str(root / r["class_name"] / r["file"]) for r in sel],
             "label": [names.index(r["class_name"]) for r in sel]},
        ).cast_column("label", ClassLabel(names=names))
    return DatasetDict(splits)


def _shared(name: str) -> Path:
    folder = shared_data_dir() / name
    if not folder.exists():
        raise FileNotFoundError(f"Built-in dataset '{name}' expects {folder}, which does not exist. Set "
                                f"HF_VDD_SHARED_DATA to the folder holding '{name}/'.")
    return folder


def load_source(source, toy_kwargs: dict | None = None, config: str | None = None,
                revision: str | None = None) -> DatasetDict | Dataset:
    """Resolve `source` to a `DatasetDict` (or `Dataset`) without decoding any video; `config` and `revision` go to
    `load_dataset` for Hub ids and dataset folders."""
    if isinstance(source, (Dataset, DatasetDict)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"Unsupported dataset source of type {type(source).__name__}: pass a Hub id, a folder, "
                        f"a datasets.Dataset/DatasetDict or one of {BUILTIN_SOURCES}.")
    name = os.fspath(source)
    if name in ("toy-actions", "toy_actions"):
        return _toy_actions_cached(**(toy_kwargs or {}))
    if name == "ucf12":
        return load_source(_shared("ucf12") / "videos")
    if name == "real_clips":
        return _real_clips(_shared("real_clips"))
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "videos").is_dir() and _has_videos(path / "videos"):
            path = path / "videos"
        if _has_videos(path):
            return load_dataset("videofolder", data_dir=str(path))
        return load_dataset(str(path), config, revision=revision)
    if path.suffix or name.startswith((".", "/", "~")):
        raise FileNotFoundError(f"Dataset folder '{name}' does not exist.")
    try:
        return load_dataset(name, config, revision=revision)
    except Exception as err:  # noqa: BLE001 - re-raised with the fix
        raise ValueError(
            f"Unknown dataset '{name}': not a built-in name {BUILTIN_SOURCES}, not an existing local folder, and "
            f"load_dataset('{name}') failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}). Pass a local "
            f"folder (videofolder layout split/label/file.mp4 or a saved dataset) or check the Hub id."
        ) from err


def _pick_split(data: DatasetDict | Dataset, split: str | None) -> Dataset:
    if isinstance(data, Dataset):
        own = str(data.split) if data.split is not None else None
        if split is None or split == own or (own is None and split == "train"):
            return data
        raise ValueError(f"split='{split}' was asked of a single datasets.Dataset (its split: {own}), which has no "
                         f"other splits. Pass a DatasetDict holding a '{split}' split, or pass the {split} rows "
                         f"themselves as a Dataset with split=None.")
    if split is None:
        raise ValueError(f"split=None needs a single Dataset; this source has splits {list(data)}.")
    if split in data:
        return data[split]
    aliases = {"test": ("validation", "val"), "validation": ("val",), "train": ()}  # never test for validation
    for alias in aliases.get(split, ()):
        if alias in data:
            return data[alias]
    raise ValueError(f"Split '{split}' not found; available splits: {list(data)}. Pass split=<one of those>.")


def _find_column(ds: Dataset, candidates: tuple[str, ...], what: str, given: str | None) -> str:
    if given is not None:
        if given not in ds.column_names:
            raise ValueError(f"{what} column '{given}' not found; columns are {ds.column_names}.")
        return given
    for col in candidates:
        if col in ds.column_names:
            return col
    if what == "video":
        for col, feat in ds.features.items():
            if isinstance(feat, Video):
                return col
    raise ValueError(f"No {what} column found (looked for {list(candidates)}); columns are {ds.column_names}. "
                     f"Pass {what}_column=<name>.")


def default_video_shape(dataset: str, frame_size: int | None, num_frames: int | None,
                        toy_frames: int = 8) -> tuple[int, int]:
    """toy-actions defaults to 32×32 (its native size) with `toy_frames` frames, everything else to VDSD's
    112×112×16."""
    toy = str(dataset) in ("toy-actions", "toy_actions")
    return (32 if toy else 112) if frame_size is None else frame_size, (toy_frames if toy else 16) \
        if num_frames is None else num_frames


def source_name(source, revision: str | None = None) -> str:
    """How a source is named in cards: a Hub id (with `@revision`), a local folder's name, or the type's name."""
    if not isinstance(source, (str, os.PathLike)):
        return type(source).__name__
    name = os.fspath(source)
    if Path(name).expanduser().exists():
        return Path(name).expanduser().resolve().name
    return f"{name}@{revision}" if revision else name


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def resolved_revision(dataset: Dataset) -> str | None:
    """The Hub commit a split loaded from the Hub was read at: `load_dataset` caches a Hub dataset under
    `.../<org>___<name>/<config>/<version>/<commit sha>/`; `None` for other sources."""
    for info in getattr(dataset, "cache_files", None) or []:
        for part in reversed(Path(info.get("filename", "")).parts[:-1]):
            if _COMMIT.match(part):
                return part
    return None


# where a run kept its checkpoints and caches on this machine: they never change the set, and stay out of the card
# and distillation.json (both are shared); `shareable` also shortens any other absolute path to its name
LOCAL_FIELDS = ("checkpoint_dir", "resume_from_checkpoint", "teacher_cache_dir")
_ROOT = Path(__file__).resolve().parents[2]
_REPO = _ROOT if (_ROOT / "recipes").is_dir() else None  # the checkout's root when run from one (recipes/ beside it)


def shareable(value):
    """`value` (config, stats, a benchmark record) as a shared card may show it: `LOCAL_FIELDS` keys dropped, absolute
    paths (a local teacher, a cached model, a skipped video, a dataset folder) replaced by their path inside this
    repository (`recipes/...`) or else their last component, which names them without the machine's folders."""
    if isinstance(value, dict):
        return {k: shareable(v) for k, v in value.items() if k not in LOCAL_FIELDS}
    if isinstance(value, (list, tuple)):
        return [shareable(v) for v in value]
    if not (isinstance(value, str) and os.path.isabs(value)):
        return value
    path = Path(value)
    return path.relative_to(_REPO).as_posix() if _REPO and path.is_relative_to(_REPO) else path.name


def shareable_command(command: str | None) -> str | None:
    """A command line as a shared card may show it: each absolute path argument (`--dataset /data/ucf`,
    `--x=/a/b`, paths inside a JSON argument such as `--overrides`) made `shareable`; the rest stays as typed."""
    if not command:
        return command
    try:
        parts = shlex.split(command)
    except ValueError:  # not a shell line: leave it
        return command

    def short(token: str) -> str:
        if token.startswith("--") and "=" in token:
            flag, value = token.split("=", 1)
            return f"{flag}={short(value)}"
        if token[:1] in "{[":
            try:
                return json.dumps(shareable(json.loads(token)))
            except ValueError:
                return token
        return shareable(token)

    return shlex.join(short(t) for t in parts)
