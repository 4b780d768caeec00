import json
from types import SimpleNamespace

import pytest
import torch

from hf_vdd import load_video_dataset
from hf_vdd.diffusion import (
    LatteFinetuneConfig,
    finetune_latte,
    generate_pool,
    load_latte,
    load_pool,
    tiny_latte_pipeline,
)
from hf_vdd.diffusion.pool import encode_prompts, load_class_embeddings, pool_is_complete, sample_seed
from tests.diffusion.helpers import CLASSES, small_pool_config


def test_pool_layout_and_rows(pool_dir):
    manifest = json.loads((pool_dir / "pool.json").read_text())
    assert manifest["class_names"] == CLASSES and manifest["config"]["videos_per_class"] == 8
    assert len(list((pool_dir / "data").glob("*.parquet"))) == 3 * 2 and pool_is_complete(pool_dir)
    pool = load_pool(pool_dir, CLASSES)
    assert pool.videos.shape == (24, 8, 3, 32, 32) and pool.videos.dtype == torch.uint8
    assert pool.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert pool.seeds.tolist() == [sample_seed(0, c, i) for c in range(3) for i in range(8)]
    assert pool.prompts[8] == "a video of disc"
    assert pool.videos.float().std() > 1  # not a constant image


def test_same_seed_same_pool_and_resume_makes_only_missing_shards(pool_dir, latte_dir, tmp_path):
    pipe = load_latte(latte_dir)
    again = tmp_path / "again"
    generate_pool(pipe, CLASSES, again, small_pool_config(), dataset="tiny", generator=str(latte_dir),
                  show_progress=False)
    assert torch.equal(load_pool(again).videos, load_pool(pool_dir).videos)
    # "interrupted": one shard missing (and a stale temp file left behind)
    victim = again / "data" / "c0001-s0001.parquet"
    victim.unlink()
    (again / "data" / ".c0001-s0001.parquet.tmp-1").write_bytes(b"partial")
    assert not pool_is_complete(again)
    others = {p.name: p.stat().st_mtime_ns for p in (again / "data").glob("c*.parquet")}
    manifest = generate_pool(pipe, CLASSES, again, small_pool_config(), dataset="tiny", generator=str(latte_dir),
                             show_progress=False)
    assert manifest["generation"]["videos_generated"] == 4 and manifest["generation"]["shards_skipped"] == 5
    assert {p.name: p.stat().st_mtime_ns for p in (again / "data").glob("c*.parquet") if p != victim} == others
    assert torch.equal(load_pool(again).videos, load_pool(pool_dir).videos)


def test_pool_errors(pool_dir, latte_dir, tmp_path):
    pipe = load_latte(latte_dir)
    with pytest.raises(ValueError, match="generated for dataset 'tiny'.*use another --pool_dir"):
        generate_pool(pipe, ["a", "b", "c"], pool_dir, small_pool_config(), dataset="other", generator=str(latte_dir))
    with pytest.raises(ValueError, match="other settings.*videos_per_class"):
        generate_pool(pipe, CLASSES, pool_dir, small_pool_config(videos_per_class=9), dataset="tiny",
                      generator=str(latte_dir))
    bf16 = SimpleNamespace(mixed_precision="bf16", process_index=0, num_processes=1, is_main_process=True)
    with pytest.raises(ValueError, match=r"other settings \{'mixed_precision': \('no', 'bf16'\)\}"):
        generate_pool(pipe, CLASSES, pool_dir, small_pool_config(), dataset="tiny", generator=str(latte_dir),
                      accelerator=bf16)  # an fp32 pool is never completed with bf16 videos
    with pytest.raises(ValueError, match="do not match the dataset's"):
        load_pool(pool_dir, ["a", "b", "c"])
    with pytest.raises(ValueError, match="use --pool_num_frames 8"):
        generate_pool(pipe, CLASSES, tmp_path / "p", small_pool_config(num_frames=4))
    with pytest.raises(ValueError, match="Could not load the Latte generator 'no-such/latte'.*local folder"):
        load_latte("no-such/latte")


