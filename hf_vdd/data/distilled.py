"""The distilled-set format: `DistillationOutput`, `load_distilled`, `TensorVideoSet` and the mosaic tiles.

A distilled set is a Hub dataset repo folder::

    <output_dir>/
    ├── README.md                         # card: YAML metadata (task, tags, source, method, ipc, ...) + eval table
    ├── distillation.json                 # the same facts, machine-readable
    ├── preview.png                       # frames grid, one row per class
    ├── preview.gif                       # the same videos playing, one tile per class (the card shows it)
    └── data/train-00000-of-00001.parquet # one row per distilled instance

Rows: `video` `Array4D((None, C, H, W))` — uint8 pixels for selected/generated frames, or float16 in
*normalised* space (ImageNet mean/std, stated in the card) for optimised pixels; `label` `ClassLabel`;
`num_frames` (the row's stored temporal resolution); optionally `source_index`, `soft_label`.
`output.save(dir)` writes exactly what `output.push_to_hub(repo_id)` uploads, so `load_dataset(dir)` and
`load_dataset(repo_id)` return the same rows. `load_distilled(dir_or_id)` turns it back into training tensors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Array2D, Array4D, ClassLabel, Dataset, Features, Sequence, Value, load_dataset
from huggingface_hub import DatasetCardData, hf_hub_download
from torch.utils.data import Dataset as TorchDataset

from ..config_fields import check_values
from ..hub import render_dataset_card, save_frames_grid, save_preview_gif, with_temp_folder
from ..utils import HfVddError, atomic_folder, check_output_dir
from ..version import __version__
from .decoding import IMAGENET_MEAN, IMAGENET_STD, denormalize, interleave_repeat, normalize
from .sources import shareable, shareable_command

DATA_FILE = "data/train-00000-of-00001.parquet"
META_FILE = "distillation.json"


@dataclass
class DistillationOutput:
    """What every distiller returns.

    Attributes:
        videos: `(N, T, C, H, W)` tensor, or a list of `(T_i, C, H, W)` tensors (per-row temporal resolution);
            uint8 pixels, or float in pixel space ([0, 1] for real frames; optimised pixels may exceed it).
        labels: `(N,)` int64 class ids.
        class_names: the source's class names.
        method, ipc, source: what made it from what.
        soft_labels: optional `(N, K)` or per-region `(N, R, K)` probabilities.
        source_index: optional `(N,)` row index in the source split (selection methods).
        config: the distiller's settings; stats: timings and counters; eval_results: filled by evaluation.
    """

    videos: torch.Tensor | list[torch.Tensor]
    labels: torch.Tensor
    class_names: list[str]
    method: str
    ipc: int
    source: str = "unknown"
    frame_size: int | None = None
    num_frames: int | None = None
    seed: int | None = None
    soft_labels: torch.Tensor | None = None
    source_index: torch.Tensor | None = None
    config: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    eval_results: dict | None = None
    license: str | None = None
    command: str | None = None

    def __post_init__(self):
        self.source = shareable(str(self.source))  # a local folder by its name, never the machine's path
        self.labels = TensorVideoSet.class_indices(self.labels, len(self.class_names))
        if len(self.videos) != len(self.labels) or not len(self.labels):
            raise ValueError(f"{len(self.videos)} videos but {len(self.labels)} labels (a set needs at least one).")
        first = self.videos[0]
        shapes = {tuple(v.shape[1:]) for v in self.videos}
        if first.ndim != 4 or len(shapes) > 1 or any(v.ndim != 4 for v in self.videos):
            raise ValueError(f"Each distilled video must be (T, C, H, W) with one (C, H, W) for all, got "
                             f"{tuple(first.shape)} and frames {sorted(shapes)[:3]}.")
        self.frame_size = self.frame_size or int(first.shape[-1])
        self.num_frames = self.num_frames or max(int(v.shape[0]) for v in self.videos)

    # ---- views ------------------------------------------------------------------------------------------
    @property
    def is_uint8(self) -> bool:
        return self.videos[0].dtype == torch.uint8

    def features(self) -> Features:
        c, h, w = (int(s) for s in self.videos[0].shape[1:])
        feats = {"video": Array4D(shape=(None, c, h, w), dtype="uint8" if self.is_uint8 else "float16"),
                 "label": ClassLabel(names=list(self.class_names)), "num_frames": Value("int32")}
        if self.source_index is not None:
            feats["source_index"] = Value("int64")
        if self.soft_labels is not None:
            sl = self.soft_labels
            feats["soft_label"] = (Sequence(Value("float32")) if sl.ndim == 2
                                   else Array2D(shape=tuple(sl.shape[1:]), dtype="float32"))
        return Features(feats)

    @property
    def dataset(self) -> Dataset:
        """The distilled set as a `datasets.Dataset` (explicit features; float rows in normalised space)."""
        rows = {"video": [], "label": self.labels.tolist(), "num_frames": [int(v.shape[0]) for v in self.videos]}
        for v in self.videos:
            rows["video"].append(v.numpy() if self.is_uint8 else normalize(v.float()).half().numpy())
        if self.source_index is not None:
            rows["source_index"] = torch.as_tensor(self.source_index).tolist()
        if self.soft_labels is not None:
            rows["soft_label"] = self.soft_labels.float().numpy()
        return Dataset.from_dict(rows, features=self.features())

    def expanded_videos(self, num_frames: int | None = None) -> torch.Tensor:
        """`(N, T, C, H, W)` float pixel-space videos, each row expanded to `num_frames` by interleave-repeat."""
        t = num_frames or self.num_frames
        check_values(num_frames=t)
        out = [interleave_repeat(v, t, dim=0) for v in self.videos]
        out = [v.float() / 255.0 if v.dtype == torch.uint8 else v.float() for v in out]
        return torch.stack(out)

    def to_train_set(self, num_frames: int | None = None) -> TensorVideoSet:
        return TensorVideoSet(self.expanded_videos(num_frames), self.labels, self.soft_labels, self.class_names)

    def storage_bytes(self) -> int:
        return int(sum(v.numel() * (1 if self.is_uint8 else 2) for v in self.videos))

    # ---- metadata ---------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {"method": self.method, "ipc": self.ipc, "source": self.source, "num_classes": len(self.class_names),
                "class_names": list(self.class_names), "num_rows": len(self.labels), "frame_size": self.frame_size,
                "num_frames": self.num_frames, "seed": self.seed, "dtype": "uint8" if self.is_uint8 else "float16",
                "normalization": None if self.is_uint8 else {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
                "hf_vdd_version": __version__, "config": shareable(self.config), "stats": shareable(self.stats),
                "eval_results": self.eval_results, "raw_bytes": self.storage_bytes(), "license": self.license,
                "command": shareable_command(self.command)}

    def _card(self, meta: dict, repo_id: str, stored_bytes: int):
        # No `configs:` key: `data/train-*` is found by default, and with `configs` in the YAML, datasets 5.2 caches
        # a local folder under a key that ignores file changes (a re-saved folder would load stale rows).
        config, stats = meta["config"], meta["stats"]
        tags = ["hf_vdd", "dataset-distillation", "video-classification", self.method]
        card_data = DatasetCardData(
            pretty_name=f"{self.source} distilled, IPC {self.ipc}, {self.method}",
            task_categories=["video-classification"],
            tags=tags, source_datasets=[self.source], size_categories=["n<1K"], license=self.license or "unknown",
            hf_vdd={k: meta[k] for k in ("method", "ipc", "source", "frame_size", "num_frames", "normalization",
                                          "seed", "dtype", "hf_vdd_version", "eval_results")},
        )
        eval_table = ""
        if self.eval_results:
            lines = ["| evaluation | top-1 | top-5 | AUC | F1 |", "|---|---|---|---|---|"]
            for name, rep in self.eval_results.items():
                cells = [f"{rep[k]['mean']:.1f} ± {rep[k]['std']:.1f}" for k in ("top1", "top5", "auc", "f1")]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            eval_table = "\n".join(lines)
        sections = []
        if stats.get("resolutions_per_class"):  # DAViD: each class stored at its own temporal resolution
            rows = "\n".join(f"| {name} | {res} |" for name, res in stats["resolutions_per_class"].items())
            how = {"grid": "hf_vdd's default search, one early-stage DM try per resolution rewarded by the teacher; "
                           "the paper's epsilon-greedy Q-learning (Alg. 1) is `--policy qlearning`, which at the "
                           "paper's 10 % search budget ranked resolutions by visits, not reward (hf_vdd README, "
                           "DAViD)",
                   "qlearning": "the paper's epsilon-greedy Q-learning (Alg. 1)"}.get(stats.get("policy"))
            sections.append("## Temporal resolution per class\n\nEach class's videos are stored with this many "
                            "frames and expanded to T by interleave-repeat (`load_distilled` does it)."
                            + (f" Chosen by `{stats['policy']}`: {how}." if how else "") + "\n\n"
                            "| class | frames stored |\n|---|---|\n" + rows)
        if stats.get("teacher"):  # DAViD, Realism: `Teacher.info()`, where the head's logits come from
            sections.append(teacher_section(stats["teacher"]))
        if config.get("embedding") == "pooled":  # DM, IDTD, DAViD: say where the matching departs from DM's
            sections.append("## Matching embedding\n\nMatched with `embedding: pooled`, hf_vdd's default: each "
                            "clip's features are the random ConvNet3D's spatial max, averaged over time. The DM "
                            "paper and VDSD match the whole flattened feature map instead; `--embedding flatten` "
                            "does that (with a smaller `--lr_img`: its gradients are about 20x larger).")
        idtd, init = self.method.startswith("idtd"), config.get("init")
        if init == "herding" or (idtd and init == "real"):  # DM, IDTD: where the start departs from the paper's
            start = {"herding": "the clips Herding selects at this seed (`init: herding`"
                                + (", hf_vdd's IDTD default)" if idtd else ")"),
                     "real": "a random draw of real clips of each class (`init: real`)"}[init]
            paper = ("Sec. 4.2's random Feature Pools and selectors (`--init random`)" if idtd else
                     "random real clips (`--init real`)")
            sections.append(f"## Initialisation\n\nThe optimised videos{' (Feature Pools)' if idtd else ''} started "
                            f"from {start}, where the paper starts from {paper}. The hf_vdd README (IDTD choices) "
                            f"gives the measured reason.")
        if stats.get("mixed_precision"):  # the engine's autocast: another set than fp32's
            mp = stats["mixed_precision"]
            sections.append(f"## Mixed precision\n\nDistilled with `--mixed_precision {mp}`: the matching embedders "
                            f"ran in {mp}, while the synthetic pixels, losses and optimiser state stayed fp32. The "
                            f"same command without the flag (fp32) gives other pixels.")
        if stats.get("skipped_videos"):  # --skip_corrupt: the source videos left out
            skipped = stats["skipped_videos"]
            sections.append(f"## Skipped source videos\n\n{len(skipped)} unreadable or truncated video(s) of the "
                            f"source were skipped (`skip_corrupt=True`):\n\n" + "\n".join(f"- `{p}`" for p in skipped))
        storage_table = ""
        if stats.get("storage_bytes"):  # {"this set": bytes, "<baseline> (how)": bytes, ...}
            lines = ["| set | bytes | MB |", "|---|---|---|"]
            lines += [f"| {name} | {b:,} | {b / 1e6:.3f} |" for name, b in stats["storage_bytes"].items()]
            storage_table = "\n".join(lines)
        extra = [c for c in ("source_index", "soft_label") if getattr(self, c + "s" if c == "soft_label" else c)
                 is not None]
        return render_dataset_card(
            card_data, pretty_name=card_data.pretty_name, num_rows=len(self.labels), ipc=self.ipc,
            num_classes=len(self.class_names), source=self.source, method=self.method, repo_id=repo_id,
            num_frames=self.num_frames, frame_size=self.frame_size, dtype=meta["dtype"], seed=self.seed,
            version=__version__, stored_bytes=f"{stored_bytes:,}", eval_table=eval_table, storage_table=storage_table,
            extra_columns=", ".join(f"`{c}`" for c in extra),
            dtype_note=("Selected/generated real frames, uint8 in [0, 255]." if self.is_uint8 else
                        "Optimised pixels, float16 in normalised space."),
            normalization_note=("uint8 pixels; divide by 255 for [0, 1]; students normalise with ImageNet mean/std."
                                if self.is_uint8 else f"Values are (x - mean) / std with mean {list(IMAGENET_MEAN)} "
                                f"and std {list(IMAGENET_STD)}; `load_distilled` undoes it."),
            config_json=json.dumps(config, indent=2, default=str), extra_sections="\n\n".join(sections),
            license=self.license or "unknown (the source's licence was not found; set it with --license)",
            command=meta["command"])

    # ---- save / push ------------------------------------------------------------------------------------
    def save(self, output_dir: str | os.PathLike, repo_id: str | None = None, overwrite: bool = False) -> Path:
        """Write the repo folder atomically (nothing appears at `output_dir` unless everything succeeded).

        An existing non-empty `output_dir` is refused (`OutputExistsError`) unless `overwrite=True`, and even then
        only a distilled set written by hf_vdd (it holds `distillation.json`) is replaced; the old folder stays in
        place until the new one is complete."""
        output_dir = Path(output_dir)
        check_output_dir(output_dir, overwrite=overwrite, marker=META_FILE, flag="output folder")
        repo_id = repo_id or f"<org>/{output_dir.name}"
        with atomic_folder(output_dir, marker=META_FILE) as tmp:
            (tmp / "data").mkdir()
            self.dataset.to_parquet(str(tmp / DATA_FILE))
            meta = self.metadata()
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
            save_frames_grid(self.videos, self.labels.numpy(), self.class_names, tmp / "preview.png",
                             title=f"{self.source} · {self.method} · IPC {self.ipc}")
            save_preview_gif(self.videos, self.labels.numpy(), self.class_names, tmp / "preview.gif")
            self._card(meta, repo_id, (tmp / DATA_FILE).stat().st_size).save(tmp / "README.md")
        return output_dir

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
        """Upload the folder `save()` writes to a Hub dataset repo (clear error when offline/unauthenticated)."""
        return with_temp_folder(lambda folder: self.save(folder, repo_id=repo_id), repo_id, repo_type="dataset",
                                token=token, private=private)


REQUIRED_META = ("method", "ipc", "source", "class_names", "frame_size", "num_frames", "seed", "dtype")


def teacher_section(info: dict) -> str:
    """The card's "Teacher" section from `Teacher.info()`: source, where the head comes from, a probe's accuracy."""
    text = f"## Teacher\n\n`{info.get('source')}`; classifier head: {info.get('head')}."
    probe = info.get("probe")
    if probe:
        held = probe.get("held_out_accuracy")
        text += (f" The checkpoint's labels are not this dataset's classes, so a linear probe (logistic regression on "
                 f"the frozen backbone's {probe['feature_dim']}-d pooled features) was fitted on the "
                 f"{probe['num_train']} real training clips: train accuracy {probe['train_accuracy']:.1%}"
                 + (f", held-out accuracy {held:.1%} ({probe['num_held_out']} clips: {probe['held_out']})."
                    if held is not None else " (no clips held out)."))
    return text


def _read_meta(meta_file: Path, where) -> dict:
    """`distillation.json`, checked: a clear error instead of a traceback when it is not one hf_vdd wrote."""
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HfVddError(f"{where}: {META_FILE} is not valid JSON ({err}). The folder is damaged; write it again "
                         f"with DistillationOutput.save().") from err
    missing = [k for k in REQUIRED_META if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise HfVddError(f"{where}: {META_FILE} lacks {missing}, so it was not written by hf_vdd's "
                         f"DistillationOutput.save(). Pass a distilled-set folder or Hub id.")
    if meta["dtype"] not in ("uint8", "float16"):
        raise HfVddError(f"{where}: {META_FILE} has dtype {meta['dtype']!r}; expected 'uint8' or 'float16'.")
    return meta


def load_distilled(id_or_dir: str | os.PathLike, revision: str | None = None) -> DistillationOutput:
    """Load a distilled set (folder written by `save`, or a Hub dataset id) back into a `DistillationOutput`.

    Float rows are converted from normalised space back to pixel space; every row keeps its stored temporal
    resolution (`expanded_videos()` / `to_train_set()` expand by interleave-repeat).
    """
    path = Path(id_or_dir)
    if path.is_dir():
        meta_file = path / "distillation.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path} is not a distilled set: distillation.json is missing. Write one with "
                                    f"DistillationOutput.save().")
        meta = _read_meta(meta_file, path)
        if not any((path / "data").glob("train-*.parquet")):
            raise HfVddError(f"{path} has distillation.json but no data/train-*.parquet: the folder is damaged; "
                             f"write it again with DistillationOutput.save().")
        ds = load_dataset(str(path), split="train")
    else:
        if str(id_or_dir).startswith((".", "/", "~")) or str(id_or_dir).count("/") != 1:
            raise FileNotFoundError(f"Distilled-set folder '{id_or_dir}' does not exist (and it is not an "
                                    f"<org>/<name> Hub id).")
        try:
            meta_file = hf_hub_download(str(id_or_dir), "distillation.json", repo_type="dataset", revision=revision)
            ds = load_dataset(str(id_or_dir), split="train", revision=revision)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"Could not load distilled set '{id_or_dir}': not a local folder, and the Hub said: "
                             f"{str(err).splitlines()[0][:200]}. Pass the folder written by save().") from err
        meta = _read_meta(Path(meta_file), id_or_dir)
    ds = ds.with_format("torch", columns=["video"], dtype=torch.uint8 if meta["dtype"] == "uint8" else torch.float32)
    videos = [row["video"] for row in ds]
    if meta["dtype"] != "uint8":
        videos = [denormalize(v) for v in videos]
    table = ds.with_format(None)
    soft = None
    if "soft_label" in table.column_names:
        soft = torch.as_tensor(np.asarray(table["soft_label"]), dtype=torch.float32)
    index = torch.as_tensor(table["source_index"]) if "source_index" in table.column_names else None
    return DistillationOutput(videos=videos, labels=torch.as_tensor(table["label"]), class_names=meta["class_names"],
                              method=meta["method"], ipc=meta["ipc"], source=meta["source"],
                              frame_size=meta["frame_size"], num_frames=meta["num_frames"], seed=meta["seed"],
                              soft_labels=soft, source_index=index, config=meta.get("config", {}),
                              stats=meta.get("stats", {}), eval_results=meta.get("eval_results"),
                              license=meta.get("license"), command=meta.get("command"))


class TensorVideoSet(TorchDataset):
    """Videos `(N, T, C, H, W)` (pixel space) + labels `(N,)` [+ soft labels `(N, K)` or per-region `(N, R, K)`].

    Per-region soft labels describe mosaics: R = n*n tiles in row-major order (`tile_bounds` gives their pixels).
    """

    def __init__(self, videos: torch.Tensor, labels: torch.Tensor, soft_labels: torch.Tensor | None = None,
                 class_names: list[str] | None = None):
        if videos.ndim != 5:
            raise ValueError(f"videos must be (N, T, C, H, W), got {tuple(videos.shape)}.")
        if len(videos) != len(labels):
            raise ValueError(f"{len(videos)} videos but {len(labels)} labels.")
        if soft_labels is not None and len(soft_labels) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(soft_labels)} soft labels.")
        labels = self.class_indices(labels, len(class_names) if class_names is not None else None)
        self.videos, self.labels, self.soft_labels, self.class_names = videos, labels, soft_labels, class_names

    @staticmethod
    def class_indices(labels, num_classes: int | None) -> torch.Tensor:
        """`labels` as int64 class ids, refused unless whole numbers in [0, num_classes) (a label of 0.5 used to be
        cast to 0, a negative one to fail inside the loss)."""
        labels = torch.as_tensor(labels)
        if len(labels) and ((labels != labels.round()).any() or labels.min() < 0 or (num_classes is not None and
                                                                                     labels.max() >= num_classes)):
            raise ValueError(f"labels must be class indices (integers in [0, {num_classes or 'num_classes'})), got "
                             f"{labels.dtype} values from {labels.min().item()} to {labels.max().item()}.")
        return labels.long()

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        item = (self.videos[i].float(), self.labels[i])
        return item + (self.soft_labels[i].float(),) if self.soft_labels is not None else item


def tile_bounds(size: int, n: int) -> list[tuple[int, int]]:
    """Pixel ranges `[(start, stop)] * n` of an n-way split of `size` (the mosaic grid; sizes differ by <= 1)."""
    if not 1 <= n <= size:
        raise ValueError(f"Cannot split {size} pixels into {n} tiles.")
    edges = np.linspace(0, size, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def region_tiles(x: torch.Tensor, n: int, tiles: torch.Tensor | None = None) -> torch.Tensor:
    """Crop tiles of `(B, T, C, H, W)` mosaics and upsample each to `(H, W)`.

    Returns `(B, R, T, C, H, W)` for all R = n*n tiles (row-major), or `(B, k, ...)` for the tile indices
    `tiles` `(B, k)`.
    """
    b, t, c, h, w = x.shape
    rows, cols = tile_bounds(h, n), tile_bounds(w, n)
    out = []
    for y0, y1 in rows:
        for x0, x1 in cols:
            tile = x[:, :, :, y0:y1, x0:x1].reshape(b * t, c, y1 - y0, x1 - x0)
            out.append(F.interpolate(tile, size=(h, w), mode="bilinear", align_corners=False).view(b, t, c, h, w))
    out = torch.stack(out, 1)
    if tiles is not None:
        out = out[torch.arange(b, device=x.device)[:, None], tiles]
    return out
