"""Distribution Matching (Zhao & Bilen, 2023) for videos: SGD on synthetic pixels so that their mean embedding under
a freshly initialised, frozen ConvNet3D matches the real class's, every iteration. The backbone of IDTD and DAViD.

Classes are split across processes (`accelerate launch --num_processes N`); the result equals a 1-process run with
the same seed, because every random draw is derived from `(seed, iteration, class)`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from ..data.decoding import denormalize, normalize
from ..utils import HfVddError
from .base import DistillationOutput, Distiller, register_distiller
from .coreset import herding_picks
from .engine import ClassParallelEngine
from .matching import (
    ClassSampler,
    MatchingConfig,
    derived_generator,
    dm_loss,
    dm_losses,
    fresh_embedder,
)


@dataclass
class DMConfig(MatchingConfig):
    iterations: int = field(default=5000, metadata={"help": "Distillation iterations (DAViD/VDSD: 5000)."})
    lr_img: float = field(default=10.0, metadata={"help": "SGD learning rate on normalised pixels (DAViD: 10)."})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum on pixels (DM paper: 0.5). DAViD's 0.95 "
                                                           "diverged within 25 iterations with this embedder."})
    init: str = field(default="real", metadata={
        "choices": ("real", "noise", "herding"),
        "help": "Initialise synthetic videos from `real` clips drawn at random (the DM paper's), `noise`, or the "
                "clips `herding` selects at the same seed (a coreset start; DM then refines the Herding set)."})
    eval_every: int = field(default=0, metadata={"help": "Evaluate the current set every N iterations (0 = never; "
                                                         "needs an eval_set)."})
    periodic_eval_steps: int = field(default=100, metadata={"help": "Student steps of each periodic evaluation."})
    class_batch: int = field(default=1, metadata={
        "help": "Classes whose clips share one embedder forward (real and synthetic). 1 = class by class (default: "
                "the lowest memory, byte-identical to earlier runs); on a GPU a larger value (e.g. all classes) gives "
                "fewer, larger kernels. Same losses up to float rounding."})

    def __post_init__(self):
        super().__post_init__()
        if self.class_batch < 1:
            raise HfVddError(f"class_batch must be >= 1, got {self.class_batch}.")


@register_distiller
class DMDistiller(Distiller):
    """`DMDistiller(DMConfig(ipc=5))(train_set, accelerator)` → float `DistillationOutput` (pixel space)."""

    name = "dm"
    config_class = DMConfig

    # ---- pieces reused by IDTD / DAViD --------------------------------------------------------------------
    def init_synthetic(self, train_set, classes: list[int], device=None, accelerator=None) -> dict[int, torch.Tensor]:
        """`{class: (ipc, T, C, S, S)}` leaf tensors in *normalised* space (drawn on the CPU, then on `device`)."""
        syn = {}
        by_class = train_set.indices_per_class() if self.config.init == "real" else None
        herded = (herding_picks(train_set, self.config.ipc, self.config.seed, accelerator)
                  if self.config.init == "herding" else None)
        for c in classes:
            g = derived_generator(self.config.seed, 1 << 30, c)
            if self.config.init in ("real", "herding"):
                if herded is None:
                    idx = by_class[c]
                    pick = idx[torch.randperm(len(idx), generator=g)[: self.config.ipc].numpy()]
                else:
                    pick = herded[c]
                x = normalize(train_set.stack(pick, train=False))
            elif self.config.init == "noise":
                t, s = train_set.num_frames, train_set.frame_size
                x = torch.randn(self.config.ipc, t, 3, s, s, generator=g)
            else:
                raise ValueError(f"init must be 'real', 'noise' or 'herding', got '{self.config.init}'.")
            syn[c] = x.to(device).requires_grad_(True) if device is not None else x.clone().requires_grad_(True)
        return syn

    def class_loss(self, net, sampler: ClassSampler, it: int, c: int, syn_pixels: torch.Tensor,
                   autocast=contextlib.nullcontext) -> torch.Tensor:
        """DM loss of class `c` at iteration `it` (real batch and augmentation drawn from `(seed, it, c)`), on the
        device of `syn_pixels`."""
        real, seed = self._real(sampler, it, c, syn_pixels.device)
        return dm_loss(net, real, syn_pixels, seed, self.config.augment_strength, autocast)

    def chunk_losses(self, net, sampler: ClassSampler, it: int, syn_pixels: dict[int, torch.Tensor],
                     autocast=contextlib.nullcontext) -> dict[int, torch.Tensor]:
        """`class_loss` of every class in `syn_pixels`, in one embedder forward per side (`dm_losses`; one class:
        `class_loss` itself)."""
        real, seeds = {}, {}
        for c, x in syn_pixels.items():
            real[c], seeds[c] = self._real(sampler, it, c, x.device)
        return dm_losses(net, real, syn_pixels, seeds, self.config.augment_strength, autocast, len(syn_pixels))

    def _real(self, sampler: ClassSampler, it: int, c: int, device) -> tuple[torch.Tensor, int]:
        """Class `c`'s real batch at iteration `it` on `device` and the seed of its augmentation draw."""
        real, g = sampler.batch(self.config.seed, it, c, self.config.batch_real)
        return real.to(device, non_blocking=True), int(torch.randint(0, 2**31 - 1, (1,), generator=g))

    def class_losses(self, net, sampler: ClassSampler, it: int, syn_pixels: dict[int, torch.Tensor]) -> dict:
        """`class_loss` of each class in `syn_pixels`."""
        return {c: self.class_loss(net, sampler, it, c, x) for c, x in syn_pixels.items()}

    def step(self, sampler: ClassSampler, it: int, syn: dict[int, torch.Tensor], momentum: dict,
             num_classes: int, expand=None, engine=None) -> torch.Tensor:
        """One DM iteration on every class in `syn` (in place): fresh embedder, then class by class (`class_batch`
        classes at a time) the DM loss and SGD with momentum (the losses are separable, so each chunk's graph is freed
        before the next one's, and one backward of a chunk's summed loss gives each class its own gradient).

        `syn[c]`: leaf tensor in normalised space on the working device; `expand(c, x)` maps it to the
        `(M, T, C, S, S)` clip the embedder sees (DAViD's Temporal Partitioning); default identity. `engine` (a
        `ClassParallelEngine`) supplies the embedder (compiled under `--compile`) and the mixed-precision autocast;
        without it, a plain embedder in fp32. Returns the summed loss (detached, on the device)."""
        cfg = self.config
        if engine is not None:
            net, autocast = engine.embedder(cfg.seed, it, num_classes, cfg.embed_widths), engine.autocast
        else:
            device = next(iter(syn.values())).device
            net = fresh_embedder(cfg.seed, it, num_classes, cfg.embed_widths, device, cfg.embedding)
            autocast = contextlib.nullcontext
        total, classes, k = 0, list(syn), max(1, cfg.class_batch)
        for i in range(0, len(classes), k):
            chunk = classes[i:i + k]
            pixels = {c: denormalize(expand(c, syn[c]) if expand else syn[c]) for c in chunk}
            losses = self.chunk_losses(net, sampler, it, pixels, autocast)
            grads = torch.autograd.grad(sum(losses.values()), [syn[c] for c in chunk])
            with torch.no_grad():
                for c, grad in zip(chunk, grads):
                    momentum[c] = grad if momentum.get(c) is None else cfg.momentum * momentum[c] + grad
                    syn[c] -= cfg.lr_img * momentum[c]
            total = total + sum(loss.detach() for loss in losses.values())
        return total

    # ---- main loop ----------------------------------------------------------------------------------------------
    def _gathered(self, engine: ClassParallelEngine, syn: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Every class's synthetic videos in pixel space, on every process (CPU), and their labels."""
        merged = engine.gather({c: denormalize(syn[c].detach()) for c in syn})
        videos = torch.cat([merged[c] for c in range(engine.num_classes)])
        return videos, torch.arange(engine.num_classes).repeat_interleave(self.config.ipc)

    def _evaluate(self, engine: ClassParallelEngine, syn: dict, eval_set) -> float:
        from ..data.distilled import TensorVideoSet
        from ..training import TrainConfig, evaluate_distilled

        report = evaluate_distilled(TensorVideoSet(*self._gathered(engine, syn)), eval_set,
                                    TrainConfig(runs=1, steps=self.config.periodic_eval_steps, seed=self.config.seed,
                                                show_progress=False), accelerator=engine.accelerator)
        return report.top1["mean"]

    def __call__(self, train_set, accelerator=None, eval_set=None) -> DistillationOutput:
        """Distil `train_set`; with `eval_every > 0` and an `eval_set` (real test split), track accuracy."""
        cfg = self.config
        # 1. check the request; the engine splits classes across processes
        self.check(train_set)
        engine = ClassParallelEngine(self, train_set, accelerator, desc="DM")
        # 2. initialise (or resume) synthetic videos and their momentum buffers
        state = engine.resume()
        if state is not None:
            start = state["iteration"]
            syn = {c: state["classes"][c][0].clone().requires_grad_(True) for c in engine.classes}  # on the device
            momentum = {c: state["classes"][c][1] for c in engine.classes}
            engine.bar.update(start)
        else:
            start, momentum = 0, {c: None for c in engine.classes}
            syn = self.init_synthetic(train_set, engine.classes, engine.device, accelerator)
        eval_curve = []
        # the real batches, decoded ahead in the order the loop asks for them
        sampler = engine.real_batches(train_set, [(it, c) for it in range(start, cfg.iterations)
                                                  for c in engine.classes], cfg.batch_real)

        def evaluate(done: int) -> None:
            if cfg.eval_every and eval_set is not None and done % cfg.eval_every == 0:
                eval_curve.append((done, self._evaluate(engine, syn, eval_set)))
                engine.bar.write(f"DM iteration {done}: top-1 {eval_curve[-1][1]:.1f}")

        # 3. iterate: fresh frozen embedder, class-by-class loss and SGD-with-momentum on pixels
        engine.loop(range(start, cfg.iterations),
                    step=lambda it: self.step(sampler, it, syn, momentum, train_set.num_classes, engine=engine),
                    state=lambda done: {c: (syn[c].detach(), momentum[c]) for c in engine.classes},
                    hooks=(evaluate,))
        # 4. gather every class on every process and return pixel-space videos
        videos, labels = self._gathered(engine, syn)
        return DistillationOutput(
            videos=videos, labels=labels, class_names=train_set.class_names, method=self.name, ipc=cfg.ipc,
            source=train_set.name.split(":")[0], frame_size=train_set.frame_size, num_frames=train_set.num_frames,
            seed=cfg.seed, config=cfg.to_dict(), stats=engine.stats() | {"eval_curve": eval_curve})
