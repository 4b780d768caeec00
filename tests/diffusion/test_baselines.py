"""The paper's CSTA and DM-MMD selection baselines (`hf_vdd/diffusion/baselines.py`)."""

import numpy as np
import pytest
import torch

from hf_vdd import load_video_dataset
from hf_vdd.diffusion import CSTAConfig, CSTASelector, DMMMDConfig, DMMMDSelector, VideoPool, load_pool
from hf_vdd.diffusion.baselines import greedy_mmd
from hf_vdd.diffusion.selectors import videomae_embeddings
from hf_vdd.distillers import get_distiller
from tests.diffusion.helpers import CLASSES


@pytest.fixture(scope="module")
def pool(pool_dir):
    return load_pool(pool_dir, CLASSES)


@pytest.fixture(scope="module")
def real(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)


def _picks(out, num_classes):
    """{class: sorted pool rows}, after checking VPC distinct rows of the right class each."""
    rows, labels = out.source_index.numpy(), out.labels.numpy()
    picks = {c: sorted(rows[labels == c].tolist()) for c in range(num_classes)}
    assert all(len(p) == out.ipc and len(set(p)) == out.ipc for p in picks.values())
    return picks


def test_registered_like_the_other_selectors():
    assert get_distiller("csta") is CSTASelector and get_distiller("dm-mmd") is DMMMDSelector
    assert CSTASelector.needs_pool and DMMMDSelector.needs_pool and DMMMDSelector.needs_real
    assert CSTASelector.seeded and DMMMDSelector.seeded


def test_csta_knapsack_is_the_top_vpc_scores_and_seeded(pool, videomae_dir):
    cfg = CSTAConfig(ipc=3, encoder=str(videomae_dir), epochs=15)
    sel = CSTASelector(cfg)
    out = sel(pool)
    picks = _picks(out, len(CLASSES))
    assert len(out.stats["loss_curve"]) == 15 and out.method == "csta"
    assert _picks(CSTASelector(cfg)(pool), len(CLASSES)) == picks  # same seed, same selection
    x = torch.as_tensor(videomae_embeddings(str(videomae_dir), pool.videos))
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    for c, idx in pool.indices_per_class().items():
        with torch.no_grad():
            scores = sel.model(x[torch.as_tensor(idx)])[0]
        assert sorted(idx[scores.topk(3).indices.numpy()].tolist()) == picks[c]


def test_greedy_mmd_matches_the_distribution_not_only_the_nearest():
    target = torch.tensor([[0.0, 0.0], [0.0, 0.2], [10.0, 0.0], [10.0, 0.2]])
    # two candidates at the first mode, one at the second, one far from both
    cand = torch.tensor([[0.0, 0.1], [0.0, 0.05], [10.0, 0.1], [30.0, 30.0]])
    assert sorted(greedy_mmd(cand, target, 2)) in ([0, 2], [1, 2])  # one per mode
    assert 3 not in greedy_mmd(cand, target, 3)
    # weights: a mode holding most of the real mass is matched first
    assert greedy_mmd(cand, target[[0, 2]], 1, torch.tensor([1.0, 9.0])) == [2]


def test_dm_mmd_picks_the_near_real_videos(real):
    """Each class: 3 near-real videos (its real clips + small noise) and 3 far ones (inverted noise)."""
    gen = torch.Generator().manual_seed(0)
    videos, labels = [], []
    for c, idx in real.indices_per_class().items():
        clips = real.stack(idx[:3]) * 255
        near = (clips + torch.randn(clips.shape, generator=gen) * 4).clamp(0, 255)
        far = (255 - clips * 0.2 - torch.rand(clips.shape, generator=gen) * 60).clamp(0, 255)
        videos += [far, near]  # far first: the pool order does not favour the near ones
        labels += [c] * 6
    n = len(labels)
    pool = VideoPool(videos=torch.cat(videos).round().to(torch.uint8), labels=np.asarray(labels),
                     class_names=real.class_names, seeds=np.zeros(n, int), prompts=[""] * n,
                     manifest={"dataset": "near-far"}, path="memory")
    cfg = DMMMDConfig(ipc=2, kmeans_clusters=3, seed=1)
    out = DMMMDSelector(cfg)(pool, real=real)
    picks = _picks(out, real.num_classes)
    for c, rows in picks.items():
        assert all(r % 6 >= 3 for r in rows), (c, rows)  # the near half of class c's block
    assert _picks(DMMMDSelector(cfg)(pool, real=real), real.num_classes) == picks  # deterministic under a seed
    with pytest.raises(ValueError, match="dm-mmd matches real clips: call it with real="):
        DMMMDSelector(cfg)(pool)
