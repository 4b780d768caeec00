"""The benchmark runner: cells, cost columns, cross-architecture, repo folders, resume, README block, plots."""

import json
import time

import pytest
import torch
from datasets import load_dataset

from hf_vdd import load_distilled
from hf_vdd.benchmark import (
    PeakMemory,
    cell_settings,
    cells_table,
    leaderboard,
    overrides_text,
    save_results_repo,
    settings_key,
)


def _rec(method, ipc, top1, dataset="d"):
    m = {"mean": top1, "std": 0.0}
    return {"dataset": dataset, "method": method, "ipc": ipc, "top1": m, "top5": m, "auc": m, "f1": m}


def test_leaderboard_marks_the_best_cell():
    board = leaderboard([_rec("full", None, 90.0), _rec("random", 1, 20.0), _rec("dm", 1, 30.0),
                         _rec("random", 5, 40.0)])
    lines = board.splitlines()
    assert lines[0] == "| method | d IPC 1 | d IPC 5 |"
    assert "| full data | 90.0 ± 0.0 | 90.0 ± 0.0 |" in lines
    assert "| dm | **30.0 ± 0.0** | – |" in lines and "| random | 20.0 ± 0.0 | **40.0 ± 0.0** |" in lines
    assert "- `dm`: defaults; student –" in lines
    alone = leaderboard([_rec("full", None, 80.0), _rec("static", None, 79.0)]).splitlines()  # no IPC cell yet
    assert alone[:4] == ["| method | d (all clips) |", "|---|---|", "| full data | 80.0 ± 0.0 |",
                         "| static data | 79.0 ± 0.0 |"]


