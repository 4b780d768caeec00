"""Write a `BuiltDataset` as a Hub-ready dataset repo folder, atomically.

```
<output_dir>/
  README.md                          # DatasetCard: source, official split, licence, counts per split and class
  prepared_dataset.json              # marker + facts (name, split, counts, full missing list); enables --overwrite
  data/train-00000-of-0000N.parquet  # video ({"bytes", "path"} Video feature), label (ClassLabel), clip_id
  data/test-00000-of-0000M.parquet
```
By default the video files are embedded byte for byte (nothing is decoded or re-encoded), so the folder is
self-contained: `load_dataset(folder)`, `hf_vdd.load_video_dataset(folder, split)` and `push_folder(folder, ...)`
all work. With `embed=False` the `video` column holds the absolute paths instead (a local, non-shareable index).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, Features, Value, Video
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from huggingface_hub import DatasetCardData

from ...utils import atomic_folder, check_output_dir
from .common import SPLITS, BuiltDataset

MARKER_FILE = "prepared_dataset.json"
MAX_SHARD_BYTES = 500 * 2**20
CARD_MISSING_LIMIT = 200


def _shards(paths: list[str], max_bytes: int) -> list[tuple[int, int]]:
    """Contiguous `(start, stop)` row ranges whose files add up to at most `max_bytes` (one file at least)."""
    ranges, start, size = [], 0, 0
    for i, path in enumerate(paths):
        n = os.path.getsize(path)
        if i > start and size + n > max_bytes:
            ranges.append((start, i))
            start, size = i, 0
        size += n
    ranges.append((start, len(paths)))
    return ranges


def _write_split(ds: Dataset, split: str, data_dir: Path, embed: bool, max_shard_bytes: int) -> None:
    labels = ds.features["label"]
    if not embed:
        ds.to_parquet(str(data_dir / f"{split}-00000-of-00001.parquet"))
        return
    features = Features({"video": Video(), "label": labels, "clip_id": Value("string")})
    videos = ds["video"]
    ranges = _shards(videos, max_shard_bytes)
    for k, (start, stop) in enumerate(ranges):
        rows = ds.select(range(start, stop))
        blobs = [Path(p).read_bytes() for p in videos[start:stop]]
        names = [Path(p).name for p in videos[start:stop]]
        video = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), pa.array(names, pa.string())],
                                           names=["bytes", "path"])
        table = pa.table({"video": video, "label": pa.array(rows["label"], pa.int64()),
                          "clip_id": pa.array(rows["clip_id"], pa.string())})
        Dataset(table).cast(features).to_parquet(str(data_dir / f"{split}-{k:05d}-of-{len(ranges):05d}.parquet"))


def _card(built: BuiltDataset, license: str | None, embedded: bool, repo_id: str | None):
    from ...hub import render_dataset_card

    source = built.source
    license_id = license or source.license
    note = source.license_note if license is None else f"Licence set by whoever prepared this folder: `{license}`. " \
        f"Original terms: {source.license_note}"
    extra = {"license_name": f"{source.name}-license", "license_link": source.homepage} \
        if license_id == "other" else {}
    total = sum(built.counts().values())
    size = next(tag for limit, tag in ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"),
                                       (float("inf"), "n>1M")) if total < limit)
    card_data = DatasetCardData(
        license=license_id, pretty_name=source.pretty_name, task_categories=["video-classification"],
        tags=["hf_vdd", "video", "action-recognition", source.name], size_categories=[size], **extra)
    counts = built.class_counts()
    missing = built.missing
    listed = [f"{s}: {clip}" for s in SPLITS for clip in missing[s]]
    names = built.class_names
    summary = f"{len(missing['classes'])} of {len(names)} classes had no clip; {len(missing['train'])} train and " \
        f"{len(missing['test'])} test clips listed by the split files were not found"
    return render_dataset_card(
        card_data, template="prepared_dataset_card.md", pretty_name=source.pretty_name, name=source.name,
        homepage=source.homepage, source_name=built.source_name, split=built.split,
        split_label=source.name in ("ucf101", "miniucf", "hmdb51"), num_classes=len(names), total=total,
        partial=built.is_partial, missing=missing, missing_summary=summary, missing_total=len(listed),
        shown_missing=listed[:CARD_MISSING_LIMIT], embedded=embedded, repo_id=repo_id or f"<org>/{source.name}",
        license_note=note, counts=built.counts(),
        class_rows=[(i, name, counts["train"][name], counts["test"][name]) for i, name in enumerate(names)])


def save_prepared(built: BuiltDataset, output_dir: str | os.PathLike, embed: bool = True, overwrite: bool = False,
                  license: str | None = None, repo_id: str | None = None,
                  max_shard_bytes: int = MAX_SHARD_BYTES) -> Path:
    """Write `built` to `output_dir` (layout in the module docstring) and return the folder.

    Reads every clip file once when `embed=True` (bytes copied as they are, never decoded). The folder is written
    to a temporary sibling and moved into place when complete. An existing non-empty `output_dir` is an error
    unless `overwrite=True` and it holds `prepared_dataset.json` (i.e. this function wrote it).
    `license` overrides the card's licence id; `repo_id` only fills the card's usage snippet.
    """
    from ...version import __version__

    target = check_output_dir(output_dir, overwrite=overwrite, marker=MARKER_FILE)
    if embed and built.uses_frame_folders:
        raise ValueError(f"{built.source.pretty_name} was found as JPEG frame folders (jpegs_112/), which cannot be "
                         f"embedded as video files. Pass --no_embed (the parquet then holds absolute frame-folder "
                         f"paths, usable on this machine only) or point --root at the original videos.")
    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be > 0, got {max_shard_bytes}.")
    marker = {"format": "hf_vdd prepared dataset", "hf_vdd_version": __version__, "name": built.name,
              "split": built.split, "source": built.source_name, "license": license or built.source.license,
              "embedded": embed, "counts": built.counts(), "class_names": built.class_names,
              "class_counts": built.class_counts(), "missing": built.missing}
    quiet = not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        with atomic_folder(target, marker=MARKER_FILE) as tmp:
            (tmp / "data").mkdir()
            for split in SPLITS:
                _write_split(built.dataset[split], split, tmp / "data", embed, max_shard_bytes)
            _card(built, license, embed, repo_id).save(tmp / "README.md")
            (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    finally:
        if quiet:
            enable_progress_bars()
    return target


__all__ = ["MARKER_FILE", "save_prepared"]
