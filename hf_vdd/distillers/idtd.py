"""IDTD — Information Diversification and Temporal Densification (Video Set Distillation), Alg. 1 of the paper.

For each class `n` and instance `m`: a learnable Feature Pool `p` (`P` frames), `K` Feature Selectors (light linear
maps over the pool's frames) producing Diverse Segments `d_k = s_k(p)` of `L = ceil(T / K)` frames, and a Temporal
Fusor `f` (a light 1-D convolution along time over the concatenated segments, resampled to `T`) producing the
synthetic video `v`. Training minimises, class by class,

    L = L_M(D, T) + a1 * L_div + a2 * L_M(V', T),     V' = tau(V, mu) (Stochastic Temporal Augmentation)

with `L_M` the shared DM loss. **Diversity loss direction.** Eq. 1 as printed is a sum of squared distances
between segment features; minimising it would pull the segments together. We implement the intended direction:
`L_div` is the mean pairwise cosine similarity of segment embeddings, in [-1, 1] — minimising it pushes the segments
apart and it cannot diverge (a negated distance would be unbounded below).

Choices the paper leaves open (README "IDTD choices"): Diverse Segments have at least `min_segment_frames` (2)
frames, so K drops to T // 2 at T < 2K (the papers' T = 16, K = 8 is unchanged); `init="herding"` starts each pool
from a clip Herding selects (on toy-actions 6.9 points above `init="real"` over 7 paired seeds), `"real"` from a random
draw (the clips DM starts from at the same seed), both with the selectors as segment pickers, and `init="random"` is
Sec. 4.2's random pool and selectors; the fusor starts as the identity; the temporal
augmentation keeps >= `sta_min_fraction` (0.5) of the clip; `L_M(D, T)` matches the segments against one random real
window per iteration (`segment_window="aligned"`: each segment against the window at its own position).

Ablations: Tab. 3 `A` (compress-and-stitch: K real clips, temporally sub-sampled and stitched, no optimisation),
`B` (temporal densification only: learnable segments initialised from K real clips + fusor, no pool/selectors),
`C` (information diversification only: pool + selectors, segments stitched without a fusor); Tab. 4 via
`selector_matching`, `diversity`, `fusor_matching`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..data.decoding import denormalize, normalize
from ..data.temporal import stochastic_temporal_augmentation  # noqa: F401 - also public here
from .base import DistillationOutput, Distiller, register_distiller
from .coreset import herding_picks
from .engine import ClassParallelEngine
from .matching import (
    MatchingConfig,
    augment,
    derived_generator,
)

ABLATIONS = ("full", "A", "B", "C")


@dataclass
class IDTDConfig(MatchingConfig):
    iterations: int = field(default=1000, metadata={"help": "Optimisation iterations."})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate of pool, selectors, fusor (paper: 0.01)."})
    pool_optimizer: str = field(default="adam", metadata={
        "choices": ("adam", "sgd"),
        "help": "How the pixel tensors (Feature Pools; ablation B's segments) are optimised, which the paper does not "
                "say: `adam` at --lr with the selectors and fusor; `sgd`: DM's pixel optimiser (SGD at --pool_lr with "
                "--pool_momentum, IDTD's DM backbone), the selectors and fusor staying on Adam at --module_lr."})
    module_lr: float | None = field(default=None, metadata={"help": "Adam learning rate of the selectors and the "
                                                                    "fusor (default: --lr)."})
    pool_lr: float = field(default=10.0, metadata={"help": "SGD learning rate of the pixels with --pool_optimizer "
                                                           "sgd (DM's --lr_img: 10)."})
    pool_momentum: float = field(default=0.5, metadata={"help": "SGD momentum of the pixels with --pool_optimizer "
                                                                "sgd (DM's: 0.5)."})
    num_selectors: int = field(default=8, metadata={"help": "K, Feature Selectors per instance (paper: 8)."})
    min_segment_frames: int = field(default=2, metadata={
        "help": "Shortest Diverse Segment: when T / K is below it, K is lowered to T // min_segment_frames (with a "
                "warning; `stats['num_selectors']` records the K used). The paper's T = 16, K = 8 gives 2 frames; "
                "at T = 8 a K of 8 would make one-frame segments, which hold no motion. 1 keeps K as given."})
    init: str = field(default="herding", metadata={
        "choices": ("herding", "real", "random"),
        "help": "`herding` (hf_vdd's default since session 29, see the module docstring): each pool starts as a clip "
                "Herding selects at the same seed and selector k picks the pool's k-th segment; `real`: the same from "
                "a random draw of real clips (the ones DM's `--init real` starts from at the same seed; the default "
                "before session 29); `random`: the paper's (Sec. 4.2) randomly initialised pool (standard normal in "
                "normalised space) and linear selectors (nn.Linear's uniform init)."})
    alpha1: float = field(default=0.05, metadata={"help": "Weight of the diversity loss (paper: 0.05)."})
    alpha2: float = field(default=1e-4, metadata={"help": "Weight of the fused-video matching loss (paper: 1e-4)."})
    selector_matching: bool = field(default=True, metadata={"help": "Tab. 4: L_M on the Diverse Segments."})
    diversity: bool = field(default=True, metadata={"help": "Tab. 4: diversity loss among segments."})
    fusor_matching: bool = field(default=True, metadata={"help": "Tab. 4: L_M on the augmented fused video."})
    ablation: str = field(default="full", metadata={"choices": ABLATIONS, "help": "Tab. 3: full | A | B | C."})
    sta_min_fraction: float = field(default=0.5, metadata={"help": "Shortest interval kept by temporal augmentation."})
    segment_window: str = field(default="random", metadata={
        "choices": ("random", "aligned"),
        "help": "Which real frames L_M(D, T) matches the Diverse Segments against (the paper does not say): "
                "`random`: every segment against one window of L frames at a random start per iteration; "
                "`aligned`: segment k against the real window at its own position in the clip (frames k*L to "
                "(k+1)*L), so that the stitched segments keep the class's temporal order."})


class IDTDGenerator(nn.Module, PyTorchModelHubMixin, library_name="hf_vdd", tags=["hf_vdd", "idtd"]):
    """All learned IDTD state: per class `n`, instance `m` a pool, K selectors and a fusor.

    `forward(c)` → `(videos (M, T, C, S, S), segments (M, K, L, C, S, S))`, normalised space.
    """

    def __init__(self, num_classes: int, ipc: int, num_frames: int, frame_size: int, num_selectors: int = 8,
                 ablation: str = "full", channels: int = 3):
        super().__init__()
        if ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, got '{ablation}'.")
        self.num_classes, self.ipc, self.num_frames, self.frame_size = num_classes, ipc, num_frames, frame_size
        self.k, self.ablation = num_selectors, ablation
        self.seg_len = math.ceil(num_frames / num_selectors)
        m, k, seg, t, c, s = ipc, num_selectors, self.seg_len, num_frames, channels, frame_size
        pool_frames = t
        if ablation == "B":  # segments are learnable directly, no pool / selectors
            self.segments = nn.ParameterList([nn.Parameter(torch.zeros(m, k, seg, c, s, s))
                                              for _ in range(num_classes)])
        else:
            self.pool = nn.ParameterList([nn.Parameter(torch.zeros(m, pool_frames, c, s, s))
                                          for _ in range(num_classes)])
            self.sel_weight = nn.ParameterList([nn.Parameter(torch.zeros(m, k, seg, pool_frames))
                                                for _ in range(num_classes)])
            self.sel_bias = nn.ParameterList([nn.Parameter(torch.zeros(m, k, seg, c)) for _ in range(num_classes)])
        if ablation in ("full", "B"):
            eye = torch.zeros(c, c, 3)
            eye[:, :, 1] = torch.eye(c)
            self.fusor_weight = nn.ParameterList([nn.Parameter(eye.expand(m, c, c, 3).clone())
                                                  for _ in range(num_classes)])
            self.fusor_bias = nn.ParameterList([nn.Parameter(torch.zeros(m, c)) for _ in range(num_classes)])

    def class_parameters(self, c: int) -> list[nn.Parameter]:
        names = ("segments", "pool", "sel_weight", "sel_bias", "fusor_weight", "fusor_bias")
        return [getattr(self, n)[c] for n in names if hasattr(self, n)]

    def init_from_real(self, c: int, clips: torch.Tensor) -> None:
        """Initialise class `c` from `(M * K, T, C, S, S)` normalised real clips (the first M seed the pools)."""
        m, k, seg, t = self.ipc, self.k, self.seg_len, self.num_frames
        with torch.no_grad():
            if self.ablation == "B":
                idx = torch.linspace(0, t - 1, seg).round().long()
                self.segments[c].copy_(clips[: m * k, idx].reshape(m, k, seg, *clips.shape[2:]))
                return
            self.pool[c].copy_(clips[:m])
            # selector k initially picks the k-th temporal segment of the pool (plus a little noise)
            w = torch.zeros(m, k, seg, t)
            for j in range(k):
                for i in range(seg):
                    w[:, j, i, min(t - 1, (j * seg + i) * t // (k * seg))] = 1.0
            g = torch.Generator().manual_seed(c)
            self.sel_weight[c].copy_(w + 0.01 * torch.randn(w.shape, generator=g))

    def init_random(self, c: int, generator: torch.Generator) -> None:
        """The paper's initialisation of class `c` (Sec. 4.2): a standard-normal pool (normalised space) and
        selectors drawn like `nn.Linear` (uniform in +-1/sqrt(pool frames)). Ablation B's segments stay real
        (Tab. 3-B initialises them with K real videos)."""
        if self.ablation == "B":
            raise ValueError("Ablation B initialises its segments from K real clips; use init_from_real.")
        bound = 1.0 / math.sqrt(self.pool[c].shape[1])
        with torch.no_grad():
            self.pool[c].copy_(torch.randn(self.pool[c].shape, generator=generator))
            for p in (self.sel_weight[c], self.sel_bias[c]):
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)

    def segments_of(self, c: int) -> torch.Tensor:
        if self.ablation == "B":
            return self.segments[c]
        d = torch.einsum("mkst,mtchw->mkschw", self.sel_weight[c], self.pool[c])
        return d + self.sel_bias[c][..., None, None]

    def forward(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.segments_of(c)                                       # (M, K, L, C, S, S)
        m, k, seg, ch, s, _ = d.shape
        stitched = d.reshape(m, k * seg, ch, s, s)                    # concatenated along time
        if self.ablation in ("full", "B"):                            # Temporal Fusor: conv along time
            fused = []
            for i in range(m):  # each pixel's (C, K*L) sequence through instance i's conv (C -> C, kernel 3)
                x = stitched[i].permute(2, 3, 1, 0).reshape(s * s, ch, k * seg)
                y = F.conv1d(x, self.fusor_weight[c][i], self.fusor_bias[c][i], padding=1)
                fused.append(y.view(s, s, ch, k * seg).permute(3, 2, 0, 1))
            stitched = torch.stack(fused)
        return resample_time(stitched, self.num_frames), d


class _Joint:
    """Several optimisers over disjoint parameters, used as one (zero_grad, step, state_dict)."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    def zero_grad(self) -> None:
        for o in self.optimizers:
            o.zero_grad()

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)


