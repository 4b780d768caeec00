"""Latte generation and fine-tuning and the pool selectors follow `accelerator.device` (the `meta_accelerator`
fixture: mixing a CPU tensor into device work fails; the convolutions must run on the device)."""

import pytest
import torch

from hf_vdd.data.loading import load_video_dataset
from hf_vdd.diffusion import (
    LatteFinetuneConfig,
    MAEScoreSelector,
    TACDTConfig,
    TACDTSelector,
    VSTUNetConfig,
    VSTUNetSelector,
    finetune_latte,
    generate_pool,
    load_latte,
    load_pool,
)
from tests.diffusion.helpers import CLASSES, small_pool_config


def ran_on_device(accelerator, *ops: str) -> bool:
    calls = accelerator.device_calls
    return all(calls[op, "meta"] > 0 and calls[op, "cpu"] == 0 for op in ops)


def test_pool_generation_runs_on_the_accelerator_device(latte_dir, tmp_path, meta_accelerator):
    generate_pool(load_latte(latte_dir), CLASSES[:2], tmp_path / "pool", small_pool_config(videos_per_class=2),
                  accelerator=meta_accelerator, show_progress=False)
    assert ran_on_device(meta_accelerator, "conv2d", "linear")
    assert len(load_pool(tmp_path / "pool", CLASSES[:2]).labels) == 4


def test_selectors_run_on_the_accelerator_device(pool_dir, latte_dir, videomae_dir, meta_accelerator):
    pool = load_pool(pool_dir, CLASSES)
    out = VSTUNetSelector(VSTUNetConfig(ipc=1, epochs=2, base_channels=8, embed_dim=16, vae=str(latte_dir)))(
        pool, accelerator=meta_accelerator)
    assert ran_on_device(meta_accelerator, "conv2d", "conv3d") and len(out.labels) == 3
    for selector in (TACDTSelector(TACDTConfig(ipc=1, encoder=str(videomae_dir))),
                     MAEScoreSelector(TACDTConfig(ipc=1, encoder=str(videomae_dir)))):
        meta_accelerator.device_calls.clear()
        assert len(selector(pool, accelerator=meta_accelerator).labels) == 3
        assert ran_on_device(meta_accelerator, "linear")


@pytest.mark.parametrize(("conditioning", "ema_decay"), [("cross_attention", 0.9999), ("adaln", 0.0)])
def test_latte_finetuning_runs_on_the_accelerator_device(latte_dir, tiny_toy, meta_accelerator, conditioning,
                                                         ema_decay):
    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    cfg = LatteFinetuneConfig(steps=2, vae_steps=2, vae_decoder_steps=2, batch_size=2, learn_class_embeddings=True,
                              class_conditioning=conditioning, ema_decay=ema_decay)
    finetune_latte(load_latte(latte_dir), train.subset(range(4)), cfg, accelerator=meta_accelerator,
                   show_progress=False)
    assert ran_on_device(meta_accelerator, "conv2d", "linear")
    assert torch.device("meta") == meta_accelerator.device
