"""Something-Something v2 from the official label files and `.webm` videos.

Reads, under `root`:

```
root/
  something-something-v2-labels.json        # {"Putting something on a surface": "97", ...}  (or labels.json)
  something-something-v2-train.json         # [{"id": "78687", "label": ..., "template": ..., "placeholders": ...}]
  something-something-v2-validation.json    # (or train.json / validation.json; also inside labels/)
  20bn-something-something-v2/<id>.webm     # (or videos/<id>.webm, or <id>.webm directly under root)
```
Class order = the indices of labels.json; an entry's class is its `template` with `[` and `]` removed. The
validation list gives the `test` split (the official test list has no labels).
"""

from __future__ import annotations

import json
from pathlib import Path

from .common import BuiltDataset, Clip, DatasetSource, assemble, check_split_number, find_first, require_dir

SSV2 = DatasetSource(
    "ssv2", "Something-Something v2", "https://developer.qualcomm.com/software/ai-datasets/something-something",
    "other", "Something-Something v2 is licensed by Qualcomm (formerly TwentyBN) under its own terms (free for "
    "academic research, no redistribution without permission); read them before sharing this folder.",
    "labels.json + something-something-v2-{train,validation}.json and 20bn-something-something-v2/<id>.webm")
_FIX = "Extract the Something-Something v2 label archive into --root."


def _json(root: Path, names: tuple[str, ...]):
    places = [folder / name for folder in (root, root / "labels") for name in names]
    path = find_first(places, f"Something-Something v2 file {names[0]}", _FIX)
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}). {_FIX}") from err


def _class_names(path: Path, labels) -> list[str]:
    try:
        order = sorted((int(index), name) for name, index in labels.items())
    except (AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{path} must map each template to its index, e.g. {{\"Putting something on a surface\": "
                         f"\"97\"}}. {_FIX}") from err
    if [i for i, _ in order] != list(range(len(order))):
        raise ValueError(f"{path}: indices must be 0..{len(order) - 1}, each once. {_FIX}")
    return [name for _, name in order]


def _entries(path: Path, entries, video_dirs: list[Path]) -> list[Clip]:
    if not isinstance(entries, list):
        raise ValueError(f"{path} must hold a list of {{\"id\", \"label\", \"template\", \"placeholders\"}}. {_FIX}")
    clips = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise ValueError(f"{path}, entry {n}: needs 'id' and 'template', got {str(entry)[:120]}. {_FIX}")
        clip_id = str(entry["id"])
        label = entry["template"].replace("[", "").replace("]", "")
        clips.append(Clip(clip_id, label, tuple(d / f"{clip_id}.webm" for d in video_dirs)))
    return clips


def build_ssv2(root: str | Path, split: int = 1, allow_partial: bool = False) -> BuiltDataset:
    """Something-Something v2: 174 classes, 168,913 train / 24,777 validation (→ `test`) clips.

    Reads the label JSON files and checks that each listed clip exists as `<id>.webm`; nothing is decoded.
    Missing clips raise `FileNotFoundError` unless `allow_partial=True`.
    """
    check_split_number("Something-Something v2", split, (1,))
    root = require_dir(Path(root).expanduser(), "Something-Something v2 root", "Pass --root <folder holding the "
                       "label JSON files and 20bn-something-something-v2/>.")
    labels_path, labels = _json(root, ("something-something-v2-labels.json", "labels.json"))
    train_path, train = _json(root, ("something-something-v2-train.json", "train.json"))
    test_path, test = _json(root, ("something-something-v2-validation.json", "validation.json"))
    video_dirs = [root / "20bn-something-something-v2", root / "videos", root]
    clips = {"train": _entries(train_path, train, video_dirs), "test": _entries(test_path, test, video_dirs)}
    return assemble(SSV2, root, split, _class_names(labels_path, labels), clips, allow_partial)