def resample_time(videos: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear resampling of `(N, T, C, H, W)` along time to `num_frames` frames (differentiable)."""
    n, t, c, h, w = videos.shape
    if t == num_frames:
        return videos
    x = videos.permute(0, 2, 3, 4, 1).reshape(n, c * h * w, t)
    x = F.interpolate(x, size=num_frames, mode="linear", align_corners=True)
    return x.view(n, c, h, w, num_frames).permute(0, 4, 1, 2, 3)


def diversity_loss(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity of `(M, K, D)` segment embeddings; in [-1, 1], lower = more diverse."""
    z = F.normalize(embeddings, dim=-1)
    sim = z @ z.transpose(1, 2)                                       # (M, K, K)
    k = sim.shape[-1]
    off = torch.tensor([i * k + j for i in range(k) for j in range(k) if i != j], device=sim.device)
    return sim.flatten(1)[:, off].mean()  # the off-diagonal pairs (integer indices: no data-dependent shape)


@register_distiller
class IDTDDistiller(Distiller):
    """`IDTDDistiller(IDTDConfig(ipc=5))(train_set, accelerator)` → float `DistillationOutput`."""

    name = "idtd"
    config_class = IDTDConfig

    def __init__(self, config=None, generator: IDTDGenerator | None = None, **kwargs):
        super().__init__(config, **kwargs)  # the config refused an ablation, init, window or optimiser not offered
        if self.config.num_selectors < 1 or self.config.min_segment_frames < 1:
            raise ValueError(f"num_selectors and min_segment_frames must be >= 1, got {self.config.num_selectors} "
                             f"and {self.config.min_segment_frames}.")
        self.generator = generator

    def num_selectors(self, num_frames: int) -> int:
        """K as configured, or lowered so that every Diverse Segment has at least `min_segment_frames` frames."""
        cfg = self.config
        k = min(cfg.num_selectors, max(1, num_frames // max(1, cfg.min_segment_frames)))
        if k != cfg.num_selectors:
            warnings.warn(f"IDTD: {num_frames} frames with K={cfg.num_selectors} selectors would make segments of "
                          f"{math.ceil(num_frames / cfg.num_selectors)} frame(s), under min_segment_frames="
                          f"{cfg.min_segment_frames}; using K={k}. Pass --num_frames "
                          f"{cfg.num_selectors * cfg.min_segment_frames} to keep K={cfg.num_selectors}.", stacklevel=3)
        return k

    # ---- one class, one iteration ----------------------------------------------------------------------------
    def class_loss(self, net, sampler, c: int, it: int,
                   autocast=contextlib.nullcontext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """IDTD's loss of class `c` at iteration `it` and its detached parts, on the generator's device; the
        embedder's forwards run under `autocast()` (mixed precision), the losses in fp32."""
        cfg, gen = self.config, self.generator
        device = next(gen.parameters()).device
        real, g = sampler.batch(cfg.seed, it, c, cfg.batch_real)       # pixel space (B, T, C, S, S)
        real = real.to(device, non_blocking=True)
        aug_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        v, d = gen(c)
        m, k, seg = d.shape[:3]
        parts, total = {}, torch.zeros((), device=device)

        def emb(x):
            x = augment(x, torch.Generator().manual_seed(aug_seed), cfg.augment_strength)
            with autocast():
                return net.embed(normalize(x)).float()

        with torch.inference_mode():  # the frozen real side keeps no graph
            real_mean = emb(real).mean(0)
        real_mean = real_mean.clone()
        seg_pixels = denormalize(d.reshape(m * k, seg, *d.shape[3:]))
        if cfg.selector_matching or cfg.diversity:
            seg_emb = emb(seg_pixels)
            if cfg.selector_matching:  # L_M(D, T): segments against real windows of the same length
                start = int(torch.randint(0, real.shape[1] - seg + 1, (1,), generator=g))  # drawn in both modes
                aligned = cfg.segment_window == "aligned"  # segment j against the real window at its own position
                starts = [min(j * seg, real.shape[1] - seg) for j in range(k)] if aligned else [start]
                with torch.inference_mode():
                    real_win = torch.stack([emb(real[:, s:s + seg]).mean(0) for s in starts])  # (windows, D)
                real_win = real_win.clone()
                seg_mean = seg_emb.view(m, k, -1).mean(0) if aligned else seg_emb.mean(0, keepdim=True)
                parts["match_segments"] = ((real_win - seg_mean) ** 2).sum(1).mean()
                total = total + parts["match_segments"]
            if cfg.diversity and k > 1:
                parts["diversity"] = diversity_loss(seg_emb.view(m, k, -1))
                total = total + cfg.alpha1 * parts["diversity"]
        if cfg.fusor_matching:  # L_M(V', T) on the stochastically augmented fused video
            v_aug = stochastic_temporal_augmentation(denormalize(v), g, cfg.sta_min_fraction)
            parts["match_video"] = ((real_mean - emb(v_aug).mean(0)) ** 2).sum()
            total = total + cfg.alpha2 * parts["match_video"]
        return total, {key: val.detach() for key, val in parts.items()}

    def optimizer(self, c: int) -> torch.optim.Optimizer:
        """Class `c`'s optimiser: Adam on every parameter, or (`pool_optimizer="sgd"`) SGD with momentum on the
        pixel tensors and Adam on the selectors and fusor, stepped together."""
        cfg, gen = self.config, self.generator
        pixels = [getattr(gen, n)[c] for n in ("segments", "pool") if hasattr(gen, n)]
        modules = [p for p in gen.class_parameters(c) if all(p is not q for q in pixels)]
        module_lr = cfg.lr if cfg.module_lr is None else cfg.module_lr
        if cfg.pool_optimizer == "adam":
            return torch.optim.Adam([{"params": pixels}, {"params": modules, "lr": module_lr}], lr=cfg.lr)
        return _Joint(torch.optim.SGD(pixels, lr=cfg.pool_lr, momentum=cfg.pool_momentum),
                      torch.optim.Adam(modules, lr=module_lr))  # every trained ablation has selectors or a fusor

    def _set_class_parameters(self, c: int, values) -> None:
        with torch.no_grad():
            for p, value in zip(self.generator.class_parameters(c), values):
                p.copy_(value)

    # ---- main ---------------------------------------------------------------------------------------------------
    def __call__(self, train_set, accelerator=None) -> DistillationOutput:
        cfg = self.config
        # 1. check the request, split classes across processes
        self.check(train_set)
        self.remember(train_set)
        train = cfg.ablation != "A"  # A: compress and stitch, nothing is optimised
        engine = ClassParallelEngine(self, train_set, accelerator, desc=f"IDTD[{cfg.ablation}]",
                                     total=cfg.iterations if train else 0)
        classes = engine.classes
        by_class = train_set.indices_per_class()
        # 2. build the generator and initialise it from real clips or noise (seeded per class)
        if self.generator is None:
            k = self.num_selectors(train_set.num_frames)
            kind = {"full": "full", "A": "B", "B": "B", "C": "C"}[cfg.ablation]  # A = B's stitch, untrained
            self.generator = IDTDGenerator(train_set.num_classes, cfg.ipc, train_set.num_frames, train_set.frame_size,
                                           k, kind)
            herded = herding_picks(train_set, cfg.ipc, cfg.seed, accelerator) if cfg.init == "herding" else None
            for c, idx in by_class.items():
                g = derived_generator(cfg.seed, 1 << 30, c)
                if cfg.init == "random" and kind != "B":
                    self.generator.init_random(c, g)
                    continue
                # the pools: DM's clips at this seed, or Herding's; drawn either way, so the extra clips stay `real`'s
                first = idx[torch.randperm(len(idx), generator=g)[: cfg.ipc].numpy()]
                pick = np.concatenate([first if herded is None else herded[c],
                                       idx[torch.randint(0, len(idx), (cfg.ipc * (k - 1),), generator=g).numpy()]])
                self.generator.init_from_real(c, normalize(train_set.stack(pick, train=False)))
        self.generator.to(engine.device)  # initialised on the CPU (same values everywhere), trained on the device
        if train:
            optimizers = {c: self.optimizer(c) for c in classes}
            start, state = 0, engine.resume()
            if state is not None:
                start = state["iteration"]
                for c in classes:
                    params, opt_state = state["classes"][c]
                    self._set_class_parameters(c, params)
                    optimizers[c].load_state_dict(opt_state)
                engine.bar.update(start)
            sampler = engine.real_batches(train_set, [(it, c) for it in range(start, cfg.iterations) for c in classes],
                                          cfg.batch_real)

            def step(it: int) -> torch.Tensor:  # 3. class-by-class updates, with a fresh frozen embedder
                net = engine.embedder(cfg.seed, it, train_set.num_classes, cfg.embed_widths)
                total = torch.zeros((), device=engine.device)
                for c in classes:
                    loss, _ = self.class_loss(net, sampler, c, it, engine.autocast)
                    optimizers[c].zero_grad()
                    loss.backward()
                    optimizers[c].step()
                    total += loss.detach()
                return total

            engine.loop(range(start, cfg.iterations), step,
                        state=lambda done: {c: ([p.detach().clone() for p in self.generator.class_parameters(c)],
                                           optimizers[c].state_dict()) for c in classes})
        # 4. synthesization pass (no augmentation), gathered on every process
        with torch.no_grad():
            local = {c: (denormalize(self.generator(c)[0]), [p.detach() for p in self.generator.class_parameters(c)])
                     for c in classes}
        merged = engine.gather(local)
        self.generator.cpu()  # every class's learned parameters, saved with `save_pretrained`
        for c, (_, params) in merged.items():
            self._set_class_parameters(c, params)
        videos = torch.cat([merged[c][0] for c in range(train_set.num_classes)])
        labels = torch.arange(train_set.num_classes).repeat_interleave(cfg.ipc)
        return DistillationOutput(
            videos=videos, labels=labels, class_names=train_set.class_names,
            method=self.name if cfg.ablation == "full" else f"{self.name}-{cfg.ablation}", ipc=cfg.ipc,
            source=train_set.name.split(":")[0], frame_size=train_set.frame_size, num_frames=train_set.num_frames,
            seed=cfg.seed, config=cfg.to_dict(), stats=engine.stats() | {"num_selectors": self.generator.k,
                                                                          "segment_frames": self.generator.seg_len})

    # ---- learned state on the Hub (Distiller is a ModelHubMixin) -----------------------------------------------
    @property
    def parts(self) -> str:
        gen = self.generator
        return ("`generator/`: Feature Pool + Feature Selectors + Temporal Fusor per instance" if gen is None else
                f"`generator/`: Feature Pool + {gen.k} Feature Selectors + Temporal Fusor per instance (ablation "
                f"{gen.ablation})")

    def save_parts(self, folder: Path) -> None:
        """`generator/` (PyTorchModelHubMixin: config.json, model.safetensors)."""
        if self.generator is None:
            raise ValueError("Nothing to save: run the distiller (or pass a generator) first.")
        self.generator.save_pretrained(folder / "generator")

    def load_parts(self, folder: Path) -> None:
        self.generator = IDTDGenerator.from_pretrained(folder / "generator")
