"""The evaluation protocol shared by every method: train a student through `Accelerator`, test on real data.

VDSD's protocol, made reproducible: SGD (momentum 0.9, weight decay 5e-4), lr 0.01 decayed x0.1 at half of
training, gradient norm clipped at 10 (stability guard), N seeded runs, deterministic test clips, top-1 / top-5 /
macro AUC / macro F1 / per-class accuracy
as mean ± std. Videos enter in pixel space (`(N, T, C, H, W)`, [0, 1]; optimised sets may exceed it) and are
normalised here with the ImageNet statistics recorded in every card.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, default_collate

from .config_fields import check_fields
from .data.decoding import normalize
from .data.distilled import DistillationOutput, TensorVideoSet, region_tiles
from .data.loading import VideoClassificationSet
from .data.temporal import augment_each
from .metrics import EvalReport, class_order, classification_metrics, summarize_runs  # noqa: F401 - re-exported
from .models import STUDENTS, build_student
from .utils import HfVddError, derived_generator, hash32, progress, sample_seeds


@dataclass
class TrainConfig:
    """How a student is trained and tested (one config for every method)."""

    student: str = field(default="convnet3d", metadata={"help": "Student architecture: convnet3d | videomae.",
                                                         "choices": STUDENTS})
    student_pretrained: str | None = field(default=None, metadata={"help": "Hub id or folder to start from."})
    epochs: int | None = field(default=None, metadata={"help": "Epochs; default: enough epochs for `steps`."})
    steps: int = field(default=300, metadata={"help": "Optimisation steps when `epochs` is not given."})
    batch_size: int = field(default=32, metadata={"help": "Global batch size (split across processes)."})
    lr: float = field(default=0.01, metadata={"help": "SGD learning rate (x0.1 at half of training)."})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum."})
    weight_decay: float = field(default=5e-4, metadata={"help": "SGD weight decay."})
    runs: int = field(default=5, metadata={"help": "Independent seeded runs (mean ± std)."})
    seed: int = field(default=0, metadata={"help": "Base seed; run r uses seed + r."})
    max_grad_norm: float = field(default=10.0, metadata={
        "help": "Clip the gradient norm (0 = off, VDSD's choice). Every protocol clips: without it the norm-free "
                "ConvNet3D diverges to NaN or dies (constant logits) on tiny distilled sets (toy-actions and ucf12 "
                "at IPC 1)."})
    standardize: bool = field(default=False, metadata={"help": "Per-batch standardisation of inputs."})
    soft_label_weight: float = field(default=1.0, metadata={"help": "Weight of soft-label loss when present."})
    label_mode: str = field(default="soft", metadata={
        "help": "soft: train on the set's soft labels when it has them; hard: use the class labels only "
                "(ablation). Per-region soft labels (N, R, K), R = n*n, train each tile on its own label (Eq. 5)."})
    region_samples: int = field(default=1, metadata={
        "help": "Tiles per mosaic per step for Eq. 5's region loss: k random tiles (default 1: an unbiased "
                "estimate of the mean over tiles at the cost of one forward per mosaic, so a mosaic set trains "
                "as fast as any set of its IPC); 0 = all R tiles every step (R forwards per mosaic)."})
    mosaic_loss: bool = field(default=False, metadata={
        "help": "Also train the whole mosaic against the mean of its region labels (an extra term hf_vdd used "
                "before; not in Eq. 5). Off: Eq. 5 as written."})
    temporal_augmentation: float = field(default=0.0, metadata={
        "help": "IDTD's stochastic temporal augmentation of the training clips: each keeps a random interval of at "
                "least this fraction of its frames, resampled to T (0 = off; protocol idtd: 0.5, a fraction the "
                "paper does not state)."})
    early_stopping_patience: int = field(default=0, metadata={
        "help": "Stop when the smoothed training loss (EMA 0.9 of the global batch loss) has not improved by 1e-4 "
                "for this many steps (0 = off; protocol david: 100, as DAViD 'applied early stop technique' without "
                "details). Judged on the training loss: the test split is never looked at."})
    grad_shards: int = field(default=2, metadata={
        "help": "Each batch is computed as this many equal slices whose gradients are summed, spread over the "
                "processes, so that 1 process and `grad_shards` processes train bit-identical students (other "
                "process counts agree up to float rounding). Raised to a multiple of the process count."})
    channels_last: bool = field(default=False, metadata={
        "help": "Train the student in the channels_last_3d memory format (oneDNN's faster 3-D convolutions on the "
                "CPU: a ConvNet3D step at 16x64x64 took 3.3 s instead of 4.1 s for 32 clips here). Changes results "
                "in the last bits, so off by default."})
    show_progress: bool = field(default=True, metadata={"help": "Progress bar on the main process."})

    def __post_init__(self):
        check_fields(self)  # counts >= 1, learning rates >= 0, fractions in [0, 1]: before any training


# Evaluation protocols (`--protocol`): TrainConfig values of each paper; fields a paper does not state follow VDSD,
# which IDTD and DAViD say they follow (README "Evaluation protocols" lists each value and its source).
_VDSD = {"student": "convnet3d", "epochs": 500, "batch_size": 256, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
         "runs": 5, "standardize": True}
# VDSD does not clip gradients; here the presets keep TrainConfig's clipping at norm 10 (`--max_grad_norm 0` is VDSD's
# choice). Measured on a 7-clip ucf12 Herding set at 16x64x64: unclipped, the norm-free ConvNet3D's gradient norm
# reached 114-120 in bursts, its ReLUs died and the train loss stayed at ln 7 (test at chance); clipped, every seed
# fitted its set (docs/reproduce.md, "The student dies without gradient clipping").
PROTOCOLS: dict[str, dict] = {
    "fast": {},  # the project's CPU default: TrainConfig's own defaults (300 steps, batch 32, clipped gradients)
    "vdsd": _VDSD,  # VDSD's evaluate_synset + sh/baseline/DM.sh (its code; no paper text in ../shared/papers)
    "idtd": _VDSD | {"temporal_augmentation": 0.5},  # IDTD: "same as VDSD", plus its temporal augmentation
    "david": _VDSD | {"epochs": None, "steps": 1000, "early_stopping_patience": 100},  # DAViD: lr 0.01, 10^3
    # iterations and "early stop technique" (unspecified: a training-loss plateau), else VDSD
    "diffusion": _VDSD,  # Video Dataset Condensation with Diffusion Models: 5 repeats (C3D), else not stated
    "realism": _VDSD | {"label_mode": "soft"},  # Jiang et al.: soft-label CE (Eq. 5); the student is not stated
}


def protocol_config(name: str, explicit: dict | None = None, base: TrainConfig | None = None) -> TrainConfig:
    """`base` (default `TrainConfig()`) with protocol `name`'s values, then the `explicit` fields (flags the user
    set, which always win)."""
    if name not in PROTOCOLS:
        raise HfVddError(f"Unknown protocol '{name}'; choose one of {sorted(PROTOCOLS)}.")
    return dataclasses.replace(base or TrainConfig(), **(PROTOCOLS[name] | (explicit or {})))


def make_accelerator(accelerator: Accelerator | None = None) -> Accelerator:
    """The `Accelerator` used by training loops (`split_batches` keeps the global batch fixed)."""
    if accelerator is not None:
        return accelerator
    # Without an accelerator device, `cpu=True` is what makes `accelerate launch --multi_gpu` use gloo processes.
    return Accelerator(cpu=not torch.cuda.is_available(),
                       dataloader_config=DataLoaderConfiguration(split_batches=True))


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row soft cross-entropy `(B,)`."""
    return -(target * F.log_softmax(logits, -1)).sum(-1)


