"""Is a generation pool any good? Two measurements the diffusion paper's claims rest on (issue: a pool whose
videos a real-data classifier cannot tell apart makes every selector look like chance).

- `real_like_pool(train_set, per_class, seed)`: a random real train subset with as many clips per class as the
  pool, the fair reference of "a student on the whole generated pool" (same count, real footage).
- `pool_recognisability(pool, classifier, ...)`: a classifier trained on the real train split labels the pool's
  videos (resized to the classifier's shape); its accuracy per class says which classes the generator has learnt.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.distilled import TensorVideoSet
from .pool import fit_videos


def real_like_pool(train_set, per_class: int, seed: int = 0):
    """`per_class` random clips of every class of the real `train_set` (seeded; every clip when a class has fewer),
    as a subset that keeps the train split's own clip sampling."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}.")
    g = np.random.default_rng(seed)
    keep = [np.sort(g.permutation(idx)[:per_class]) for idx in train_set.indices_per_class().values()]
    return train_set.subset(np.sort(np.concatenate(keep)))


def pool_recognisability(pool, classifier: torch.nn.Module, num_frames: int, frame_size: int, config=None,
                         accelerator=None, videos: torch.Tensor | None = None) -> dict:
    """Top-1 of `classifier` (trained on real clips at `num_frames` x `frame_size`) on `pool`'s videos, overall and
    per class name; chance is `1 / pool.num_classes`. `videos`: the pool already fitted to that shape, float in
    [0, 1] (as `fit_videos(pool.videos, T, S) / 255`), to skip fitting it again."""
    from ..training import TrainConfig, predict

    if videos is None:
        videos = fit_videos(pool.videos, num_frames, frame_size).float() / 255.0
    elif tuple(videos.shape) != (len(pool), num_frames, pool.videos.shape[2], frame_size, frame_size):
        raise ValueError(f"videos has shape {tuple(videos.shape)}, expected the pool's {len(pool)} videos at "
                         f"{num_frames} x {frame_size} x {frame_size}.")
    probs, labels = predict(classifier, TensorVideoSet(videos, torch.as_tensor(pool.labels)), config or TrainConfig(),
                            accelerator)
    right = probs.argmax(1) == labels
    per_class = {name: round(100.0 * float(right[labels == c].mean()), 1)
                 for c, name in enumerate(pool.class_names) if (labels == c).any()}
    return {"top1": round(100.0 * float(right.mean()), 1), "chance": round(100.0 / pool.num_classes, 1),
            "per_class": per_class}
