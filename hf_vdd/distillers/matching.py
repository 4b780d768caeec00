"""Shared matching machinery (DM, IDTD, DAViD): DM loss, differentiable augmentation, per-class real batches.

Everything stochastic is derived from `(seed, iteration, class)`, so a class's update does not depend on which
process handles it or on how many processes there are: a class-parallel run equals a 1-process run.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.decoding import normalize
from ..models import ConvNet3D


def derived_generator(*keys: int) -> torch.Generator:
    """A `torch.Generator` seeded from integer keys, e.g. `(seed, iteration, class_id)`."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0]))


def fresh_embedder(seed: int, iteration: int, num_classes: int, widths=(64, 128, 128)) -> ConvNet3D:
    """A randomly initialised ConvNet3D for one DM iteration, frozen (DM samples a new network every iteration)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(derived_generator(seed, iteration, 1 << 20).initial_seed())
    net = ConvNet3D(num_classes=num_classes, widths=tuple(widths)).eval()
    torch.random.set_rng_state(state)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


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
            augment_strength: float = 1.0) -> torch.Tensor:
    """Distribution-matching loss of one class: `||mean embed(real) - mean embed(syn)||^2`.

    `real`: `(B, T, C, H, W)` and `syn`: `(M, T, C, H, W)`, pixel space; `seed` drives the shared augmentation.
    """
    if seed is not None and augment_strength > 0:
        real = augment(real, torch.Generator().manual_seed(seed), augment_strength)
        syn = augment(syn, torch.Generator().manual_seed(seed), augment_strength)
    with torch.no_grad():
        target = net.embed(normalize(real)).mean(0)
    return ((target - net.embed(normalize(syn)).mean(0)) ** 2).sum()


def dm_losses(net: ConvNet3D, real: dict[int, torch.Tensor], syn: dict[int, torch.Tensor],
              seeds: dict[int, int] | None = None, augment_strength: float = 1.0) -> dict[int, torch.Tensor]:
    """`dm_loss` for several classes with one forward pass for all real and one for all synthetic clips.

    Same values as calling `dm_loss` class by class (each class keeps its own augmentation seed), but faster:
    a few large convolutions instead of many small ones.
    """
    classes = list(syn)
    if seeds is not None and augment_strength > 0:
        real = {c: augment(real[c], torch.Generator().manual_seed(seeds[c]), augment_strength) for c in classes}
        syn = {c: augment(syn[c], torch.Generator().manual_seed(seeds[c]), augment_strength) for c in classes}
    with torch.no_grad():
        real_emb = net.embed(normalize(torch.cat([real[c] for c in classes]))).split([len(real[c]) for c in classes])
    syn_emb = net.embed(normalize(torch.cat([syn[c] for c in classes]))).split([len(syn[c]) for c in classes])
    return {c: ((r.mean(0) - s.mean(0)) ** 2).sum() for c, r, s in zip(classes, real_emb, syn_emb)}


class ClassSampler:
    """Per-class real batches: `sample(c, n, generator)` → `(n, T, C, H, W)` clips of class `c` (random starts)."""

    def __init__(self, train_set):
        self.train_set = train_set
        self.by_class = train_set.indices_per_class()

    def sample(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = self.by_class[c]
        pick = idx[torch.randperm(len(idx), generator=generator)[: min(n, len(idx))].numpy()]
        return self.train_set.stack(pick, train=True, generator=generator)


def split_classes(num_classes: int, num_processes: int, process_index: int) -> list[int]:
    """Contiguous block of class ids for one process (same split as `Accelerator.split_between_processes`)."""
    per = math.ceil(num_classes / num_processes)
    return list(range(process_index * per, min(num_classes, (process_index + 1) * per)))


def process_classes(num_classes: int, accelerator=None) -> tuple[list[int], int]:
    """The class ids this process distils, and the number of processes."""
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    return split_classes(num_classes, world, rank), world


# ---- class-parallel state: gather, checkpoint, resume (shared by DM, IDTD, DAViD) ------------------------------
def gather_classes(local: dict, accelerator=None) -> dict:
    """Merge `{class: value}` dicts from every process (every process receives the union)."""
    from accelerate.utils import gather_object

    if accelerator is None or accelerator.num_processes == 1:
        return dict(local)
    return {k: v for part in gather_object([local]) for k, v in part.items()}


def save_checkpoint(folder, iteration: int, local_state: dict, losses: list, config: dict, accelerator=None) -> None:
    """Gather every class's state and write `folder/checkpoint-<iteration>/` atomically on the main process."""
    import json
    from pathlib import Path

    from ..utils import atomic_folder

    merged = gather_classes(local_state, accelerator)
    if accelerator is None or accelerator.is_main_process:
        with atomic_folder(Path(folder or ".") / f"checkpoint-{iteration}") as tmp:
            torch.save({"iteration": iteration, "classes": merged, "losses": losses}, tmp / "state.pt")
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
    if accelerator is not None:
        accelerator.wait_for_everyone()


def load_checkpoint(path: str, folder: str | None) -> dict:
    """Read a checkpoint written by `save_checkpoint`; `path="latest"` takes the newest one in `folder`."""
    from pathlib import Path

    if path == "latest":
        ckpts = sorted(Path(folder or ".").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        if not ckpts:
            raise FileNotFoundError(f"No checkpoint-* folder in {folder}; nothing to resume from.")
        path = ckpts[-1]
    state_file = Path(path) / "state.pt"
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} not found; pass a checkpoint-<N> folder or `latest`.")
    return torch.load(state_file, weights_only=False)
