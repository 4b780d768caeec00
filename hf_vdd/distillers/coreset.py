"""Coreset baselines: Random, Herding and K-Center selection of real clips (VDSD's baselines).

Herding and K-Center work on ConvNet3D `embed()` features of each clip (deterministic centre clip), from a
randomly initialised network (seeded) or a given teacher (`feature_model`: a folder or Hub id of a saved
ConvNet3D). Selected clips are stored as uint8 frames `(T, C, H, W)` with their `source_index`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.decoding import normalize
from ..data.loading import VideoClassificationSet
from ..models import ConvNet3D
from ..utils import progress, runtime
from .base import DistillationOutput, Distiller, DistillerConfig, register_distiller


@dataclass
class CoresetConfig(DistillerConfig):
    feature_model: str | None = field(default=None, metadata={
        "help": "ConvNet3D folder/Hub id for features (Herding, K-Center); default: random init (seeded)."})
    batch_size: int = field(default=32, metadata={"help": "Batch size for feature extraction."})


class _CoresetDistiller(Distiller):
    config_class = CoresetConfig

    def select(self, features: np.ndarray, ipc: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    needs_features = True

    @torch.inference_mode()
    def embed(self, train_set: VideoClassificationSet, show_progress: bool = True, accelerator=None) -> np.ndarray:
        """`(N, D)` features of every training clip (centre clip, normalised input), computed on
        `accelerator.device` under its mixed-precision autocast, returned in fp32."""
        torch.manual_seed(self.config.seed)
        if self.config.feature_model:
            net = ConvNet3D.from_pretrained(self.config.feature_model)
        else:
            net = ConvNet3D(num_classes=train_set.num_classes)
        device, autocast = runtime(accelerator)
        net.eval().to(device)
        feats = []
        order = np.arange(len(train_set))
        for start in progress(range(0, len(order), self.config.batch_size), desc=f"{self.name}: features",
                          disable=not show_progress, leave=False):
            x = train_set.stack(order[start:start + self.config.batch_size], train=False).to(device)
            with autocast():
                feats.append(net.embed(normalize(x)).float().cpu().numpy())
        return np.concatenate(feats)

    def picks(self, train_set: VideoClassificationSet, accelerator=None) -> dict[int, np.ndarray]:
        """`{class: row indices of train_set}`: the `ipc` clips selected per class, in selection order (features,
        for Herding and K-Center, on `accelerator.device`)."""
        show = accelerator is None or accelerator.is_local_main_process
        rng = np.random.default_rng(self.config.seed)
        features = self.embed(train_set, show, accelerator) if self.needs_features else None
        return {c: idx[np.asarray(self.select(features[idx] if features is not None else idx, self.config.ipc, rng))]
                for c, idx in train_set.indices_per_class().items()}

    def __call__(self, train_set: VideoClassificationSet, accelerator=None) -> DistillationOutput:
        """Select `ipc` real clips per class. Returns uint8 `(T, C, H, W)` videos with their source indices."""
        # 1. check the request against the data
        self.check_ipc(train_set)
        start = time.perf_counter()
        # 2. features (Herding, K-Center) and the per-class selection
        chosen = [i for idx in self.picks(train_set, accelerator).values() for i in idx.tolist()]
        # 3. materialise the selected clips as uint8 frames
        videos = [(train_set.clip(i, train=False) * 255).round().to(torch.uint8) for i in chosen]
        return DistillationOutput(
            videos=torch.stack(videos), labels=torch.as_tensor(train_set.labels[chosen]),
            class_names=train_set.class_names, method=self.name, ipc=self.config.ipc,
            source=train_set.name.split(":")[0],
            frame_size=train_set.frame_size, num_frames=train_set.num_frames, seed=self.config.seed,
            source_index=torch.as_tensor(train_set.row_indices[chosen]), config=self.config.to_dict(),
            stats={"distill_seconds": time.perf_counter() - start})


@register_distiller
class RandomSelection(_CoresetDistiller):
    """`ipc` clips per class drawn uniformly at random (seeded)."""

    name = "random"
    needs_features = False

    def select(self, features, ipc, rng):
        return np.sort(rng.choice(len(features), size=ipc, replace=False))


@register_distiller
class Herding(_CoresetDistiller):
    """Greedy herding (Welling 2009): each pick moves the running mean of the selection closest to the class mean."""

    name = "herding"

    def select(self, features, ipc, rng):
        mu = features.mean(0)
        chosen, total = [], np.zeros_like(mu)
        for k in range(ipc):
            cand = (total[None] + features) / (k + 1)
            dist = np.linalg.norm(cand - mu[None], axis=1)
            dist[chosen] = np.inf
            j = int(dist.argmin())
            chosen.append(j)
            total += features[j]
        return np.asarray(chosen)


@register_distiller
class KCenter(_CoresetDistiller):
    """Greedy k-center (Sener & Savarese 2018): start at the clip nearest the class mean, then farthest-first."""

    name = "kcenter"

    def select(self, features, ipc, rng):
        chosen = [int(np.linalg.norm(features - features.mean(0), axis=1).argmin())]
        min_dist = np.linalg.norm(features - features[chosen[0]], axis=1)
        while len(chosen) < ipc:
            j = int(min_dist.argmax())
            chosen.append(j)
            min_dist = np.minimum(min_dist, np.linalg.norm(features - features[j], axis=1))
        return np.asarray(chosen)


def herding_picks(train_set: VideoClassificationSet, ipc: int, seed: int, accelerator=None) -> dict[int, np.ndarray]:
    """`Herding(ipc, seed).picks(train_set)`, leaving the global RNG as it was: the starting clips of DM's and
    IDTD's `init="herding"`, the same clips the Herding baseline at `seed` selects."""
    with torch.random.fork_rng(devices=[]):
        return Herding(CoresetConfig(ipc=ipc, seed=seed)).picks(train_set, accelerator)
