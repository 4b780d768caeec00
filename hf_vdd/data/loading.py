"""Source data contract: `load_video_dataset(source, split, ...)` → `VideoClassificationSet`.

A source is a Hub dataset id or local folder (`load_dataset` semantics, including the `videofolder` layout
`split/label/file.mp4`), a `datasets.Dataset`/`DatasetDict`, or a built-in name:

- `"toy-actions"` — the embedded procedural benchmark (`hf_vdd.data.toy_actions`);
- `"ucf12"` — `$HF_VDD_SHARED_DATA/ucf12/videos` (11 UCF101 classes, split 1);
- `"real_clips"` — `$HF_VDD_SHARED_DATA/real_clips` (110 original UCF101 .avi files, split 1 from the manifest).

The video column may hold a `datasets.Video` feature, file paths, or `(T, H, W, C)` uint8 arrays. Items are
decoded lazily with PyAV and returned as `(T, C, H, W)` float tensors in [0, 1] plus an int label. Loading reads
no video (only `skip_corrupt=True` probes each file once); a sampled clip decodes only up to its last frame and
resizes only its own frames, so memory stays constant unless `cache_size` or `preload()` ask for more.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from datasets import ClassLabel, Dataset, Video
from torch.utils.data import DataLoader

from ..config_fields import check_values
from ..utils import get_logger, progress
from .decoding import (
    CorruptVideoError,
    decode_frames,
    decode_video,
    probe_video,
    resize_crop,
    sample_indices,
    to_float_frames,
)
from .sources import (  # noqa: F401 - re-exported: hf_vdd.data.loading.load_source etc. stay importable
    BUILTIN_SOURCES,
    VIDEO_EXTENSIONS,
    _find_column,
    _pick_split,
    default_video_shape,
    load_source,
    resolved_revision,
    source_name,
)

logger = get_logger(__name__)


class VideoClassificationSet(torch.utils.data.Dataset):
    """A torch-ready, lazily decoded view of a video classification split.

    `self[i]` → `(video, label)`: `video` is `(num_frames, 3, frame_size, frame_size)` float in [0, 1]; frames
    are sampled `interval` apart, from a random start when `train=True` and from the centred window otherwise.
    With `static=True` one frame (random for training, the middle one otherwise) is repeated `num_frames`
    times. Works in a `DataLoader` with workers (each worker decodes its own items).

    Memory: a sampled clip decodes its video only up to the last frame it uses and resizes only its own frames
    (`decode_frames`); the result is the same, pixel for pixel and draw for draw, as sampling the whole decoded clip.
    `cache_size > 0` keeps that many resized whole clips `(L, 3, S, S)` uint8 (least recently used dropped; one
    cache per process, shared by `subset`/`with_options` views); `preload()` keeps every clip.
    """

    def __init__(self, dataset: Dataset, num_frames: int = 16, frame_size: int = 112, interval: int = 4,
                 train: bool = False, static: bool = False, video_column: str | None = None,
                 label_column: str | None = None, skip_corrupt: bool = False, name: str = "dataset",
                 cache_size: int = 0):
        check_values(num_frames=num_frames, frame_size=frame_size, interval=interval, cache_size=cache_size)
        self.name = name
        self.video_column = _find_column(dataset, ("video", "videos", "path", "file", "file_name"), "video",
                                         video_column)
        self.label_column = _find_column(dataset, ("label", "labels"), "label", label_column)
        feature = dataset.features[self.video_column]
        if isinstance(feature, Video):
            dataset = dataset.cast_column(self.video_column, Video(decode=False))
            self.kind = "video"
        elif getattr(feature, "dtype", None) == "string":
            self.kind = "path"
        else:
            self.kind = "array"
        label_feature = dataset.features[self.label_column]
        if not isinstance(label_feature, ClassLabel):
            if getattr(label_feature, "dtype", None) == "string":
                dataset = dataset.class_encode_column(self.label_column)
                label_feature = dataset.features[self.label_column]
            else:
                raise ValueError(f"Label column '{self.label_column}' must be a ClassLabel (class names are needed "
                                 f"for cards), got {label_feature}. Cast it with "
                                 f"dataset.cast_column('{self.label_column}', ClassLabel(names=[...])).")
        self.class_names: list[str] = list(label_feature.names)
        self.license: str | None = getattr(dataset.info, "license", None) or None  # inherited by distilled cards
        self.hf = dataset
        self._arrays = dataset.with_format("numpy", columns=[self.video_column], dtype=np.uint8) \
            if self.kind == "array" else None
        self._arrow = dataset.with_format("arrow", columns=[self.video_column]) if self.kind == "array" else None
        self.num_frames, self.frame_size, self.interval = num_frames, frame_size, interval
        self.train, self.static = train, static
        self.labels = np.asarray(dataset[self.label_column], dtype=np.int64)
        self._index = np.arange(len(dataset))
        self._cache: list[torch.Tensor] | None = None  # preload(): every clip, by position
        self.cache_size = cache_size
        self._recent: OrderedDict[int, torch.Tensor] = OrderedDict()  # cache_size: resized whole clips, by row
        self.skipped: list[str] = []
        self._warned_short: set[int] = set()  # rows already reported as shorter than num_frames (shared by copies)
        if len(dataset) == 0:
            raise ValueError(f"{name} is empty.")
        if self.kind == "array":
            self._check_array(np.asarray(self._raw(0)), 0)
        if skip_corrupt:
            self._drop_corrupt()

    # ---- raw access -------------------------------------------------------------------------------------
    def _raw(self, i: int):
        source = self._arrays if self._arrays is not None else self.hf
        return source[int(self._index[i])][self.video_column]

    def _check_array(self, arr: np.ndarray, i: int) -> None:
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.shape[0] == 0:
            raise ValueError(f"Row {i} of column '{self.video_column}' has shape {arr.shape}; video arrays must be "
                             f"(T, H, W, C) uint8 with T >= 1 and C in (1, 3). Transpose (T, C, H, W) arrays with "
                             f"np.transpose(x, (0, 2, 3, 1)).")

    def describe(self, i: int) -> str:
        raw = self._raw(i)
        if self.kind == "path":
            return str(raw)
        if self.kind == "video":
            return str(raw.get("path") or "<bytes>")
        return f"{self.name}[{int(self._index[i])}]"

    def _source(self, i: int):
        raw = self._raw(i)
        return raw if self.kind == "path" else (raw["bytes"] if raw.get("bytes") else raw["path"])

    def _array(self, i: int) -> np.ndarray:
        """Row `i` of an array column as `(L, H, W, C)`, without copying when Arrow holds it as nested uint8 lists."""
        try:
            storage = self._arrow[int(self._index[i])].column(0).chunk(0)
            storage = getattr(storage, "storage", storage)  # datasets' ArrayND extension arrays wrap nested lists
            shape = [len(storage.flatten())]
            values = storage.flatten()
            while hasattr(values, "flatten"):
                lengths = values.value_lengths().to_numpy(zero_copy_only=False)
                if len(lengths) == 0 or (lengths != lengths[0]).any():
                    raise ValueError("ragged")
                shape.append(int(lengths[0]))
                values = values.flatten()
            arr = values.to_numpy(zero_copy_only=True).reshape(shape) if values.type == "uint8" else None
        except (pa.ArrowException, ValueError, TypeError, AttributeError, IndexError):
            arr = None  # another layout (ragged, nulls, other dtype): read the row through datasets' numpy format
        if arr is None:
            arr = np.asarray(self._raw(i))
        self._check_array(arr, i)
        return arr

    def decode(self, i: int) -> np.ndarray:
        """The whole clip `i` as `(L, H, W, C)` uint8, at its stored resolution."""
        if self.kind != "array":
            return decode_video(self._source(i))
        arr = np.asarray(self._raw(i))
        self._check_array(arr, i)
        return arr.astype(np.uint8, copy=False)

    def _resize(self, frames: np.ndarray, chunk: int = 16) -> torch.Tensor:
        """`(K, H, W, C)` uint8 frames → `(K, 3, S, S)` uint8 at `frame_size`, `chunk` frames at a time (each frame is
        resized on its own, so the result does not depend on which frames are resized together)."""
        parts = [resize_crop(to_float_frames(frames[j:j + chunk]), self.frame_size)
                 for j in range(0, len(frames), chunk)]
        return (torch.cat(parts) * 255).round().clamp(0, 255).to(torch.uint8)

    def full_clip(self, i: int) -> torch.Tensor:
        """Clip `i` resized/cropped to `frame_size`: `(L, 3, S, S)` uint8 (kept after `preload()`, or among the
        `cache_size` most recently used)."""
        if self._cache is not None:
            return self._cache[i]
        row = int(self._index[i])
        if row in self._recent:
            self._recent.move_to_end(row)
            return self._recent[row]
        frames = self._resize(self.decode(i))
        if self.cache_size > 0:
            self._recent[row] = frames
            while len(self._recent) > self.cache_size:
                self._recent.popitem(last=False)
        return frames

    def _sampled_frames(self, i: int, train: bool, generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
        """The `(num_frames, 3, S, S)` uint8 frames of a sample of clip `i` (decoding and resizing only those) and
        the clip's length."""
        state = generator.get_state() if generator is not None else torch.random.get_rng_state()
        calls = []

        def indices_for(length: int) -> np.ndarray:  # replays the same draws if the decoder asks again
            if calls and generator is not None:
                generator.set_state(state)
            elif calls:
                torch.random.set_rng_state(state)
            calls.append(length)
            return self._frame_indices(length, train, generator)

        if self.kind == "array":
            arr = self._array(i)
            wanted, where = np.unique(indices_for(len(arr)), return_inverse=True)
            frames, length = arr[wanted].astype(np.uint8, copy=False), len(arr)
        else:
            frames, where, length = decode_frames(self._source(i), indices_for)
        return self._resize(frames)[torch.as_tensor(where.reshape(-1))], length

    def _frame_indices(self, length: int, train: bool, generator: torch.Generator | None) -> np.ndarray:
        if self.static:
            j = int(torch.randint(0, length, (1,), generator=generator)) if train else length // 2
            return np.full(self.num_frames, j)
        return sample_indices(length, self.num_frames, self.interval, train=train, generator=generator)

    def _drop_corrupt(self) -> None:
        keep = []
        for i in range(len(self._index)):
            try:
                if self.kind == "array":
                    self._check_array(np.asarray(self._raw(i)), i)
                else:
                    probe_video(self._source(i))
                keep.append(i)
            except (CorruptVideoError, FileNotFoundError) as err:
                self.skipped.append(self.describe(i))
                logger.warning(f"skipping {self.describe(i)}: {str(err).split('. ')[0]}")
        if not keep:
            raise ValueError(f"Every video of {self.name} is corrupt or missing (first: {self.skipped[0]}).")
        if self.skipped:
            logger.warning(f"{self.name}: skipped {len(self.skipped)} of {len(self._index)} videos "
                           f"(skip_corrupt=True): {', '.join(self.skipped)}")
        self._index = self._index[keep]
        self.labels = self.labels[keep]

    # ---- torch Dataset API ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def clip(self, i: int, train: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sampled clip `i`: `(num_frames, 3, S, S)` float in [0, 1]. Frames are drawn from `generator` (the global
        generator when `None`); without a preload or cache, only the frames the sample uses are decoded."""
        return self.clip_uint8(i, train, generator).float() / 255.0

    def clip_uint8(self, i: int, train: bool | None = None, generator: torch.Generator | None = None,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """`clip` before its conversion: `(num_frames, 3, S, S)` uint8 (written into `out` when given)."""
        train = self.train if train is None else train
        try:
            if self._cache is not None or self.cache_size > 0:
                frames = self.full_clip(i)
                length = frames.shape[0]
                where = torch.as_tensor(self._frame_indices(length, train, generator))
                frames = frames[where] if out is None else torch.index_select(frames, 0, where, out=out)
            else:
                frames, length = self._sampled_frames(i, train, generator)
                frames = frames if out is None else out.copy_(frames)
        except CorruptVideoError as err:
            raise CorruptVideoError(f"{err} (item {i} of {self.name}; load with skip_corrupt=True to skip "
                                    f"unreadable videos)") from err
        if length < self.num_frames and int(self._index[i]) not in self._warned_short:
            self._warned_short.add(int(self._index[i]))
            logger.warning(f"{self.describe(i)} has {length} frames, fewer than num_frames={self.num_frames}: its "
                           f"frames are repeated to fill the clip.")
        return frames

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.clip(i), int(self.labels[i])

    # ---- helpers ----------------------------------------------------------------------------------------
    def with_options(self, **kwargs) -> VideoClassificationSet:
        """A shallow copy with other sampling options (`train`, `static`, `num_frames`, `interval`, `cache_size`);
        it shares the preload and the clip cache."""
        allowed = {"train", "static", "num_frames", "interval", "cache_size"}
        if set(kwargs) - allowed:
            raise ValueError(f"with_options accepts {sorted(allowed)}, got {sorted(kwargs)}.")
        new = copy.copy(self)
        for k, v in kwargs.items():
            setattr(new, k, v)
        return new

    def subset(self, indices) -> VideoClassificationSet:
        """A view on the given positions (keeps the preload and shares the clip cache)."""
        indices = np.asarray(indices, dtype=np.int64)
        new = copy.copy(self)
        new._index, new.labels = self._index[indices], self.labels[indices]
        if self._cache is not None:
            new._cache = [self._cache[i] for i in indices]
        return new

    @property
    def row_indices(self) -> np.ndarray:
        """Row index in the underlying `datasets.Dataset` of each item (after skipping/subsetting)."""
        return self._index

    def indices_per_class(self) -> dict[int, np.ndarray]:
        return {c: np.flatnonzero(self.labels == c) for c in range(self.num_classes)}

    def preload(self, num_workers: int = 0, show_progress: bool = True) -> VideoClassificationSet:
        """Decode and resize every clip once and keep it in memory (`(L, 3, S, S)` uint8 each; ucf12's train split
        at 112x112 holds ~3.6 GB); returns `self`. An explicit opt-in: sampling alone decodes only what it needs."""
        if self._cache is None:
            loader = DataLoader(_FullClips(self), batch_size=None, num_workers=num_workers)
            self._cache = list(progress(loader, total=len(self), desc=f"Decoding {self.name}",
                                    disable=not show_progress, leave=False))
        return self

    def stack(self, indices, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """`(len(indices), T, 3, S, S)` float batch of sampled clips (`clip`'s, drawn in order)."""
        return self.stack_uint8(indices, train=train, generator=generator).float() / 255.0

    def stack_uint8(self, indices, train: bool = False, generator: torch.Generator | None = None,
                    pin_memory: bool = False) -> torch.Tensor:
        """`stack` before its conversion (the same draws): `(len(indices), T, 3, S, S)` uint8, each clip gathered
        straight into one batch tensor (in page-locked memory with `pin_memory`, for an asynchronous copy to a
        GPU). `stack(...) == stack_uint8(...).float() / 255` exactly, on any device."""
        s = self.frame_size
        out = torch.empty((len(indices), self.num_frames, 3, s, s), dtype=torch.uint8, pin_memory=pin_memory)
        for j, i in enumerate(indices):
            self.clip_uint8(int(i), train=train, generator=generator, out=out[j])
        return out


class _FullClips(torch.utils.data.Dataset):
    def __init__(self, parent: VideoClassificationSet):
        self.parent = parent

    def __len__(self):
        return len(self.parent)

    def __getitem__(self, i):
        return self.parent._resize(self.parent.decode(i))


def load_video_dataset(source, split: str | None = "train", num_frames: int = 16, frame_size: int = 112,
                       interval: int = 4, train: bool | None = None, static: bool = False,
                       video_column: str | None = None, label_column: str | None = None,
                       skip_corrupt: bool = False, toy_kwargs: dict | None = None, config: str | None = None,
                       revision: str | None = None, cache_size: int = 0) -> VideoClassificationSet:
    """Load one split of a video classification source as a `VideoClassificationSet`.

    Args:
        source: Hub id, local folder, `datasets.Dataset`/`DatasetDict`, or "toy-actions" / "ucf12" / "real_clips".
        split: split name (`test` falls back to `validation`). A single `Dataset` is its own split: it answers
            `split=None`, its own `split` name, or "train" when it has none; any other name is an error.
        num_frames, interval: temporal sampling (VDSD: 16 frames, every 4th).
        frame_size: output side length (resize short side, centre crop).
        train: random temporal start; defaults to `split == "train"`.
        static: one frame repeated (the temporal-information check).
        skip_corrupt: probe every file up front; unreadable ones are skipped and listed in `.skipped`.
        toy_kwargs: arguments for `toy_actions(...)` when `source == "toy-actions"`.
        config, revision: the Hub dataset's configuration and revision (branch, tag or commit).
        video_column, label_column: the columns to read (default: found by name/feature).
        cache_size: keep this many resized whole clips in memory (least recently used dropped; 0: none, each sample
            decodes only its own frames).

    Nothing is decoded here (and no file is opened unless `skip_corrupt`).

    The set's `name` (recorded as the distilled set's `source`) is the Hub id with the commit it was read at
    (`<id>@<sha>`, or `@revision` as given when the cache does not tell), the folder's name for a local folder
    (never the machine's path), or the built-in name, followed by `:split`.
    """
    check_values(num_frames=num_frames, frame_size=frame_size, interval=interval, cache_size=cache_size)
    data = load_source(source, toy_kwargs=toy_kwargs, config=config, revision=revision)
    ds = _pick_split(data, split)
    hub_id = isinstance(source, str) and source not in BUILTIN_SOURCES + ("toy_actions",) \
        and not Path(source).expanduser().exists()
    name = source_name(source, (resolved_revision(ds) or revision) if hub_id else revision)
    return VideoClassificationSet(ds, num_frames=num_frames, frame_size=frame_size, interval=interval,
                                  train=(split in ("train", None)) if train is None else train, static=static,
                                  video_column=video_column, label_column=label_column,
                                  skip_corrupt=skip_corrupt, name=f"{name}:{split}", cache_size=cache_size)
