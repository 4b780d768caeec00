"""HMDB51 (splits 1-3) from the official download.

Reads, under `root`:

```
root/
  <class>/<clip>.avi                                   # the videos (hmdb51_org/<class>/<clip>.avi also works)
  testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt   # "<clip>.avi <id>": 1 = train, 2 = test, 0 = unused
```
Classes are the split files' class names, sorted alphabetically.
"""

from __future__ import annotations

from pathlib import Path

from .common import (
    BuiltDataset,
    Clip,
    DatasetSource,
    assemble,
    check_split_number,
    find_first,
    read_lines,
    require_dir,
)

HMDB51 = DatasetSource(
    "hmdb51", "HMDB51", "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/", "cc-by-4.0",
    "HMDB51 is distributed by the Serre lab (Brown University) under the Creative Commons Attribution 4.0 licence.",
    "<class>/<clip>.avi and testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt")
_SPLIT_IDS = {"1": "train", "2": "test"}


def build_hmdb51(root: str | Path, split: int = 1, allow_partial: bool = False) -> BuiltDataset:
    """HMDB51 with official split `split` (1, 2 or 3): 3,570 train / 1,530 test clips over 51 classes.

    Reads `root/testTrainMulti_7030_splits/<class>_test_split<split>.txt` and checks that each train (id 1) and
    test (id 2) clip exists as `root/<class>/<clip>.avi` (or `root/hmdb51_org/<class>/<clip>.avi`). Nothing is
    decoded. Missing clips raise `FileNotFoundError` unless `allow_partial=True`.
    """
    check_split_number("HMDB51", split, (1, 2, 3))
    root = require_dir(Path(root).expanduser(), "HMDB51 root", "Pass --root <folder holding the class folders and "
                       "testTrainMulti_7030_splits/>.")
    fix = "Extract test_train_splits.rar into --root."
    split_dir = "testTrainMulti_7030_splits"
    lists = find_first([root / split_dir, root / "test_train_splits" / split_dir], "HMDB51 split folder", fix,
                       want_dir=True)
    suffix = f"_test_split{split}.txt"
    split_files = sorted(p for p in lists.iterdir() if p.name.endswith(suffix))
    if not split_files:
        raise FileNotFoundError(f"No *{suffix} file in {lists}. {fix}")
    class_names = sorted(p.name[: -len(suffix)] for p in split_files)
    clips: dict[str, list[Clip]] = {"train": [], "test": []}
    for path in split_files:
        label = path.name[: -len(suffix)]
        for n, line in enumerate(read_lines(path), 1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}, line {n}: expected '<clip>.avi <0|1|2>', got '{line}'. {fix}")
            if parts[1] in _SPLIT_IDS:
                candidates = (root / label / parts[0], root / "hmdb51_org" / label / parts[0])
                clips[_SPLIT_IDS[parts[1]]].append(Clip(Path(parts[0]).stem, label, candidates))
    return assemble(HMDB51, root, split, class_names, clips, allow_partial)
