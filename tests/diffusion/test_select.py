"""`hf_vdd/diffusion/select.py`: the guidance default, the pool's own shape, selections repeated over seeds."""

import inspect
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hf_vdd import TrainConfig, load_video_dataset
from hf_vdd.diffusion import DEFAULT_GUIDANCE_SCALE, PoolConfig, fit_videos, load_pool
from hf_vdd.diffusion.pool import check_generation_shape
from hf_vdd.diffusion.select import DiffusionSelectArgs, evaluate_selections, select_runs


def test_one_guidance_default_latte_s_own():
    from dataclasses import fields

    from diffusers import LattePipeline

    latte = inspect.signature(LattePipeline.__call__).parameters["guidance_scale"].default
    assert DiffusionSelectArgs().guidance_scale == PoolConfig().guidance_scale == DEFAULT_GUIDANCE_SCALE == latte
    help_text = {f.name: f.metadata["help"] for f in fields(DiffusionSelectArgs)}["guidance_scale"]
    assert "LattePipeline's own default" in help_text and "paper states none" in help_text


def test_bad_pool_shapes_are_refused_while_parsing_and_against_the_generator(latte_dir):
    with pytest.raises(ValueError, match="--pool_frame_size must be a positive multiple of 8 for Latte, got 36"):
        DiffusionSelectArgs(pool_frame_size=36)
    with pytest.raises(ValueError, match="--pool_num_frames must be >= 1, got 0"):
        DiffusionSelectArgs(pool_num_frames=0)
    with pytest.raises(ValueError, match="--selection_runs must be >= 1"):
        DiffusionSelectArgs(selection_runs=0)
    with pytest.raises(ValueError, match=r"--default_prediction_type must be one of \['epsilon', 'v_prediction'\]"):
        DiffusionSelectArgs(default_prediction_type="sample")
    with pytest.raises(ValueError, match=r"makes 8-frame videos \(its transformer's video_length\).*"
                                         r"use --pool_num_frames 8"):
        check_generation_shape(16, 4, str(latte_dir))
    check_generation_shape(16, 8, str(latte_dir))  # another frame size than the generator's 32 is fine
    with pytest.raises(ValueError, match="Could not read the Latte generator 'no-such/latte'"):
        check_generation_shape(16, 8, "no-such/latte")


def test_recipe_refuses_a_bad_pool_shape_before_any_work(latte_dir, tmp_path, run_recipe):
    res = run_recipe("recipes/diffusion_select.py", "--generator", str(latte_dir), "--pool_num_frames", "4",
                     "--pool_dir", str(tmp_path / "pool"), "--output_dir", str(tmp_path / "out"), check=False)
    assert res.returncode == 2 and "use --pool_num_frames 8" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "pool").exists() and not (tmp_path / "out").exists()
    res = run_recipe("recipes/diffusion_select.py", "--pool_frame_size", "20", check=False)
    assert res.returncode == 2 and "multiple of 8" in res.stderr


def test_fit_videos_resamples_time_and_resizes():
    v = torch.arange(4, dtype=torch.uint8).mul(60).view(1, 4, 1, 1, 1).expand(2, 4, 3, 16, 16).contiguous()
    up = fit_videos(v, 8, 32)
    assert up.shape == (2, 8, 3, 32, 32) and up.dtype == torch.uint8
    assert up[0, :, 0, 5, 5].tolist() == [0, 0, 60, 60, 120, 120, 180, 180]  # each frame repeated, constant frames
    assert fit_videos(v, 2, 8)[0, :, 0, 3, 3].tolist() == [0, 120]  # evenly spaced frames, shrunk
    assert fit_videos(v, 4, 16) is v


@pytest.fixture(scope="module")
def clips(tiny_toy, latte_dir, tmp_path_factory):
    """Real toy clips in the pool format (4 classes x 6) and the toy test split."""
    from tests.diffusion.helpers import write_pool_from_clips

    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pool = load_pool(write_pool_from_clips(tmp_path_factory.mktemp("sel") / "pool", train, str(latte_dir), 6))
    return pool, train, load_video_dataset(tiny_toy, "test", num_frames=8, frame_size=32, train=False)


def test_selection_runs_give_one_result_per_seed_with_mean_and_std(clips, videomae_dir):
    pool, train, test = clips
    args = DiffusionSelectArgs(selector="random", vpc=2, seed=3)
    student = SimpleNamespace(num_frames=4, frame_size=16)  # a student shape other than the pool's
    small, _ = select_runs(args, pool, None, None, student, 3)
    assert [o.seed for o in small] == [3, 4, 5] and len({tuple(o.source_index.tolist()) for o in small}) == 3
    assert small[0].videos.shape[1:] == (4, 3, 16, 16) and small[0].config["pool_frame_size"] == 32
    outputs, _ = select_runs(args, pool, None, None, train, 3)
    config = TrainConfig(runs=1, steps=2, batch_size=4, seed=0, show_progress=False)
    report = evaluate_selections(outputs, test, config, runs=3)
    assert len(report.runs) == 3 and [r["selection_seed"] for r in report.runs] == [3, 4, 5]
    assert [r["seed"] for r in report.runs] == [0, 1, 2]  # a fresh student per selection
    top1 = [r["top1"] for r in report.runs]
    assert report.top1 == pytest.approx({"mean": np.mean(top1), "std": np.std(top1)})
    # a deterministic selector selects once (no fake selection variance); its spread is R x 1 students'
    args = DiffusionSelectArgs(selector="tacdt", vpc=2, seed=3)
    once, _ = select_runs(args, pool, str(videomae_dir), None, train, 3)
    assert len(once) == 1 and once[0].stats["selection_runs"] == 1 and not once[0].stats["seeded"]
    report = evaluate_selections(once, test, config, runs=3)
    assert len(report.runs) == 3 and {r["selection"] for r in report.runs} == {0}
    assert report.config["selections"] == 1


def test_default_models_trained_under_bf16_are_cached_apart(tmp_path, monkeypatch):
    """The default Latte and VideoMAE encoder are cached by what built them, autocast included; an fp32 key is
    the one caches written before mixed precision carry."""
    from hf_vdd.diffusion.select import _cache_folder

    monkeypatch.setenv("HF_VDD_CACHE", str(tmp_path))
    class Data(list):  # what the cache key reads of a train split
        name, class_names, num_frames, frame_size = "toy-actions:train", ["a", "b"], 8, 32

    data = Data([0, 1, 2, 3])
    config = TrainConfig(steps=3)
    before = _cache_folder("videomae", data, config)
    fp32 = _cache_folder("videomae", data, config, SimpleNamespace(mixed_precision="no"))
    bf16 = _cache_folder("videomae", data, config, SimpleNamespace(mixed_precision="bf16"))
    assert fp32 == before and bf16 != fp32 and bf16.parent == fp32.parent == tmp_path / "videomae"
    assert _cache_folder("videomae", data, config, version=1) == before  # version 1: the keys before versions
    assert _cache_folder("videomae", data, config, version=2) not in (before, bf16)
