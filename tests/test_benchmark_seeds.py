"""Benchmark cells at several distillation seeds, tabulated with paired differences (`recipes/seeds_table.py`)."""

import json

import numpy as np
import pytest

from hf_vdd.benchmark_seeds import seed_groups, seeds_table


def _record(method, seed, top1, ipc=5):
    return {"dataset": "toy-actions", "method": method, "ipc": ipc, "student": "convnet3d",
            "top1": {"mean": top1, "std": 0.0}, "settings": {"seed": seed}}


def test_paired_differences_per_seed():
    records = [_record("dm", 0, 40.0), _record("dm", 1, 50.0), _record("idtd", 0, 43.0), _record("idtd", 1, 51.0),
               _record("idtd", 2, 60.0), _record("full", 0, 90.0, ipc=None)]
    table = seeds_table(records, ("dm", "herding"))
    assert "| method | seed 0 | seed 1 | seed 2 | mean over seeds | paired − dm |" in table
    assert "herding" not in table and "full" not in table  # an absent reference has no column; references rows only
    # idtd's mean is over its own seeds; its paired difference only over the seeds DM has (0, 1)
    assert "| idtd | 43.0 | 51.0 | 60.0 | 51.3 ± 6.9 | +2.0 ± 1.0 (ahead 2/2) |" in table
    assert "| dm | 40.0 | 50.0 | – | 45.0 ± 5.0 | – |" in table


def test_a_cell_twice_at_one_seed_is_refused():
    with pytest.raises(ValueError, match="Two results for dm .* at seed 0: pass each benchmark output folder once"):
        seed_groups([_record("dm", 0, 40.0), _record("dm", 0, 41.0)])


def test_recipe_reads_benchmark_folders_of_two_seeds(tmp_path, run_recipe, monkeypatch):
    """The benchmark's own records carry their seed: two `--seed` runs give one row per method and a paired column."""
    import hf_vdd.benchmark as bench
    from hf_vdd.metrics import classification_metrics, summarize_runs

    calls = []

    def evaluate(data, test, config, accelerator=None, **kwargs):  # call i gets i + 1 classes right
        calls.append(config.seed)
        n, right = test.num_classes, len(calls)
        logits = np.eye(n)[[c if c < right else (c + 1) % n for c in range(n)]]
        return summarize_runs([classification_metrics(logits, np.arange(n), n)], 0.0, {})

    monkeypatch.setattr(bench, "evaluate_distilled", evaluate)
    folders = []
    for seed in (0, 1):
        folders.append(str(tmp_path / f"seed{seed}"))
        run_recipe("recipes/benchmark.py", "--datasets", "toy-actions", "--methods", "random", "herding", "--ipc", "1",
                   "--runs", "1", "--frame_size", "16", "--num_frames", "8", "--seed", str(seed),
                   "--output_dir", folders[-1])
    assert calls == [0, 0, 1, 1]  # the students follow the seed too
    md = tmp_path / "seeds.md"
    out = run_recipe("recipes/seeds_table.py", "--results", *folders, "--references", "random", "--output_md", str(md))
    assert "| herding | 20.0 | 40.0 | 30.0 ± 10.0 | +10.0 ± 0.0 (ahead 2/2) |" in out.stdout
    assert "| random | 10.0 | 30.0 | 20.0 ± 10.0 | – |" in out.stdout
    assert md.read_text().strip() == out.stdout.strip()
    again = run_recipe("recipes/seeds_table.py", "--results", folders[0], folders[0], check=False)
    assert again.returncode == 2 and "pass each benchmark output folder once" in again.stderr
    missing = run_recipe("recipes/seeds_table.py", "--results", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "No benchmark results at" in missing.stderr
    assert json.loads((tmp_path / "seed1" / "results" / "results.json").read_text())[0]["settings"]["seed"] == 1
