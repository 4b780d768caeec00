import dataclasses

import numpy as np
import pytest
import torch
from datasets import load_dataset

from hf_vdd.diffusion import (
    MAEScoreSelector,
    PoolRandomSelection,
    TACDTConfig,
    TACDTSelector,
    VSTUNetConfig,
    VSTUNetSelector,
    load_pool,
)
from hf_vdd.distillers import get_distiller
from tests.diffusion.helpers import CLASSES


@pytest.fixture(scope="module")
def pool(pool_dir):
    return load_pool(pool_dir, CLASSES)


def _per_class(out, pool):
    rows = out.source_index.numpy()
    assert np.array_equal(pool.labels[rows], out.labels.numpy())
    assert torch.equal(out.videos, pool.videos[out.source_index])
    return np.bincount(out.labels.numpy(), minlength=len(CLASSES)).tolist()


def test_registered_names():
    for name, cls in [("tacdt", TACDTSelector), ("vstunet", VSTUNetSelector), ("maescore", MAEScoreSelector),
                      ("pool-random", PoolRandomSelection)]:
        assert get_distiller(name) is cls


def test_tacdt_picks_vpc_per_class_deterministically_and_saves(pool, videomae_dir, tmp_path):
    cfg = TACDTConfig(ipc=3, encoder=str(videomae_dir))
    out = TACDTSelector(cfg)(pool)
    assert _per_class(out, pool) == [3, 3, 3] and out.videos.dtype == torch.uint8
    assert torch.equal(TACDTSelector(cfg)(pool).source_index, out.source_index)
    assert out.stats["selection_seconds"] > 0 and out.method == "tacdt" and out.ipc == 3
    out.save(tmp_path / "tacdt")
    ds = load_dataset(str(tmp_path / "tacdt"), split="train")
    assert len(ds) == 9 and ds["source_index"] == out.source_index.tolist()


def test_tacdt_takes_the_member_nearest_each_cluster_centre():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 0, 0]], float)
    feats = np.concatenate([c + rng.normal(0, 0.5, (6, 4)) for c in centres])
    picks = TACDTSelector(TACDTConfig(ipc=3, pca_components=4)).select_class(None, np.arange(18), 0, feats)
    assert sorted(p // 6 for p in picks) == [0, 1, 2]  # one per cluster
    for p in picks:
        members = np.arange(18)[(np.arange(18) // 6) == p // 6]
        # the chosen member is the one nearest the cluster mean (PCA with all 4 components is a rotation)
        assert p == members[np.linalg.norm(feats[members] - feats[members].mean(0), axis=1).argmin()]


@pytest.fixture(scope="module")
def clip_pool(tiny_toy, latte_dir, tmp_path_factory):
    """Real toy clips in the pool format: classes that differ, so the CE term can learn."""
    from hf_vdd import load_video_dataset
    from tests.diffusion.helpers import write_pool_from_clips

    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    return load_pool(write_pool_from_clips(tmp_path_factory.mktemp("clip-pool") / "pool", train, str(latte_dir), 6))


def test_vstunet_loss_goes_down_and_picks_top_probabilities(clip_pool, tmp_path):
    pool = clip_pool
    sel = VSTUNetSelector(VSTUNetConfig(ipc=2, epochs=30, base_channels=8, embed_dim=16))
    out = sel(pool)
    curve = out.stats["loss_curve"]
    assert len(curve) == 30 and np.mean(curve[-5:]) < 0.8 * np.mean(curve[:5])
    assert (out.stats["lambda_div"], out.stats["lambda_rep"]) == (0.1, 1.0)  # paper values at VPC > 1
    assert _per_class(out, pool) == [2, 2, 2, 2]
    from hf_vdd.diffusion.selectors import pool_latents

    z = pool_latents(pool.manifest["generator"], pool.videos)
    for c, idx in pool.indices_per_class().items():
        with torch.no_grad():
            probs = sel.model(z[torch.as_tensor(idx)])[0]
        top = set(idx[probs.topk(2).indices.numpy()].tolist())
        assert top == set(out.source_index[out.labels == c].tolist())
    sel.save_pretrained(tmp_path / "vst")
    again = VSTUNetSelector.from_pretrained(tmp_path / "vst")(pool)
    assert torch.equal(again.source_index, out.source_index)
    assert "vstunet" in (tmp_path / "vst" / "README.md").read_text()
    assert VSTUNetSelector(VSTUNetConfig(ipc=1)).lambdas == (0.0, 0.1)


def test_maescore_picks_most_confident(pool, videomae_dir):
    from hf_vdd.teacher import load_teacher

    out = MAEScoreSelector(ipc=2, encoder=str(videomae_dir))(pool)
    probs = load_teacher(str(videomae_dir), pool).probs(pool.videos.float() / 255)
    for c, idx in pool.indices_per_class().items():
        conf = probs[torch.as_tensor(idx), c]
        assert set(out.source_index[out.labels == c].tolist()) == set(idx[conf.topk(2).indices.numpy()].tolist())


def test_random_is_seeded(pool):
    a, b = PoolRandomSelection(ipc=4, seed=1)(pool), PoolRandomSelection(ipc=4, seed=1)(pool)
    c = PoolRandomSelection(ipc=4, seed=2)(pool)
    assert torch.equal(a.source_index, b.source_index) and not torch.equal(a.source_index, c.source_index)
    assert _per_class(a, pool) == [4, 4, 4]


def test_a_pool_generated_for_a_local_folder_names_the_folder_not_its_path(pool):
    """A pool records the dataset it was generated for as given (a path); the selected set's source is its name."""
    local = dataclasses.replace(pool, manifest=pool.manifest | {"dataset": "/root/hf_vdd-data/ucf12-miniucf"})
    assert local.name == "ucf12-miniucf"
    assert PoolRandomSelection(ipc=1, seed=0)(local).source == "ucf12-miniucf"


def test_errors(pool, tmp_path, videomae_dir):
    with pytest.raises(ValueError, match="--vpc 9 is larger than the pool's 8 videos per class"):
        PoolRandomSelection(ipc=9)(pool)
    with pytest.raises(ValueError, match="TAC-DT needs --encoder"):
        TACDTSelector(ipc=1)(pool)
    with pytest.raises(ValueError, match="Could not load the VideoMAE encoder 'no-such/videomae'.*local folder"):
        TACDTSelector(ipc=1, encoder="no-such/videomae")(pool)
    from transformers import VideoMAEForVideoClassification

    from hf_vdd.models import tiny_videomae_config

    VideoMAEForVideoClassification(tiny_videomae_config(5, 8, 32)).save_pretrained(str(tmp_path / "five"))
    with pytest.raises(ValueError, match="MAE-Score needs a VideoMAE video classifier over the pool's 3 classes"):
        MAEScoreSelector(ipc=1, encoder=str(tmp_path / "five"))(pool)
