"""Shared matching machinery (DM, IDTD, DAViD): DM loss, differentiable augmentation, per-class real batches.

Everything stochastic is derived from `(seed, iteration, class)`, so a class's update does not depend on which
process handles it or on how many processes there are: a class-parallel run equals a 1-process run.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data.decoding import normalize
from ..data.streaming import sample_class_batch
from ..models import ConvNet3D
from ..utils import derived_generator
from .base import DistillerConfig


def fresh_embedder(seed: int, iteration: int, num_classes: int, widths=(64, 128, 128),
                   device: torch.device | str | None = None, embedding: str = "pooled") -> ConvNet3D:
    """A randomly initialised ConvNet3D for one DM iteration, frozen (DM samples a new network every iteration).

    On the CPU (and `meta`) it is initialised by the CPU generator, then moved to `device`. On a CUDA device it is
    initialised there, by that device's generator seeded the same way: the same weights in every process of a run,
    without a CPU pass (initialising 3.6 M parameters on one CPU thread took 57 ms of a 93 ms DM iteration on an
    H200), but other weights than a CPU run's. `embedding`: what its `embed` returns (`ConvNet3D.embedding`)."""
    device = torch.device(device) if device is not None else None
    cuda = device is not None and device.type == "cuda"
    devices = [torch.cuda.current_device() if device.index is None else device.index] if cuda else []
    # the global generators are restored afterwards: the CPU one always, the device's one on CUDA
    with torch.random.fork_rng(devices=devices, device_type="cuda"), \
            torch.device(device) if cuda else contextlib.nullcontext():
        torch.manual_seed(derived_generator(seed, iteration, 1 << 20).initial_seed())
        net = ConvNet3D(num_classes=num_classes, widths=tuple(widths)).eval()
    net.embedding = embedding
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device) if device is not None else net


def embed_mean(net: ConvNet3D, videos: torch.Tensor, autocast=contextlib.nullcontext, frozen: bool = False):
    """Mean embedding `(D,)` of pixel-space `videos` in fp32 (the forward under `autocast()`); `frozen=True` runs
    it under `torch.inference_mode` (the real side: no graph is kept) and returns a normal tensor."""
    with torch.inference_mode() if frozen else contextlib.nullcontext(), autocast():
        mean = net.embed(normalize(videos)).float().mean(0)
    return mean.clone() if frozen else mean