def test_plots_of_reference_rows_alone_have_a_legend(tmp_path):
    import warnings

    from hf_vdd.benchmark_plots import plot_results

    recs = [_rec(m, None, top1) | {"per_class": [top1, top1]} for m, top1 in (("full", 80.0), ("static", 79.0))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        written = plot_results(recs, tmp_path)
    assert (tmp_path / "accuracy_vs_ipc.png") in written


def test_overrides_are_shown_per_cell():
    rec = _rec("idtd@C", 5, 40.0) | {"setting": "16x32x32", "distiller_overrides": {"ablation": "C"},
                                     "train_overrides": {"epochs": 2}, "distill_seconds": 1.0}
    assert overrides_text(rec) == 'ablation="C", train.epochs=2'
    assert "| 16x32x32 | ablation=\"C\", train.epochs=2 |" in cells_table([rec])
    david = rec | {"distill_stats": {"policy_fraction": 0.0912}}
    assert "| 1.0 (search 9% of final) |" in cells_table([david])
    assert 'idtd@C`: ablation="C", train.epochs=2; student 16x32x32' in leaderboard([rec])


def test_a_cells_key_holds_the_defaults_it_ran_with(monkeypatch):
    """A stored cell is reused only with the same effective settings: a changed default runs it again (session 29
    changed IDTD's `init`), spelling a default out changes nothing, and where checkpoints go is not a setting."""
    import dataclasses
    from argparse import Namespace

    from hf_vdd.distillers.idtd import IDTDConfig, IDTDDistiller

    args = Namespace(runs=3, batch_size=32, steps=300, full_steps=500, seed=0, pool_dir=None, protocol="fast")

    def key(overrides):
        return settings_key(cell_settings(args, overrides, 32, 16, "idtd", 5, "convnet3d"))

    plain = cell_settings(args, {}, 32, 16, "idtd", 5, "convnet3d")
    assert plain["distiller"]["init"] == "herding" and plain["distiller"]["iterations"] == IDTDConfig().iterations
    assert plain["train"]["steps"] == 300 and plain["train"]["lr"] == 0.01 and "show_progress" not in plain["train"]
    assert key({"idtd": {"init": "herding"}}) == key({}) != key({"idtd": {"init": "real"}})
    assert key({"idtd": {"checkpointing_steps": 10, "log_every": 1}}) == key({})
    assert key({"idtd": {"train": {"lr": 0.01}}}) == key({}) != key({"idtd": {"train": {"lr": 0.02}}})
    assert cell_settings(args, {}, 32, 16, "full", None, "convnet3d")["distiller"] == {}

    @dataclasses.dataclass
    class OldDefault(IDTDConfig):
        init: str = "real"

    before = key({})
    monkeypatch.setattr(IDTDDistiller, "config_class", OldDefault)
    assert key({}) != before and key({}) == key({"idtd": {"init": "real"}})


def test_results_repo_card_comes_from_the_template(tmp_path):
    extra = {"distill_seconds": 1.0, "per_class": [20.0, 40.0], "setting": "16x32x32", "student": "convnet3d"}
    records = [_rec("full", None, 90.0) | extra, _rec("dm", 1, 30.0) | extra]
    card = (save_results_repo(records, tmp_path / "res", "org/bench", command="python x.py") / "README.md").read_text()
    assert card.startswith("---\n") and "- benchmark" in card  # the card data (tags) as YAML front matter
    assert "# hf_vdd benchmark results" in card and "| dm | **30.0 ± 0.0** |" in card
    assert 'load_dataset("org/bench")' in card and "```\npython x.py\n```" in card
    assert len(load_dataset(str(tmp_path / "res"), split="train")) == 2


def test_peak_memory_sees_an_allocation():
    import numpy as np

    with PeakMemory(interval=0.01) as cost:
        block = np.ones(64 * 2**20 // 8)  # 64 MB
        block += 1
    assert cost.peak_rss_mb >= 64 and cost.seconds > 0


@pytest.mark.slow
def test_benchmark_recipe_end_to_end(tmp_path, run_recipe):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:bench:start -->\nold\n<!-- results:bench:end -->\ntail\n")
    out = tmp_path / "bench"
    cmd = ["recipes/benchmark.py", "--datasets", "toy-actions", "--methods", "full", "random",
           "herding", "random@b4", "--ipc", "1", "--runs", "1", "--steps", "3", "--full_steps", "3",
           "--frame_size", "16", "--students", "convnet3d", "videomae", "--output_dir", str(out), "--readme",
           str(readme),
           "--overrides", '{"random@b4": {"train": {"batch_size": 4}}}']
    first = run_recipe(*cmd, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["results", "toy-actions-ipc1-herding", "toy-actions-ipc1-random",
                                                  "toy-actions-ipc1-random-b4"]
    records = json.loads((out / "results" / "results.json").read_text())
    assert len(records) == 8  # 4 cells x 2 students
    variant = next(r for r in records if r["method"] == "random@b4")
    assert variant["train_overrides"] == {"batch_size": 4} and variant["distiller_overrides"] == {}
    random = next(r for r in records if r["method"] == "random" and r["student"] == "convnet3d")
    assert variant["distill_seconds"] == random["distill_seconds"]  # same distiller settings: set reused
    herding = next(r for r in records if r["method"] == "herding" and r["student"] == "videomae")
    assert herding["stored_bytes"] == 10 * 16 * 3 * 16 * 16 and herding["peak_rss_mb"] > 0  # toy: 16 frames
    assert herding["setting"].startswith("16x16x16")
    assert herding["ratio_to_full"] is not None and len(herding["per_class"]) == 10
    rows = load_dataset(str(out / "results"), split="train")
    assert len(rows) == 8 and set(rows["student"]) == {"convnet3d", "videomae"}
    for png in ("accuracy_vs_ipc.png", "accuracy_vs_storage.png", "per_class_toy-actions.png"):
        assert (out / "results" / png).stat().st_size > 1000
    assert "videomae" in load_distilled(out / "toy-actions-ipc1-random").eval_results
    card = (out / "toy-actions-ipc1-herding" / "README.md").read_text()  # a cell's card names the run that made it
    assert "## Reproduce" in card and "benchmark.py --datasets toy-actions --methods full random herding" in card
    shared = [out / "results" / f for f in ("README.md", "results.json", "results.md")]
    shared += [p for cell in out.glob("toy-actions-*") for p in (cell / "README.md", cell / "distillation.json")]
    assert all(str(tmp_path) not in p.read_text() for p in shared)  # cards and records name no machine folders
    assert "--output_dir bench --readme README.md" in card
    text = readme.read_text()
    assert "old" not in text and "| herding |" in text and text.endswith("tail\n")
    assert "- `random@b4`: train.batch_size=4; student 16x16x16" in text  # every override is shown
    again = run_recipe(*cmd, check=False)  # resumable: nothing recomputed
    assert again.returncode == 0 and "[convnet3d]:" not in again.stdout
    assert len(json.loads((out / "results" / "results.json").read_text())) == 8
    # a changed setting re-runs the cell (and replaces its stored numbers); the others are kept
    changed = run_recipe(*cmd[:4], "random", "--ipc", "1", "--runs", "1", "--steps", "4", "--students",
                         "convnet3d", "--output_dir", str(out), check=False)
    assert changed.returncode == 0 and "settings changed since the stored result" in changed.stdout
    records = json.loads((out / "results" / "results.json").read_text())
    random = [r for r in records if r["method"] == "random" and r["student"] == "convnet3d"]
    assert len(records) == 8 and len(random) == 1 and random[0]["settings"]["steps"] == 4
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    refused = run_recipe(*cmd[:3], "--output_dir", str(mine), check=False)
    assert refused.returncode == 2 and "hf_vdd did not write" in refused.stderr
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    bad = run_recipe(*cmd[:3], "--methods", "nope", check=False)
    assert bad.returncode == 2 and "Unknown methods ['nope']" in bad.stderr
    no_pool = run_recipe(*cmd[:3], "--methods", "tacdt", check=False)
    assert no_pool.returncode == 2 and "pass --pool_dir" in no_pool.stderr


def test_a_mixed_precision_run_is_its_own_setting(tmp_path, run_recipe, monkeypatch):
    """Autocast changes a cell's numbers: a bf16 run re-runs an fp32 cell instead of reusing it, under a bf16
    accelerator, and its record and setting column say bf16; fp32 cells keep the settings keys they always had."""
    import numpy as np
    from accelerate.state import AcceleratorState

    import hf_vdd.benchmark as bench
    from hf_vdd.metrics import classification_metrics, summarize_runs

    precisions = []

    def evaluate(data, test, config, accelerator=None, **kwargs):  # the students' work is not what is tested
        precisions.append(str(accelerator.mixed_precision))
        labels = np.arange(test.num_classes)
        return summarize_runs([classification_metrics(np.eye(test.num_classes), labels, test.num_classes)], 0.0, {})

    monkeypatch.setattr(bench, "evaluate_distilled", evaluate)
    out = tmp_path / "bench"
    cmd = ["recipes/benchmark.py", "--datasets", "toy-actions", "--methods", "random", "--ipc", "1", "--runs", "1",
           "--frame_size", "16", "--num_frames", "8", "--output_dir", str(out)]
    run_recipe(*cmd)
    (fp32,) = json.loads((out / "results" / "results.json").read_text())
    try:  # one process keeps Accelerate's first state: reset it, as a new `python recipes/...` process would be
        AcceleratorState._reset_state(reset_partial_state=True)
        bf16 = run_recipe(*cmd, "--mixed_precision", "bf16", env={"ACCELERATE_MIXED_PRECISION": "no"})  # undone after
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert "settings changed since the stored result" in bf16.stdout and precisions == ["no", "bf16"]
    (record,) = json.loads((out / "results" / "results.json").read_text())
    assert "mixed_precision" not in fp32["settings"] and not fp32["setting"].endswith("bf16")
    assert record["settings"]["mixed_precision"] == "bf16" and record["setting"].endswith("bs 32, bf16")
    assert record["settings_key"] != fp32["settings_key"]


def test_realism_tracks_once_for_both_ipcs(tmp_path, run_recipe, monkeypatch):
    """The benchmark hands realism one candidate cache per dataset: its IPC 2 cell reuses the IPC 1 cell's tracked
    and scored candidates, and its distillation time still counts that work."""
    import numpy as np

    import hf_vdd.benchmark as bench
    from hf_vdd.distillers import realism
    from hf_vdd.metrics import classification_metrics, summarize_runs

    def evaluate(data, test, config, accelerator=None, **kwargs):  # the students' work is not what is tested
        labels = np.arange(test.num_classes)
        return summarize_runs([classification_metrics(np.eye(test.num_classes), labels, test.num_classes)], 0.0, {})

    monkeypatch.setattr(bench, "evaluate_distilled", evaluate)
    detected, load = [], realism.load_detector

    def counting_detector(*args):
        detector = load(*args)
        return lambda frames: detected.append(1) or detector(frames)

    monkeypatch.setattr(realism, "load_detector", counting_detector)
    out = tmp_path / "bench"
    run_recipe("recipes/benchmark.py", "--datasets", "toy-actions", "--methods", "realism", "--ipc", "1", "2",
               "--runs", "1", "--frame_size", "32", "--num_frames", "4", "--output_dir", str(out), "--overrides",
               '{"realism": {"candidates_per_class": 3, "grid": 1, "fast_tracker": true, "teacher_steps": 2}}',
               env={"HF_VDD_CACHE": str(tmp_path / "cache")})
    records = {r["ipc"]: r for r in json.loads((out / "results" / "results.json").read_text())}
    assert set(records) == {1, 2} and len(detected) == 30  # 10 classes x 3 candidates, detected and tracked once
    assert records[2]["distill_seconds"] >= records[1]["distill_seconds"] * 0.5


@pytest.mark.parametrize("overrides, message", [
    ('{"dm": {"iterationz": 5}}', "unknown field(s) ['iterationz']"),
    ('{"dm": {"train": {"stepz": 5}}}', "unknown field(s) ['train.stepz']"),
    ('{"dmm": {"iterations": 5}}', "key 'dmm', which is not in --methods"),
    ('{"random": {"seed": 1}}', "key 'random', which is not in --methods ['dm']"),
    ('{"dm": {"train": {"student_pretrained": "./no-such-student"}}}',
     "--student_pretrained ./no-such-student: no such folder"),
    ('["dm"]', "--overrides must be a JSON object of methods"),  # was an AttributeError traceback
    ('{"dm": {"iterations": "200"}}', "iterations must be an integer, got '200' (str)"),  # was: failed in the loop
    ('{"dm": {"lr_img": -1, "train": {"lr": 0.01}}}', "lr_img must be >= 0, got -1"),  # was: after the folder
    ('{"dm": {"train": {"runs": 0}}}', "runs must be >= 1, got 0"),
])
def test_benchmark_rejects_bad_overrides_before_any_work(tmp_path, run_recipe, overrides, message):
    out = tmp_path / "bench"
    bad = run_recipe("recipes/benchmark.py", "--methods", "dm", "--output_dir", str(out), "--overrides", overrides,
                     check=False)
    assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-1000:]
    assert not out.exists()


def test_partial_set_and_runs_round_trip(tmp_path):
    import hf_vdd.benchmark_partial as partial
    from hf_vdd.data.distilled import DistillationOutput

    folder = partial.partial_dir(tmp_path, "toy-ipc1-dm")
    float_set = DistillationOutput(videos=torch.rand(2, 3, 3, 8, 8) * 1.3 - 0.1, labels=[0, 1], class_names=["a", "b"],
                                   method="dm", ipc=1, soft_labels=torch.rand(2, 2), stats={"iterations": 4})
    partial.save_partial_set(float_set, folder, "k1", extra={"seconds": 2.5})
    kept, extra = partial.load_partial_set(folder, "k1")
    assert torch.equal(kept.videos, float_set.videos)  # full precision (the published folder stores float16)
    assert torch.equal(kept.soft_labels, float_set.soft_labels) and kept.labels.tolist() == [0, 1]
    assert kept.stats == {"iterations": 4} and kept.method == "dm" and extra == {"seconds": 2.5}
    assert partial.load_partial_set(folder, "other settings") is None
    ragged = DistillationOutput(videos=[torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.ones(2, 3, 8, 8)],
                                labels=[0, 1], class_names=["a", "b"], method="david", ipc=1,
                                source_index=torch.tensor([5, 9]))
    partial.save_partial_set(ragged, folder, "k2")
    kept, _ = partial.load_partial_set(folder, "k2")
    assert [tuple(v.shape) for v in kept.videos] == [(4, 3, 8, 8), (2, 3, 8, 8)] and isinstance(kept.videos, list)
    assert kept.videos[0].dtype == torch.uint8 and kept.source_index.tolist() == [5, 9]
    partial.save_partial_runs(folder, "convnet3d", "cell", [{"top1": 40.0}])
    assert partial.load_partial_runs(folder, "convnet3d", "cell") == [{"top1": 40.0}]
    assert partial.load_partial_runs(folder, "convnet3d", "changed") == []  # another cell setting
    assert partial.load_partial_runs(folder, "videomae", "cell") == []
    assert (tmp_path / partial.MARKER).is_file() and not list(folder.glob("*.tmp"))
    partial.remove_partial(folder)
    assert not (tmp_path / "partial").exists()  # the last open cell gone: the folder and its marker too


class _Killed(BaseException):
    """Stands for a kill (SIGTERM, the end of a session) between two student runs."""


@pytest.mark.slow
def test_a_killed_benchmark_resumes_inside_its_cell(tmp_path, run_recipe, monkeypatch):
    import hf_vdd.benchmark_partial as partial
    from hf_vdd.distillers.dm import DMDistiller

    cmd = ["recipes/benchmark.py", "--datasets", "toy-actions", "--methods", "dm", "--ipc", "1", "--runs", "2",
           "--steps", "3", "--frame_size", "16", "--num_frames", "8", "--overrides", '{"dm": {"iterations": 1}}']
    run_recipe(*cmd, "--output_dir", str(tmp_path / "whole"))
    expected = json.loads((tmp_path / "whole" / "results" / "results.json").read_text())[0]
    out = tmp_path / "killed"
    save_runs = partial.save_partial_runs

    def save_then_die(folder, student, key, runs):
        save_runs(folder, student, key, runs)
        raise _Killed

    monkeypatch.setattr(partial, "save_partial_runs", save_then_die)
    with pytest.raises(_Killed):
        run_recipe(*cmd, "--output_dir", str(out))
    monkeypatch.setattr(partial, "save_partial_runs", save_runs)
    assert sorted(p.name for p in out.iterdir()) == ["partial"]  # killed in the first cell: no results yet
    assert len(json.loads((out / "partial" / "toy-actions-ipc1-dm" / "runs-convnet3d.json").read_text())["runs"]) == 1
    monkeypatch.setattr(DMDistiller, "__call__", lambda *a, **k: pytest.fail("distilled again"))
    resumed = run_recipe(*cmd, "--output_dir", str(out))
    assert "the distilled set an interrupted run kept" in resumed.stdout
    assert "1 student run(s) kept from an interrupted run" in resumed.stdout
    record = json.loads((out / "results" / "results.json").read_text())[0]
    assert [r["top1"] for r in record["runs"]] == [r["top1"] for r in expected["runs"]]  # as if never killed
    assert record["top1"] == expected["top1"] and record["distill_seconds"] > 0  # the killed run's distillation
    assert sorted(p.name for p in out.iterdir()) == ["results", "toy-actions-ipc1-dm"]  # partial/ removed


def test_a_benchmark_killed_mid_distillation_resumes_from_its_checkpoint(tmp_path, run_recipe, monkeypatch):
    from hf_vdd.distillers.dm import DMDistiller

    cmd = ["recipes/benchmark.py", "--datasets", "toy-actions", "--methods", "dm", "--ipc", "1", "--runs", "1",
           "--steps", "2", "--frame_size", "16", "--num_frames", "8", "--checkpointing_steps", "2",
           "--overrides", '{"dm": {"iterations": 4}}']
    run_recipe(*cmd, "--output_dir", str(tmp_path / "whole"))
    out, step, seen = tmp_path / "killed", DMDistiller.step, []

    def step_until_3(self, sampler, it, *a, **k):
        if it == 3:
            raise _Killed
        time.sleep(2.0)  # the killed run's 2 s iterations count in the resumed cell's time
        return step(self, sampler, it, *a, **k)

    monkeypatch.setattr(DMDistiller, "step", step_until_3)
    with pytest.raises(_Killed):
        run_recipe(*cmd, "--output_dir", str(out))
    (ckpts,) = (out / "partial" / "toy-actions-ipc1-dm").glob("checkpoints-*")
    assert [p.name for p in ckpts.iterdir()] == ["checkpoint-2"]

    def counted(self, sampler, it, *a, **k):
        seen.append(it)
        return step(self, sampler, it, *a, **k)

    monkeypatch.setattr(DMDistiller, "step", counted)
    run_recipe(*cmd, "--output_dir", str(out))
    assert seen == [2, 3]  # resumed from checkpoint-2, not from iteration 0
    resumed, whole = (load_distilled(d / "toy-actions-ipc1-dm") for d in (out, tmp_path / "whole"))
    assert torch.equal(torch.stack(resumed.videos), torch.stack(whole.videos))  # the same trajectory
    record, expected = (json.loads((d / "results" / "results.json").read_text())[0] for d in (out, tmp_path / "whole"))
    assert record["top1"] == expected["top1"] and record["settings_key"] == expected["settings_key"]
    assert record["distill_seconds"] >= resumed.stats["resumed_seconds"] >= 4.0
    assert not (out / "partial").exists()  # recorded: the checkpoints went with the cell's partial folder
