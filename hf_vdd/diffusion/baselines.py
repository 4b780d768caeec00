"""The paper's selection baselines over a generation pool (Video Dataset Condensation with Diffusion Models, Sec. 4.2,
Tab. 3-4): CSTA and DM-MMD, selectors like those of `selectors.py` (`__call__(pool)` → VPC videos per class).

- `csta` (Son et al., CVPR 2024, "CNN-based spatiotemporal attention for video summarization"), as the paper uses
  it: each generated video is one VideoMAE embedding, a class's `N_c` embeddings are stacked into `I_c` `(N_c, D)`
  and scored like the frames of one video, then a knapsack keeps the most representative videos. Departures,
  stated: the paper feeds a *pretrained* CSTA (trained on TVSum/SumMe frame-importance labels; no weights in this
  offline setting). Here a light CSTA-style network (a 2-D CNN over `I_c` as a one-channel image → an attention map
  `(N_c, D)` softmaxed over the videos, added to the features, then an MLP regressor → one score per video) is trained
  on the pool itself; generated videos have no importance labels, so its training signal is the class
  cross-entropy of the score-weighted class feature (videos that carry the class get high scores). Rows are
  shuffled each epoch (the order of generated videos means nothing). Every video has length 1, so the 0/1 knapsack
  with capacity VPC is exactly the top-VPC scores. Seeded (initialisation and row order).
- `dm-mmd`: distribution matching (Zhao & Bilen's DM: random ConvNet embeddings) with k-means and the Maximum Mean
  Discrepancy. Real clips of the class and the class's generated videos are embedded by one randomly initialised
  ConvNet3D (`fresh_embedder(seed)`, as DM; or the VideoMAE `encoder` with `embedder="videomae"`); the real
  embeddings are summarised by k-means into `kmeans_clusters` centroids weighted by their sizes; then VPC generated
  videos are chosen greedily, each step adding the one that minimises the RBF-kernel MMD² between the chosen set and
  the weighted real centroids (bandwidth: median pairwise distance). Departure, stated: the paper's DM-MMD makes
  synthetic *features* with a DCGAN aligned with the clustered embeddings; a selector picks existing generated
  videos instead. Seeded through the random embedder and the k-means initialisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..distillers.base import register_distiller
from ..utils import progress
from .pool import fit_videos
from .selectors import SelectorConfig, _PoolSelector, _require_encoder, videomae_embeddings


# ---- CSTA -------------------------------------------------------------------------------------------------------
@dataclass
class CSTAConfig(SelectorConfig):
    epochs: int = field(default=100, metadata={"help": "Training epochs (one Adam step over every class each)."})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    channels: int = field(default=8, metadata={"help": "Channels of the attention CNN."})
    hidden: int = field(default=64, metadata={"help": "Width of the score regressor."})


class CSTANet(nn.Module):
    """Scores the rows of a class matrix `I_c` `(N, D)` (standardised video embeddings): returns `(scores (N,) in
    (0, 1), logits (num_classes,))`, the logits those of the score-weighted mean of the attended rows."""

    def __init__(self, dim: int, num_classes: int, channels: int = 8, hidden: int = 64):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(channels, 1, 3, padding=1))
        self.regressor = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = torch.softmax(self.attention(x[None, None])[0, 0], dim=0)  # over the videos, per feature column
        y = x + att * len(x) * x  # attention-weighted features added to the input (CSTA's fusion)
        score = self.regressor(y).squeeze(-1)
        pooled = (torch.softmax(score, 0)[:, None] * y).sum(0)
        return torch.sigmoid(score), self.head(pooled)


@register_distiller
class CSTASelector(_PoolSelector):
    """CSTA: a CNN with spatiotemporal attention scores each class's video embeddings; knapsack = top-VPC scores."""

    name = "csta"
    config_class = CSTAConfig

    def fit(self, feats: dict[int, torch.Tensor], show: bool = False) -> list[float]:
        """Train a fresh `CSTANet` on `{class: (N_c, D)}`; returns the loss per epoch."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        dim = next(iter(feats.values())).shape[1]
        self.model = CSTANet(dim, len(feats), cfg.channels, cfg.hidden)
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        gen, curve = torch.Generator().manual_seed(cfg.seed), []
        for _ in progress(range(cfg.epochs), desc="CSTA", disable=not show, leave=False):
            opt.zero_grad()
            loss = sum(F.cross_entropy(self.model(x[torch.randperm(len(x), generator=gen)])[1][None],
                                       torch.tensor([c])) for c, x in feats.items()) / len(feats)
            loss.backward()
            opt.step()
            curve.append(float(loss.detach()))
        self.model.eval()
        return curve

    def prepare(self, pool, show):
        emb = videomae_embeddings(_require_encoder(self.config, "CSTA"), pool.videos, self.config.batch_size, show,
                                  self.device, self.autocast)
        x = torch.as_tensor(emb, dtype=torch.float32)
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)  # standardised over the pool: one scale for every class
        feats = {c: x[torch.as_tensor(idx)] for c, idx in pool.indices_per_class().items()}
        self.extra_stats = {"loss_curve": self.fit(feats, show)}
        with torch.no_grad():
            return {c: self.model(f)[0] for c, f in feats.items()}

    def select_class(self, pool, idx, c, scores):
        # 0/1 knapsack with unit lengths and capacity VPC: the VPC highest scores (stable order on ties)
        return np.argsort(-scores[c].numpy(), kind="stable")[:self.config.ipc]


# ---- DM-MMD -----------------------------------------------------------------------------------------------------
@dataclass
class DMMMDConfig(SelectorConfig):
    embedder: str = field(default="convnet3d", metadata={
        "help": "convnet3d (a random ConvNet3D, as DM) or videomae (the --encoder's mean-pooled features).",
        "choices": ("convnet3d", "videomae")})
    real_per_class: int = field(default=100, metadata={"help": "Real clips embedded per class (a seeded subset)."})
    kmeans_clusters: int = field(default=10, metadata={
        "help": "k-means centroids summarising a class's real embeddings (capped by its clips; 0 = every clip)."})


def rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth ** 2))


def greedy_mmd(candidates: torch.Tensor, target: torch.Tensor, k: int, weights: torch.Tensor | None = None) -> list:
    """Positions of `k` rows of `candidates` `(N, D)` chosen greedily to minimise the RBF MMD² between them and the
    (weighted) `target` rows `(M, D)`; bandwidth: the median pairwise distance of all rows."""
    x, y = candidates.double(), target.double()
    w = torch.full((len(y),), 1.0 / len(y), dtype=x.dtype) if weights is None else weights.double() / weights.sum()
    both = torch.cat([x, y])
    dist = torch.cdist(both, both)
    bandwidth = float(dist[dist > 0].median()) if (dist > 0).any() else 1.0
    kxx, kxy = rbf(x, x, bandwidth), rbf(x, y, bandwidth) @ w  # (N, N), (N,)
    chosen: list[int] = []
    for _ in range(k):
        n = len(chosen) + 1
        # MMD² of chosen ∪ {j} up to the constant target term: mean k(s, s') - 2 mean_s sum_r w_r k(s, r)
        self_sim = kxx[chosen].sum(0) if chosen else torch.zeros(len(x), dtype=x.dtype)
        inner = kxx[chosen][:, chosen].sum() if chosen else 0.0
        cost = (inner + 2 * self_sim + kxx.diagonal()) / n ** 2 - 2 * (kxy[chosen].sum() + kxy) / n
        cost[chosen] = float("inf")
        chosen.append(int(cost.argmin()))
    return chosen


@register_distiller
class DMMMDSelector(_PoolSelector):
    """DM-MMD: the VPC generated videos whose embeddings best match (MMD) the k-means summary of the real class."""

    name = "dm-mmd"
    config_class = DMMMDConfig
    needs_real = True

    def _embed(self, videos: torch.Tensor, net) -> torch.Tensor:
        """`(N, D)` fp32 embeddings of uint8 `(N, T, C, H, W)` videos."""
        cfg = self.config
        if net is None:
            return torch.as_tensor(videomae_embeddings(_require_encoder(cfg, "DM-MMD (videomae)"), videos,
                                                       cfg.batch_size, False, self.device, self.autocast))
        from ..teacher import Teacher

        frozen = Teacher(net, videos.shape[1], videos.shape[-1], source="random ConvNet3D")  # batched, on its device
        frozen.autocast = self.autocast
        return frozen.features(videos, cfg.batch_size)

    def prepare(self, pool, show):
        from sklearn.cluster import KMeans

        from ..distillers.matching import fresh_embedder

        cfg, real, t0 = self.config, self.real, time.perf_counter()
        net = fresh_embedder(cfg.seed, 0, pool.num_classes, device=self.device) if cfg.embedder == "convnet3d" \
            else None
        videos = fit_videos(pool.videos, real.num_frames, real.frame_size) if net is not None else pool.videos
        syn = self._embed(videos, net)
        rng, targets = np.random.default_rng(cfg.seed), {}
        for c, idx in real.indices_per_class().items():
            if len(idx) == 0:
                raise ValueError(f"DM-MMD: the real split has no clip of class {real.class_names[c]!r}.")
            idx = np.sort(rng.choice(idx, size=min(cfg.real_per_class, len(idx)), replace=False))
            clips = (real.stack(idx) * 255).round().to(torch.uint8)  # deterministic clips
            emb = self._embed(clips, net)
            k = min(cfg.kmeans_clusters, len(emb))
            if k == 0 or k == len(emb):
                targets[c] = (emb, torch.ones(len(emb)))
            else:
                km = KMeans(n_clusters=k, n_init=3, random_state=cfg.seed).fit(emb.double().numpy())
                targets[c] = (torch.as_tensor(km.cluster_centers_), torch.as_tensor(np.bincount(km.labels_,
                                                                                                 minlength=k)))
        self.extra_stats = {"embed_seconds": time.perf_counter() - t0, "embedder": cfg.embedder}
        return syn, targets

    def select_class(self, pool, idx, c, context):
        syn, targets = context
        centres, weights = targets[c]
        return np.asarray(greedy_mmd(syn[torch.as_tensor(idx)], centres, self.config.ipc, weights))