def student_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None,
                 config: TrainConfig, seeds: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss of each video of a batch, `(B,)` (pixel-space `x`; the caller averages).

    `seeds` `(B,)` (from `hf_vdd.utils.sample_seeds`) make dropout masks and sampled tiles a function of each
    sample, so that data-parallel training equals one process; models without a `sample_seeds` argument ignore
    them.

    - no soft labels, or `label_mode="hard"` without regions: cross-entropy with `y`;
    - soft labels `(B, K)`: soft cross-entropy, times `soft_label_weight`;
    - per-region soft labels `(B, R, K)` (mosaics of n*n tiles): Eq. 5 of Jiang et al., each tile cropped,
      upsampled to the full frame and trained against its own label, averaged over the tiles (`region_samples`
      random ones per step; Eq. 5's sum over tiles is R times this mean); `mosaic_loss` adds the whole mosaic
      against the mean of its region labels. `label_mode="hard"` keeps the same crops with the class label `y`.
    """
    if config.label_mode not in ("soft", "hard"):
        raise ValueError(f"label_mode must be 'soft' or 'hard', got {config.label_mode!r}.")
    hard = config.label_mode == "hard"
    if config.temporal_augmentation > 0:  # per sample, from its seed (the same draw in any process)
        gens = [derived_generator(int(s), 7) for s in seeds.tolist()] if seeds is not None else [None] * len(x)
        x = augment_each(x, gens, config.temporal_augmentation)
    if soft is None or soft.ndim == 2:
        logits = _forward(model, _prepare_inputs(x, config.standardize), seeds)
    if soft is None or (hard and soft.ndim == 2):
        return F.cross_entropy(logits, y, reduction="none")
    if soft.ndim == 2:
        return _soft_ce(logits, soft) * config.soft_label_weight
    b, r, k = soft.shape
    n = math.isqrt(r)
    if n * n != r:
        raise ValueError(f"Per-region soft labels need R = n*n regions, got R = {r}.")
    if hard:
        soft = F.one_hot(y, k).float()[:, None].expand(b, r, k)
    loss = 0.0
    if config.mosaic_loss:
        loss = _soft_ce(_forward(model, _prepare_inputs(x, config.standardize), seeds), soft.mean(1))
    tiles = None
    if 0 < config.region_samples < r:
        gens = [derived_generator(int(s)) for s in seeds.tolist()] if seeds is not None else [None] * b
        tiles = torch.stack([torch.randperm(r, generator=g)[:config.region_samples] for g in gens]).to(x.device)
        soft = soft[torch.arange(b, device=x.device)[:, None], tiles]
    crops = region_tiles(x, n, tiles)
    m = crops.shape[1]
    tile_seeds = None if seeds is None else hash32(seeds[:, None] * 31 + torch.arange(1, m + 1, device=seeds.device))
    tile_logits = _forward(model, _prepare_inputs(crops.flatten(0, 1), config.standardize),
                           None if tile_seeds is None else tile_seeds.flatten())
    tile_loss = _soft_ce(tile_logits, soft.reshape(b * m, k)).view(b, m).mean(1)
    return (loss + tile_loss) * config.soft_label_weight


def _forward(model: torch.nn.Module, x: torch.Tensor, seeds: torch.Tensor | None) -> torch.Tensor:
    if seeds is not None and _takes_seeds(type(_unwrap(model))):
        return model(x, sample_seeds=seeds)
    return model(x)


@functools.cache
def _takes_seeds(model_class: type) -> bool:
    """Whether a student's `forward` takes per-sample seeds (looked up once per class, not every step)."""
    return "sample_seeds" in inspect.signature(model_class.forward).parameters


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def _prepare_inputs(x: torch.Tensor, standardize: bool) -> torch.Tensor:
    x = normalize(x)
    if standardize:
        x = (x - x.mean()) / (x.std() + 1e-6)
    return x


class _Indexed(Dataset):
    """`base[i]` plus `i`. Clips of a `VideoClassificationSet` are drawn with a generator derived from
    `(seed, epoch, i)`, so a sample gets the same clip whichever process loads it."""

    def __init__(self, base: Dataset, seed: int):
        self.base, self.seed, self.epoch = base, seed, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        if isinstance(self.base, VideoClassificationSet):
            g = derived_generator(self.seed, self.epoch, i)
            return self.base.clip(i, generator=g), int(self.base.labels[i]), i
        return (*self.base[i], i)


def train_student(model: torch.nn.Module, train_set: Dataset, config: TrainConfig, seed: int,
                  accelerator: Accelerator | None = None) -> torch.nn.Module:
    """Train `model` on `train_set` (items `(video, label[, soft_label])`, pixel space); returns it unwrapped.

    Data-parallel training gives the 1-process student: every process draws the same global batches; a batch is cut
    into `config.grad_shards` slices (a short final batch is never padded with repeated samples), each process
    back-propagates its slices, and the gradients add up to the global batch mean; dropout masks and clip starts
    are functions of `(seed, step or epoch, sample index)`. With `grad_shards` processes the sum is the very one
    a single process computes slice by slice, so the students are bit-identical."""
    if len(train_set) == 0:
        raise ValueError("train_set is empty: a student needs at least one video.")
    accelerator = make_accelerator(accelerator)
    set_seed(seed)
    world, rank = accelerator.num_processes, accelerator.process_index
    shards = world * math.ceil(max(1, config.grad_shards) / world)
    mine = slice(rank * shards // world, (rank + 1) * shards // world)  # this process's slices of every batch
    bs = max(1, min(config.batch_size, len(train_set)))
    indexed = _Indexed(train_set, seed)
    batches = BatchSampler(RandomSampler(indexed, generator=torch.Generator().manual_seed(seed)), bs, drop_last=False)
    steps_per_epoch = len(batches)
    epochs = config.epochs or max(1, math.ceil(config.steps / steps_per_epoch))
    if config.channels_last:  # before the optimiser, which then holds the converted parameters
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[epochs * steps_per_epoch // 2], gamma=0.1)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    bar = progress(total=epochs * steps_per_epoch, desc="train student", leave=False,
               disable=not (config.show_progress and accelerator.is_local_main_process))
    step, best, smooth, since = 0, math.inf, None, 0
    for epoch in range(epochs):
        indexed.epoch = epoch
        if since >= config.early_stopping_patience > 0:
            break
        for indices in batches:
            optimizer.zero_grad()
            parts = torch.tensor_split(torch.as_tensor(indices), shards)[mine]
            batch_loss = 0.0
            for j, part in enumerate(parts):
                part, weight = part.tolist(), 1.0
                if not part:  # fewer samples than slices: take part in the gradient sync with weight 0
                    part, weight = indices[:1], 0.0
                *batch, index = (t.to(accelerator.device) for t in default_collate([indexed[i] for i in part]))
                per_sample = student_loss(model, batch[0], batch[1], batch[2] if len(batch) > 2 else None, config,
                                          sample_seeds(seed, step, index))
                # DDP averages over processes, so each slice weighs `world / batch`: the sum is the batch mean
                loss = per_sample.sum() * (weight * world / len(indices))
                with accelerator.no_sync(model) if j < len(parts) - 1 else contextlib.nullcontext():
                    accelerator.backward(loss)
                batch_loss = batch_loss + loss.detach()
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            bar.update(1)
            step += 1
            if config.early_stopping_patience > 0:  # the same global value (and decision) on every process
                value = float(accelerator.reduce(batch_loss, "sum")) / world
                smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
                best, since = (smooth, 0) if smooth < best - 1e-4 else (best, since + 1)
                if since >= config.early_stopping_patience:
                    break
    bar.close()
    model = accelerator.unwrap_model(model)
    model.trained_steps = step  # fewer than planned when early stopping ended the run
    return model


@torch.no_grad()
def predict(model: torch.nn.Module, test_set: Dataset, config: TrainConfig,
            accelerator: Accelerator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities `(N, K)` and labels `(N,)` on `test_set`, gathered over processes."""
    accelerator = make_accelerator(accelerator)
    loader = accelerator.prepare(DataLoader(test_set, batch_size=max(64, accelerator.num_processes), shuffle=False))
    model = model.to(accelerator.device).eval()  # same weights on every process; each scores its shard
    probs, labels = [], []
    for x, y, *_ in loader:
        p = F.softmax(model(_prepare_inputs(x, config.standardize)).float(), -1)
        p, y = accelerator.gather_for_metrics((p, y))
        probs.append(p.cpu())
        labels.append(y.cpu())
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def _align_classes(train_data, test_names: list[str]):
    """`train_data` with its labels (and soft-label columns) expressed in the test split's class order."""
    names = getattr(train_data, "class_names", None)
    if names is None:
        top = int(torch.as_tensor(train_data.labels).max())
        if top >= len(test_names):
            raise HfVddError(f"The training set has label {top} but the test split only {len(test_names)} classes "
                             f"({test_names[:5]}...). Evaluate on the dataset it was made from.")
        return train_data
    order = class_order(names, test_names, f"The training set ({getattr(train_data, 'method', 'data')})")
    if order is None:
        return train_data
    if isinstance(train_data, VideoClassificationSet):
        raise HfVddError(f"The train and test splits list the same classes in another order ({names[:3]}... vs "
                         f"{list(test_names)[:3]}...). Rebuild the dataset with one ClassLabel for both splits.")
    perm = torch.as_tensor(order)
    inverse = torch.argsort(perm)
    soft = None if train_data.soft_labels is None else train_data.soft_labels[..., inverse]
    if isinstance(train_data, DistillationOutput):
        return dataclasses.replace(train_data, labels=perm[train_data.labels], soft_labels=soft,
                                   class_names=list(test_names))
    return TensorVideoSet(train_data.videos, perm[train_data.labels], soft, list(test_names))


def evaluate_distilled(train_data, test_set: VideoClassificationSet, config: TrainConfig | None = None,
                       accelerator: Accelerator | None = None, extra_config: dict | None = None,
                       on_model=None, done_runs: list[dict] | None = None, on_run=None) -> EvalReport:
    """Train `config.runs` students on `train_data` and test each on `test_set` (deterministic clips).

    Args:
        train_data: a `DistillationOutput`, a `TensorVideoSet`, or a `VideoClassificationSet` (the full real
            train split: the upper bound). Pixel-space videos. Its class names must be the test split's (in
            another order they are mapped by name); otherwise `HfVddError` before any training.
        test_set: the real test split (`train=False`); its `num_frames`/`frame_size` define the student input.
        on_model: optional `on_model(run, student)`, called after each run with its trained student, to keep one
            for another use (for example as a judge) instead of training it again.
        done_runs: runs already finished (`EvalReport.runs` records of an interrupted evaluation with the same
            settings); they are kept and not trained again (nor passed to `on_model`). The result equals an
            uninterrupted evaluation's: run `r` re-seeds from `config.seed + r`.
        on_run: optional `on_run(runs)`, called after each newly trained run with every run so far (to keep them).
    """
    config = config or TrainConfig()
    if not isinstance(test_set, VideoClassificationSet):
        raise TypeError(f"test_set must be a VideoClassificationSet, got {type(test_set).__name__}: pass "
                        f"hf_vdd.load_video_dataset(<source>, 'test', num_frames=..., frame_size=...).")
    if not isinstance(train_data, (DistillationOutput, TensorVideoSet, VideoClassificationSet)):
        raise TypeError(f"train_data must be a DistillationOutput, TensorVideoSet or VideoClassificationSet, got "
                        f"{type(train_data).__name__}: pass a distiller's output or hf_vdd.load_distilled(<folder>).")
    accelerator = make_accelerator(accelerator)
    train_data = _align_classes(train_data, test_set.class_names)
    if isinstance(train_data, DistillationOutput):
        train_data = train_data.to_train_set(num_frames=test_set.num_frames)
    if isinstance(train_data, VideoClassificationSet):
        train_data.preload(show_progress=config.show_progress and accelerator.is_local_main_process)
    test_set = test_set.with_options(train=False)
    test_tensors = TensorVideoSet(test_set.preload(show_progress=False).stack(range(len(test_set))),
                                  torch.as_tensor(test_set.labels))
    sample = train_data[0][0]
    if tuple(sample.shape[1:]) != tuple(test_tensors.videos.shape[2:]):
        raise ValueError(f"Train videos have frames {tuple(sample.shape[1:])} but test clips "
                         f"{tuple(test_tensors.videos.shape[2:])}: use the same --frame_size as the distilled set.")
    runs = list(done_runs or [])[:config.runs]
    seconds = sum(run.get("train_seconds", 0.0) for run in runs)
    for r in range(len(runs), config.runs):
        seed = config.seed + r
        set_seed(seed)
        model = build_student(config.student, test_set.num_classes, test_set.num_frames, test_set.frame_size,
                              config.student_pretrained)
        start = time.perf_counter()
        model = train_student(model, train_data, config, seed, accelerator)
        run_seconds = time.perf_counter() - start
        seconds += run_seconds
        probs, labels = predict(model, test_tensors, config, accelerator)
        runs.append(classification_metrics(probs, labels, test_set.num_classes) | {"seed": seed,
                                                                                  "train_seconds": run_seconds})
        if on_model is not None:
            on_model(r, model)
        if on_run is not None:
            on_run(list(runs))
    cfg = asdict(config) | {"num_frames": test_set.num_frames, "frame_size": test_set.frame_size,
                            "test_set": test_set.name, "num_processes": accelerator.num_processes}
    return summarize_runs(runs, seconds, cfg | (extra_config or {}))
