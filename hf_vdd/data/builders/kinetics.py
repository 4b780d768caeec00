"""Kinetics-400 from the official annotation CSVs and downloaded clips.

Reads, under `root`:

```
root/
  train.csv, validate.csv        # "label,youtube_id,time_start,time_end,split" (also annotations/ or kinetics400/)
  train/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4
  val/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4        # (or validate/, valid/, validation/)
```
The label folder may use the CSV label as is or with spaces replaced by underscores; clips directly under the split
folder (no label folder) are found too. train.csv gives the `train` split, validate.csv the `test` split. Classes
are sorted alphabetically.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .common import BuiltDataset, Clip, DatasetSource, assemble, check_split_number, find_first, require_dir

KINETICS400 = DatasetSource(
    "kinetics400", "Kinetics-400", "https://arxiv.org/abs/1705.06950", "cc-by-4.0",
    "The Kinetics-400 annotations are released by DeepMind under CC BY 4.0; the videos are YouTube videos that "
    "remain under their uploaders' terms (YouTube Terms of Service).",
    "train.csv + validate.csv and <split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4")
_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
_EXTENSIONS = (".mp4", ".mkv", ".webm")


def _csv(root: Path, names: tuple[str, ...]) -> Path:
    places = [folder / name for folder in (root, root / "annotations", root / "kinetics400") for name in names]
    return find_first(places, f"Kinetics-400 annotation file {names[0]}", "Download the Kinetics-400 annotations "
                      "(train.csv, validate.csv) into --root.")


def _read(path: Path, split_dirs: list[Path]) -> list[Clip]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        absent = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise ValueError(f"{path} has columns {reader.fieldnames}, missing {absent}. Expected the official "
                             f"Kinetics-400 CSV header 'label,youtube_id,time_start,time_end,split'.")
        rows = list(reader)
    clips = []
    for n, row in enumerate(rows, 2):
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError as err:
            raise ValueError(f"{path}, line {n}: time_start/time_end must be numbers, got '{row['time_start']}', "
                             f"'{row['time_end']}'.") from err
        label, clip_id = row["label"], f"{row['youtube_id']}_{start:06d}_{end:06d}"
        folders = dict.fromkeys((label, label.replace(" ", "_")))
        candidates = tuple(d / f / (clip_id + ext) for d in split_dirs for f in (*folders, "") for ext in _EXTENSIONS)
        clips.append(Clip(clip_id, label, candidates))
    return clips


def build_kinetics400(root: str | Path, split: int = 1, allow_partial: bool = False) -> BuiltDataset:
    """Kinetics-400: train.csv → `train`, validate.csv → `test` (its one official split), 400 classes sorted.

    Checks that each listed clip exists as `<split folder>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`; nothing
    is decoded. YouTube removals make some clips unavailable in every copy: pass `allow_partial=True` to build
    from what exists (the card lists what is missing).
    """
    check_split_number("Kinetics-400", split, (1,))
    root = require_dir(Path(root).expanduser(), "Kinetics-400 root", "Pass --root <folder holding the CSVs and "
                       "the train/ and val/ clip folders>.")
    train_csv = _csv(root, ("train.csv", "kinetics_400_train.csv"))
    test_csv = _csv(root, ("validate.csv", "val.csv", "kinetics_400_validate.csv", "kinetics_400_val.csv"))
    train_dirs = [root / "train", root / "videos" / "train"]
    test_dirs = [root / name for name in ("val", "validate", "valid", "validation")] + [root / "videos" / "val"]
    if not any(d.is_dir() for d in train_dirs + test_dirs):
        raise FileNotFoundError(f"No clip folder under {root} (looked for train/ and val/ (or validate/)). Put the "
                                f"downloaded clips there as <split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4.")
    clips = {"train": _read(train_csv, train_dirs), "test": _read(test_csv, test_dirs)}
    class_names = sorted({c.label for split_clips in clips.values() for c in split_clips})
    return assemble(KINETICS400, root, split, class_names, clips, allow_partial)
