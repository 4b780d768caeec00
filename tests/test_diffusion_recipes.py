"""`recipes/diffusion_select.py` and `recipes/finetune_latte.py` end to end (tiny models saved locally)."""

import json
import re
import shutil

import pytest
import torch
from datasets import load_dataset

from hf_vdd.data import toy_action_class_names
from hf_vdd.diffusion import load_pool
from tests.helpers import ONE_THREAD, TINY_POOL, save_tiny_diffusion_models

NAMES = toy_action_class_names(10)
TINY = TINY_POOL


@pytest.fixture
def run(run_recipe):
    return run_recipe


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An untrained tiny Latte over toy-actions' classes and a tiny VideoMAE classifier, saved locally."""
    return save_tiny_diffusion_models(tmp_path_factory.mktemp("models"), NAMES)


@pytest.mark.slow
def test_pool_identical_with_one_and_two_processes_and_output_loads(tmp_path, run, two_processes):
    run(*two_processes.common["diffusion"], "--pool_dir", str(tmp_path / "pool1"), "--output_dir",
        str(tmp_path / "out1"), env=ONE_THREAD)
    (tmp_path / "pool2").symlink_to(two_processes.path("diffusion", "pool2"))
    (tmp_path / "out2").symlink_to(two_processes.path("diffusion", "out2"))
    pool1, pool2 = load_pool(tmp_path / "pool1", NAMES), load_pool(tmp_path / "pool2", NAMES)
    assert pool1.videos.shape == (40, 8, 3, 32, 32) and torch.equal(pool1.videos, pool2.videos)
    assert (pool1.seeds == pool2.seeds).all() and (tmp_path / "pool1" / "preview.png").is_file()
    manifest = json.loads((tmp_path / "pool1" / "pool.json").read_text())
    assert manifest["dataset"] == "toy-actions" and manifest["class_names"] == NAMES
    for out in ("out1", "out2"):
        ds = load_dataset(str(tmp_path / out), split="train")
        assert len(ds) == 20 and ds.features["video"].shape == (None, 3, 32, 32)
        assert {"README.md", "distillation.json", "preview.png"} <= {p.name for p in (tmp_path / out).iterdir()}
    meta1 = json.loads((tmp_path / "out1" / "distillation.json").read_text())
    meta2 = json.loads((tmp_path / "out2" / "distillation.json").read_text())
    assert meta1["method"] == "tacdt" and meta1["ipc"] == 2
    assert load_dataset(str(tmp_path / "out1"), split="train")["source_index"] == \
        load_dataset(str(tmp_path / "out2"), split="train")["source_index"]
    assert meta2["stats"]["generation"]["num_processes"] == 2 and meta1["stats"]["generation"]["num_processes"] == 1
    # reuse: the complete pool is not regenerated, another selector runs on it
    res = run("recipes/diffusion_select.py", "--selector", "random", "--pool_dir", str(tmp_path / "pool1"),
              "--output_dir", str(tmp_path / "out3"), *TINY)
    assert "generated" not in res.stdout and len(load_dataset(str(tmp_path / "out3"), split="train")) == 20
    # clear user errors (exit 2, one line, no traceback)
    res = run("recipes/diffusion_select.py", "--pool_dir", str(tmp_path / "pool1"), *TINY[:-1], "5", check=False)
    assert res.returncode == 2 and "--vpc 5 is larger than the pool's 4 videos per class" in res.stderr
    other = tmp_path / "other-pool"
    shutil.copytree(tmp_path / "pool1", other)
    manifest["class_names"] = [f"x{i}" for i in range(10)]
    manifest["dataset"] = "elsewhere"
    (other / "pool.json").write_text(json.dumps(manifest))
    res = run("recipes/diffusion_select.py", "--pool_dir", str(other), *TINY, check=False)
    assert res.returncode == 2 and "generated for 'elsewhere'" in res.stderr and "Traceback" not in res.stderr
    res = run("recipes/diffusion_select.py", "--pool_dir", str(tmp_path / "pool1"), "--encoder", "no-such/videomae",
              *TINY, check=False)
    assert res.returncode == 2 and "--encoder no-such/videomae: no such local folder" in res.stderr
    res = run("recipes/diffusion_select.py", "--pool_dir", str(tmp_path / "new"), "--generator", "no-such/latte",
              *TINY, check=False)
    assert res.returncode == 2 and "--generator no-such/latte: no such local folder" in res.stderr
    assert "local folder" in res.stderr