def test_finetune_lowers_loss_checkpoints_resumes_and_saves(tiny_toy, tmp_path):
    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    out = tmp_path / "latte"
    cfg = LatteFinetuneConfig(steps=24, vae_steps=10, batch_size=4, lr=1e-3, learn_class_embeddings=True,
                              checkpointing_steps=12, seed=1)
    stats = finetune_latte(pipe, train, cfg, output_dir=out, source="tiny-toy", show_progress=False)
    assert sum(stats["loss_last"]) < 0.8 * sum(stats["loss_first"])
    assert (tmp_path / "latte.checkpoints" / "checkpoint-12").is_dir()
    loaded = load_latte(out)
    assert loaded.vae.config.scaling_factor != 1.0
    assert "Latte fine-tuned on tiny-toy" in (out / "README.md").read_text()
    names, embeds = load_class_embeddings(out)
    assert names == train.class_names and embeds.shape == (4, 120, 32)
    # resume from the step-24 checkpoint and continue to 26 steps
    pipe2 = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    cfg2 = LatteFinetuneConfig(**(cfg.__dict__ | {"steps": 26, "resume_from_checkpoint": "latest"}))
    stats2 = finetune_latte(pipe2, train, cfg2, output_dir=out, source="tiny-toy", show_progress=False)
    assert stats2["resumed_from"] == 24 and len(stats2["loss_last"]) == 2
    assert pipe2.vae.config.scaling_factor == loaded.vae.config.scaling_factor  # the checkpointed VAE
    other = LatteFinetuneConfig(**(cfg2.__dict__ | {"lr": 1e-2}))  # another run's settings: refused, not resumed
    with pytest.raises(ValueError, match=r"checkpoint-24 belongs to another run.*config\.lr: 0\.001 -> 0\.01"):
        finetune_latte(pipe2, train, other, output_dir=out, source="tiny-toy", show_progress=False)


def test_learned_class_embeddings_generate(latte_dir, tmp_path):
    pipe = load_latte(latte_dir)
    embeds = torch.randn(3, 120, 32)
    generate_pool(pipe, CLASSES, tmp_path / "pool", small_pool_config(videos_per_class=2, shard_size=2,
                                                                      guidance_scale=2.0),
                  class_embeds=embeds, show_progress=False)
    pool = load_pool(tmp_path / "pool")
    assert pool.prompts[0] == "<learned:square>" and pool.videos.shape == (6, 8, 3, 32, 32)


def _record_states(transformer) -> list:
    """Record the `encoder_hidden_states` of every call of `transformer`."""
    seen = []
    transformer.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["encoder_hidden_states"].detach().clone()),
                                          with_kwargs=True)
    return seen


@pytest.mark.parametrize("learned", [False, True])
def test_pool_conditions_as_finetuning_trains(tiny_toy, tmp_path, learned):
    """Guidance's unconditional side and each class's states are what `finetune_latte` trained on (the unconditional
    side used to be the empty prompt padded with zeros, which training never showed), at guidance 1 too."""
    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    pipe.text_encoder.train()  # as a user's may be: fine-tuning must encode without dropout, as sampling does
    trained = _record_states(pipe.transformer)
    for dropout in (1.0, 0.0):  # every caption dropped to the unconditional states, then none
        finetune_latte(pipe, train, LatteFinetuneConfig(steps=2, batch_size=4, caption_dropout=dropout,
                                                        learn_class_embeddings=learned), show_progress=False)
    uncond, cond = trained[0][0], trained[-1]
    prompts = encode_prompts(pipe, [f"a video of {name}" for name in train.class_names])
    if not learned:  # training's captions are the class prompts encoded together
        assert all(any(torch.equal(row, p) for p in prompts) for row in cond)
    embeds = torch.randn(4, cond.shape[1], 32) if learned else None
    generated = _record_states(pipe.transformer)
    generate_pool(pipe, train.class_names, tmp_path / "pool", small_pool_config(
        videos_per_class=1, shard_size=1, num_inference_steps=1, guidance_scale=2.0), class_embeds=embeds,
        show_progress=False)
    assert len(generated) == 4 and all(len(states) == 2 for states in generated)  # [unconditional, class c]
    for c, states in enumerate(generated):
        torch.testing.assert_close(states[0], uncond)
        torch.testing.assert_close(states[1], embeds[c] if learned else prompts[c])
    generate_pool(pipe, train.class_names, tmp_path / "pool-g1", small_pool_config(
        videos_per_class=2, shard_size=2, num_inference_steps=1), class_embeds=embeds, show_progress=False)
    assert load_pool(tmp_path / "pool-g1").videos.shape == (8, 8, 3, 32, 32)