def augment(videos: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Differentiable augmentation of `(N, T, C, H, W)` videos, one draw per call shared by the whole batch.

    Call it with generators of the same seed for real and synthetic videos (DSA's siamese augmentation):
    colour (brightness, saturation, contrast), scale and translation, applied identically to every frame.
    No horizontal flip: it would swap direction classes (slide-left/right).
    """
    if strength <= 0:
        return videos
    r = torch.rand(6, generator=generator)
    x = videos
    x = x + (r[0] - 0.5) * 0.4 * strength                                       # brightness
    mean = x.mean(dim=2, keepdim=True)
    x = (x - mean) * (1 + (r[1] - 0.5) * strength) + mean                       # saturation
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * (1 + (r[2] - 0.5) * strength) + mean                       # contrast
    n, t, c, h, w = x.shape
    scale = 1 + (r[3] - 0.5) * 0.4 * strength
    shift = (r[4:6] - 0.5) * 0.25 * strength
    theta = torch.tensor([[scale, 0.0, float(shift[0])], [0.0, scale, float(shift[1])]], dtype=x.dtype,
                         device=x.device)
    grid = F.affine_grid(theta.expand(n * t, 2, 3), (n * t, c, h, w), align_corners=False)
    x = F.grid_sample(x.reshape(n * t, c, h, w), grid, padding_mode="zeros", align_corners=False)
    return x.reshape(n, t, c, h, w)


def dm_loss(net: ConvNet3D, real: torch.Tensor, syn: torch.Tensor, seed: int | None = None,
            augment_strength: float = 1.0, autocast=contextlib.nullcontext) -> torch.Tensor:
    """Distribution-matching loss of one class: `||mean embed(real) - mean embed(syn)||^2`.

    `real`: `(B, T, C, H, W)` and `syn`: `(M, T, C, H, W)`, pixel space; `seed` drives the shared augmentation.
    The real side runs without a graph; `autocast` is the mixed-precision context of the embedder's forwards.
    """
    real, syn = siamese_augment(real, syn, seed, augment_strength)
    target = embed_mean(net, real, autocast, frozen=True)
    return ((target - embed_mean(net, syn, autocast)) ** 2).sum()


def siamese_augment(real: torch.Tensor, syn: torch.Tensor, seed: int | None, strength: float):
    """`real` and `syn` augmented with the same draw from `seed` (DSA's siamese augmentation); unchanged without a
    seed or with `strength <= 0`."""
    if seed is None or strength <= 0:
        return real, syn
    return (augment(real, torch.Generator().manual_seed(seed), strength),
            augment(syn, torch.Generator().manual_seed(seed), strength))


def dm_losses(net: ConvNet3D, real: dict[int, torch.Tensor], syn: dict[int, torch.Tensor],
              seeds: dict[int, int] | None = None, augment_strength: float = 1.0,
              autocast=contextlib.nullcontext, class_batch: int = 1) -> dict[int, torch.Tensor]:
    """`dm_loss` of several classes. With `class_batch = 1` (the default) class by class: the peak memory of an
    iteration is one class's real batch (one huge CPU batch of every class made glibc return and re-map its memory
    every iteration, 1.4-1.9x slower). With `class_batch = k`, `k` classes share one embedder forward of their real
    clips and one of their synthetic clips (each class augmented with its own draw): fewer, larger kernels, for a
    GPU. The losses are the same up to float rounding (the embedding of a clip does not depend on its batch)."""
    out, classes, k = {}, list(syn), max(1, int(class_batch))
    for i in range(0, len(classes), k):
        chunk = classes[i:i + k]
        if len(chunk) == 1:
            c = chunk[0]
            out[c] = dm_loss(net, real[c], syn[c], None if seeds is None else seeds[c], augment_strength, autocast)
            continue
        reals, syns = [], []
        for c in chunk:
            r, x = siamese_augment(real[c], syn[c], None if seeds is None else seeds[c], augment_strength)
            reals.append(r)
            syns.append(x)
        with torch.inference_mode(), autocast():
            embedded = net.embed(normalize(torch.cat(reals))).float().split([len(r) for r in reals])
            targets = [e.mean(0) for e in embedded]
        targets = [t.clone() for t in targets]  # normal tensors, outside inference mode
        with autocast():
            embedded = net.embed(normalize(torch.cat(syns))).float().split([len(x) for x in syns])
        out |= {c: ((t - e.mean(0)) ** 2).sum() for c, t, e in zip(chunk, targets, embedded)}
    return out


class ClassSampler:
    """Per-class real batches: `sample(c, n, generator)` → `(n, T, C, H, W)` clips of class `c` (random starts), on
    `device` (default CPU; gathered as uint8 and converted there)."""

    def __init__(self, train_set, device=None):
        self.train_set, self.device = train_set, device
        self.by_class = train_set.indices_per_class()

    def sample(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        return sample_class_batch(self.train_set, self.by_class, c, n, generator, self.device)

    def batch(self, seed: int, it: int, c: int, n: int) -> tuple[torch.Tensor, torch.Generator]:
        """The real batch of class `c` at iteration `it` (`sample` with `derived_generator(seed, it, c)`) and that
        generator, advanced past the draws of the batch (the caller draws its augmentation from it)."""
        g = derived_generator(seed, it, c)
        return self.sample(c, n, g), g


def split_classes(num_classes: int, num_processes: int, process_index: int) -> list[int]:
    """Contiguous block of class ids for one process (same split as `Accelerator.split_between_processes`)."""
    per = math.ceil(num_classes / num_processes)
    return list(range(process_index * per, min(num_classes, (process_index + 1) * per)))


def process_classes(num_classes: int, accelerator=None) -> tuple[list[int], int]:
    """The class ids this process distils, and the number of processes."""
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    return split_classes(num_classes, world, rank), world


# ---- class-parallel state: gather (shared by DM, IDTD, DAViD; checkpoints live in hf_vdd/checkpoints.py) -------
def gather_classes(local: dict, accelerator=None) -> dict:
    """Merge `{class: value}` dicts from every process (every process receives the union)."""
    from accelerate.utils import gather_object

    if accelerator is None or accelerator.num_processes == 1:
        return dict(local)
    return {k: v for part in gather_object([local]) for k, v in part.items()}


def data_fingerprint(train_set) -> dict:
    """What identifies the real data a run distils (computed without decoding a video)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha1(np.asarray(train_set.labels, dtype=np.int64).tobytes())
    digest.update(np.asarray(train_set.row_indices, dtype=np.int64).tobytes())
    return {"source": train_set.name, "class_names": list(train_set.class_names), "num_videos": len(train_set),
            "rows_sha1": digest.hexdigest(), "num_frames": train_set.num_frames, "frame_size": train_set.frame_size,
            "interval": getattr(train_set, "interval", None), "static": getattr(train_set, "static", False)}


@dataclass
class MatchingConfig(DistillerConfig):
    """The settings DM, IDTD and DAViD share: the real batch, the augmentation and the random embedder of the
    matching, the engine's checkpoints and the loss log."""

    batch_real: int = field(default=8, metadata={"help": "Real clips per class per iteration."})
    augment_strength: float = field(default=1.0, metadata={"help": "Siamese differentiable augmentation (0 = off)."})
    channels_last: bool = field(default=False, metadata={
        "help": "Run the matching embedder in the channels_last_3d memory format (oneDNN's fast 3-D convolutions on "
                "the CPU: about 1.3-2x here). Changes results in the last bits, so off by default."})
    embed_widths: list[int] = field(default_factory=lambda: [64, 128, 128],
                                    metadata={"help": "Widths of the random ConvNet3D embedder."})
    embedding: str = field(default="pooled", metadata={
        "choices": ConvNet3D.EMBEDDINGS,
        "help": "What the embedder's features are: `pooled` (hf_vdd's default) a spatial max and temporal mean, "
                "128 numbers a clip; `flatten` the DM paper's and VDSD's, the whole last feature map flattened, "
                "which keeps where and when (at 16x64x64: 8,192 numbers)."})
    checkpoints_total_limit: int = field(default=3, metadata={"help": "Keep only the newest N checkpoints (0 = all)."})
    checkpointing_steps: int = field(default=0, metadata={"help": "Save a checkpoint every N iterations (0 = never)."})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "Where checkpoints go (recipes: "
                                                                      "<output_dir>.checkpoints)."})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "A checkpoint folder, or `latest` (newest in --checkpoint_dir)."})
    log_every: int = field(default=10, metadata={"help": "Record the loss every N iterations."})
