"""IDTD's Stochastic Temporal Augmentation (Zhao et al., Sec. 3.3 and 4.3): keep a random temporal interval of a
clip and resample it back to the clip's length. IDTD applies it to the fused synthetic videos while distilling and
to the student's training clips when evaluating (`TrainConfig.temporal_augmentation`)."""

from __future__ import annotations

import torch


def stochastic_temporal_augmentation(videos: torch.Tensor, generator: torch.Generator | None,
                                     min_fraction: float = 0.5) -> torch.Tensor:
    """tau(v, mu): keep a random interval mu = [s, e] of the clip (e - s >= min_fraction), resize back to T.

    One interval for the whole `(N, T, C, H, W)` batch, drawn from `generator` (CPU); linear in time, so
    differentiable."""
    t = videos.shape[1]
    length = min_fraction + (1 - min_fraction) * float(torch.rand(1, generator=generator))
    start = (1 - length) * float(torch.rand(1, generator=generator))
    pos = torch.linspace(start, start + length, t, device=videos.device) * (t - 1)
    lo = pos.floor().long().clamp(0, t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    frac = (pos - lo.float()).view(1, t, 1, 1, 1)
    return videos[:, lo] * (1 - frac) + videos[:, hi] * frac


def augment_each(videos: torch.Tensor, generators: list[torch.Generator | None],
                 min_fraction: float) -> torch.Tensor:
    """`stochastic_temporal_augmentation` with its own interval for every video (one generator each)."""
    return torch.cat([stochastic_temporal_augmentation(videos[i:i + 1], g, min_fraction)
                      for i, g in enumerate(generators)])