def test_embedded_default_builds_tiny_models_and_runs_vstunet(tmp_path, run):
    env = {"HF_VDD_CACHE": str(tmp_path / "cache")}
    quick = ["--default_finetune_steps", "3", "--default_vae_steps", "2", "--default_encoder_steps", "2", *TINY]
    res = run("recipes/diffusion_select.py", "--selector", "vstunet", "--vst_epochs", "2", "--pool_dir",
              str(tmp_path / "pool"), "--output_dir", str(tmp_path / "vst"), *quick, env=env)
    assert "building the default generator" in res.stdout and "wrote the VST-UNet selector" in res.stdout
    latte = next((tmp_path / "cache" / "latte").iterdir())
    assert (latte / "model_index.json").is_file() and (latte / "README.md").is_file()
    assert json.loads((latte / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    assert json.loads((latte / "hf_vdd_latte.json").read_text())["config"]["ema_decay"] == 0.9999
    assert (tmp_path / "vst-vstunet" / "vst_unet" / "model.safetensors").is_file()
    assert len(load_dataset(str(tmp_path / "vst"), split="train")) == 20
    res = run("recipes/diffusion_select.py", "--selector", "maescore", "--pool_dir", str(tmp_path / "pool"),
              "--output_dir", str(tmp_path / "mae"), *quick, env=env)
    assert "building the default encoder" in res.stdout and "building the default generator" not in res.stdout
    assert json.loads((tmp_path / "mae" / "distillation.json").read_text())["method"] == "maescore"


def test_finetune_latte_recipe_checkpoints_and_resumes(tmp_path, run):
    out = tmp_path / "latte"
    args = ["recipes/finetune_latte.py", "--output_dir", str(out), "--vae_steps", "2", "--batch_size", "4",
            "--checkpointing_steps", "2", "--tiny_width", "32", "--tiny_layers", "1"]
    run(*args, "--steps", "2")
    assert (tmp_path / "latte.checkpoints" / "checkpoint-2").is_dir()
    res = run(*args, "--steps", "3", "--resume_from_checkpoint", "latest")
    assert "wrote" in res.stdout
    facts = json.loads((out / "hf_vdd_latte.json").read_text())
    assert facts["stats"]["resumed_from"] == 2 and facts["class_names"] == NAMES
    tf = json.loads((out / "transformer" / "config.json").read_text())
    assert (tf["num_layers"], tf["num_attention_heads"] * tf["attention_head_dim"]) == (1, 32)  # --tiny_width/layers
    res = run(*args, "--steps", "1", "--push_to_hub", check=False)
    assert res.returncode == 2 and "--hub_repo_id" in res.stderr


def test_pool_at_its_own_shape_is_resized_for_the_student(models, tmp_path, run):
    """The evaluation over --selection_runs is tested in tests/diffusion/test_select.py (here: no --eval_runs, so one
    selection is made)."""
    res = run("recipes/diffusion_select.py", "--generator", str(models / "latte"), "--selector", "random",
              "--pool_frame_size", "16", "--videos_per_class_pool", "1", "--shard_size", "1", "--num_inference_steps",
              "1", "--vpc", "1", "--pool_dir", str(tmp_path / "pool"), "--output_dir", str(tmp_path / "out"))
    assert load_pool(tmp_path / "pool", NAMES).videos.shape == (10, 8, 3, 16, 16)  # generated at --pool_frame_size
    ds = load_dataset(str(tmp_path / "out"), split="train")
    assert len(ds) == 10 and ds.features["video"].shape == (None, 3, 32, 32)  # saved at the student's --frame_size
    meta = json.loads((tmp_path / "out" / "distillation.json").read_text())
    assert meta["config"]["pool_frame_size"] == 16 and meta["frame_size"] == 32
    assert meta["stats"]["selection_runs"] == 1
    assert "1 selection(s)" in res.stdout


def test_diffusion_benchmark_reports_the_pools_real_counterpart_and_recognisability(models, tmp_path, run):
    out = tmp_path / "bench.json"
    res = run("recipes/diffusion_benchmark.py", "--generator", str(models / "latte"), "--methods", "random",
              "--vpcs", "1", "--selection_runs", "1", "--steps", "2", "--full_steps", "2", *TINY[:-2],
              "--pool_dir", str(tmp_path / "pool"), "--output_json", str(out))
    facts = json.loads(out.read_text())
    names = [e["method"] for e in facts["entries"]]
    assert names == ["random", "full synthetic pool", "real, as many clips as the pool", "full real"]
    real_like = facts["entries"][2]
    assert real_like["vpc"] == 4  # the pool's N_c
    rec = facts["recognisability"]
    assert set(rec["per_class"]) == set(NAMES) and rec["chance"] == 10.0 and 0.0 <= rec["top1"] <= 100.0
    assert facts["pool_to_real_ratio"] >= 0.0 and "whole pool / as many real clips" in res.stdout
    # --upper_bounds false: the selectors' rows only, on the same (reused) pool
    res = run("recipes/diffusion_benchmark.py", "--generator", str(models / "latte"), "--methods", "random",
              "--vpcs", "1", "--selection_runs", "1", "--steps", "2", *TINY[:-2], "--upper_bounds", "false",
              "--pool_dir", str(tmp_path / "pool"), "--output_json", str(out))
    facts = json.loads(out.read_text())
    assert [e["method"] for e in facts["entries"]] == ["random"] and "recognisability" not in facts
    assert "| random | 1 |" in res.stdout and "whole pool / as many real clips" not in res.stdout


def test_diagnose_latte_reports_the_vae_and_the_prompt_steering(models, tmp_path, run):
    res = run("recipes/diagnose_latte.py", "--generator", str(models / "latte"), "--clips_per_class", "1",
              "--judge_steps", "2", "--timesteps", "500", "900", "--output_json", str(tmp_path / "d.json"),
              "--sdedit_strengths", "0", "0.5", "--sdedit_clips_per_class", "1", "--student_steps", "2",
              "--student_runs", "1", "--num_inference_steps", "4")
    facts = json.loads((tmp_path / "d.json").read_text())
    assert facts["clips"] == 10 and set(facts["vae"]) == {"real", "reconstructed", "mse"}
    assert list(facts["steering"]) == ["500", "900"] and set(facts["steering"]["900"]) == {"own", "next", "x0_mse"}
    assert set(facts["steering"]["900"]["x0_mse"]) == {"own", "next", "empty"}
    assert facts["conditioning"].startswith("prompts") and "| 900 |" in res.stdout
    assert list(facts["students"]) == ["real", "0.0", "0.5"] and "| 0.5 |" in res.stdout
    assert all(0.0 <= r["mean"] <= 100.0 for r in facts["students"].values())
    generator = ["--generator", str(models / "latte")]
    for flags, message in (([], "--generator is required"),
                           ([*generator, "--timesteps", "1000"], r"--timesteps must lie in \[0, 1000\)"),
                           ([*generator, "--num_frames", "16"], "makes 8-frame videos of 32x32; use --num_frames 8"),
                           ([*generator, "--frame_size", "64"], "use --num_frames 8 --frame_size 32"),
                           ([*generator, "--sdedit_strengths", "1.5"], r"--sdedit_strengths must lie in \[0, 1\]"),
                           ([*generator, "--num_inference_steps", "0"], "--num_inference_steps must be >= 1")):
        res = run("recipes/diagnose_latte.py", *flags, check=False)
        assert res.returncode == 2 and re.search(message, res.stderr), res.stderr[-300:]
