"""Dataset builders: the papers' datasets (MiniUCF, UCF101, HMDB51, Kinetics-400, SSv2) from official downloads.

```python
from hf_vdd.data import build_dataset, save_prepared
built = build_dataset("miniucf", "/data/UCF101")          # BuiltDataset: .dataset (DatasetDict), .missing
save_prepared(built, "data/miniucf")                        # Hub-ready folder: README.md + data/*.parquet
load_video_dataset("data/miniucf", "train")                 # or push the folder and load it by repo id
```
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .common import BuiltDataset, DatasetSource
from .hmdb import build_hmdb51
from .kinetics import build_kinetics400
from .ssv2 import build_ssv2
from .ucf import MINIUCF_CLASSES, build_miniucf, build_ucf101
from .writer import MARKER_FILE, save_prepared

BUILDERS: dict[str, Callable[..., BuiltDataset]] = {
    "miniucf": build_miniucf,
    "ucf101": build_ucf101,
    "hmdb51": build_hmdb51,
    "kinetics400": build_kinetics400,
    "ssv2": build_ssv2,
}


def build_dataset(name: str, root: str | Path, split: int = 1, allow_partial: bool = False) -> BuiltDataset:
    """Build `name` (one of `BUILDERS`) from the official download under `root`; see each `build_<name>`."""
    if name not in BUILDERS:
        raise ValueError(f"Unknown dataset '{name}': choose one of {', '.join(BUILDERS)}.")
    return BUILDERS[name](root, split=split, allow_partial=allow_partial)


__all__ = [
    "BUILDERS",
    "MARKER_FILE",
    "MINIUCF_CLASSES",
    "BuiltDataset",
    "DatasetSource",
    "build_dataset",
    "build_hmdb51",
    "build_kinetics400",
    "build_miniucf",
    "build_ssv2",
    "build_ucf101",
    "save_prepared",
]
