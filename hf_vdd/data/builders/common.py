"""What every dataset builder shares: the result type, file checks, and the missing-clip report.

A builder reads an official download (videos + official split files) and returns a `BuiltDataset` whose
`dataset` is a `datasets.DatasetDict` with `train` and `test` splits and the columns

- `video`: `Value("string")` — the clip's file path (or, for VDSD's `jpegs_112/v_<clip>/` layout, the path of
  its folder of JPEG frames; `load_video_dataset` reads both);
- `label`: `ClassLabel` with the official class names in the official order;
- `clip_id`: `Value("string")` — the official clip name without extension (`v_ApplyEyeMakeup_g08_c01`).

Builders only check that files exist; they never open or decode a video.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

SPLITS = ("train", "test")
LIST_LIMIT = 10


@dataclass
class DatasetSource:
    """Facts about a dataset family, for the card: name, homepage and licence."""

    name: str
    pretty_name: str
    homepage: str
    license: str
    license_note: str
    layout: str


@dataclass
class BuiltDataset:
    """A prepared dataset: the `DatasetDict` plus where it came from and what was missing.

    `missing` is `{"classes": [...], "train": [clip ids], "test": [clip ids]}`; all lists are empty unless the
    builder ran with `allow_partial=True` and some listed classes/clips were not found under the root.
    `source_name` is the root folder's name (never the machine's absolute path, which stays out of cards).
    """

    dataset: DatasetDict
    source: DatasetSource
    split: int
    source_name: str
    missing: dict[str, list[str]] = field(default_factory=lambda: {"classes": [], "train": [], "test": []})
    uses_frame_folders: bool = False

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset["train"].features["label"].names)

    @property
    def is_partial(self) -> bool:
        return any(self.missing.values())

    def counts(self) -> dict[str, int]:
        """Clips per split, e.g. `{"train": 9537, "test": 3783}`."""
        return {split: len(ds) for split, ds in self.dataset.items()}

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Clips per split and class (every class listed, zero when it has no clip)."""
        names = self.class_names
        out = {}
        for split, ds in self.dataset.items():
            counter = Counter(ds["label"])
            out[split] = {name: counter.get(i, 0) for i, name in enumerate(names)}
        return out


@dataclass
class Clip:
    """One clip listed by an official split file: its id, class name and where it may be on disk.

    The first existing path of `candidates` (video files) wins; else `frames`, a folder of JPEG frames.
    """

    clip_id: str
    label: str
    candidates: tuple[Path, ...]
    frames: Path | None = None


def require_dir(path: Path, what: str, fix: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} does not exist or is not a folder. {fix}")
    return path


def require_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} does not exist. {fix}")
    return path


def find_first(candidates: list[Path], what: str, fix: str, want_dir: bool = False) -> Path:
    """The first existing path among `candidates`, else a `FileNotFoundError` listing every place looked at."""
    for path in candidates:
        if path.is_dir() if want_dir else path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"{what} not found (looked for {looked}). {fix}")


def check_split_number(name: str, split: int, allowed: tuple[int, ...]) -> int:
    if split not in allowed:
        raise ValueError(f"{name} has official splits {list(allowed)}, got split={split}. "
                         f"Pass --split {' or '.join(str(s) for s in allowed)}.")
    return split


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines (the UCF101 lists have Windows line endings)."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


class DirIndex:
    """`exists(path)` answered from one listing per folder (fast on folders with 10^5 files)."""

    def __init__(self):
        self._listings: dict[Path, set[str]] = {}

    def exists(self, path: Path) -> bool:
        parent = path.parent
        if parent not in self._listings:
            try:
                self._listings[parent] = set(os.listdir(parent))
            except (FileNotFoundError, NotADirectoryError):
                self._listings[parent] = set()
        return path.name in self._listings[parent]


def _preview(items: list[str]) -> str:
    shown = ", ".join(items[:LIST_LIMIT])
    return shown + (f", ... ({len(items) - LIST_LIMIT} more)" if len(items) > LIST_LIMIT else "")


def assemble(source: DatasetSource, root: Path, split: int, class_names: list[str],
             clips: dict[str, list[Clip]], allow_partial: bool) -> BuiltDataset:
    """Resolve every listed clip on disk and build the `DatasetDict` (or raise, naming what is missing).

    A clip resolves to its first existing candidate path; a class is missing when none of its clips resolves
    (or no split file lists any). Without `allow_partial` anything missing is a `FileNotFoundError` that names
    the first classes/clips and the fix; with it, the build keeps what exists and records the rest.
    """
    index = DirIndex()
    index_of = {name: i for i, name in enumerate(class_names)}
    columns = {split_name: {"video": [], "label": [], "clip_id": []} for split_name in SPLITS}
    missing: dict[str, list[str]] = {"classes": [], "train": [], "test": []}
    present: set[str] = set()
    frame_folders = False
    for split_name in SPLITS:
        for clip in clips[split_name]:
            if clip.label not in index_of:
                raise ValueError(f"{source.pretty_name}: clip '{clip.clip_id}' of the {split_name} list has class "
                                 f"'{clip.label}', which is not one of the {len(class_names)} official classes. "
                                 f"The split files under {root.name}/ look inconsistent: re-extract them.")
            found = next((p for p in clip.candidates if index.exists(p)), None)
            if found is None and clip.frames is not None and index.exists(clip.frames):
                found, frame_folders = clip.frames, True
            if found is None:
                missing[split_name].append(clip.clip_id)
                continue
            present.add(clip.label)
            col = columns[split_name]
            col["video"].append(str(found))
            col["label"].append(index_of[clip.label])
            col["clip_id"].append(clip.clip_id)
    missing["classes"] = [name for name in class_names if name not in present]
    total = {s: len(clips[s]) for s in SPLITS}
    if any(missing.values()) and not allow_partial:
        parts = []
        if missing["classes"]:
            parts.append(f"{len(missing['classes'])} of {len(class_names)} classes have no clip: "
                         f"{_preview(missing['classes'])}")
        for s in SPLITS:
            if missing[s]:
                parts.append(f"{len(missing[s])} of {total[s]} {s} clips are missing: {_preview(missing[s])}")
        raise FileNotFoundError(
            f"{source.pretty_name} split {split} under {root}: " + "; ".join(parts)
            + f". Check --root (expected layout: {source.layout}) or pass --allow_partial to build what exists "
              f"and record what is missing.")
    features = Features({"video": Value("string"), "label": ClassLabel(names=class_names),
                         "clip_id": Value("string")})
    for s in SPLITS:
        if not columns[s]["video"]:
            raise FileNotFoundError(f"{source.pretty_name} split {split}: none of the {total[s]} {s} clips listed "
                                    f"by the split files exists under {root}. Check --root (expected layout: "
                                    f"{source.layout}).")
    dataset = DatasetDict({s: Dataset.from_dict(columns[s], features=features) for s in SPLITS})
    return BuiltDataset(dataset=dataset, source=source, split=split, source_name=root.name, missing=missing,
                        uses_frame_folders=frame_folders)
