"""Temporal-redundancy analysis: Delta per class, TR subset, R_t / R_IC, Delta groups, and the recipe."""

import json

import numpy as np
import pytest
import torch

from hf_vdd import analysis
from hf_vdd.data import load_video_dataset
from hf_vdd.models import ConvNet3D
from hf_vdd.training import TrainConfig, evaluate_distilled


@pytest.fixture(scope="module")
def sets(tiny_toy):
    kw = dict(num_frames=8, frame_size=32)
    return (load_video_dataset(tiny_toy, "train", **kw).preload(show_progress=False),
            load_video_dataset(tiny_toy, "test", **kw).preload(show_progress=False))


def test_class_deltas_are_full_minus_static(sets, tmp_path):
    train, test = sets  # square, disc (appearance), slide-right, slide-left (motion only)
    config = TrainConfig(steps=4, batch_size=8, runs=1, show_progress=False)  # identities, not accuracy
    d = analysis.class_deltas(train, test, config)
    assert d["class_names"] == ["square", "disc", "slide-right", "slide-left"]
    assert np.allclose(d["delta"], np.asarray(d["acc_full"]) - np.asarray(d["acc_static"]))
    static = evaluate_distilled(train.with_options(static=True), test.with_options(static=True), config)
    assert d["acc_static"] == static.per_class  # the static student trains and tests on one repeated frame
    # Which classes get the largest Delta is a property of a well-trained student: on this 32-clip set a 100-step
    # student learnt the slide directions in some seeds and not in others (measured on the code before and after
    # session 4), so that claim is checked on the benchmark's students (README: DAViD's Delta table), not here.
    analysis.plot_deltas(d, tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_tr_subset_keeps_top_k_and_relabels(sets):
    train, test = sets
    deltas = {"class_names": train.class_names, "delta": [1.0, 30.0, -5.0, 50.0]}
    sub = analysis.temporal_redundant_subset(train, test, deltas, k=2)
    assert sub["train"].features["label"].names == ["disc", "slide-left"]
    assert sorted(set(sub["train"]["label"])) == [0, 1]
    assert len(sub["train"]) == 16 and len(sub["test"]) == 8
    again = load_video_dataset(sub, "train", num_frames=8, frame_size=32)
    assert again.num_classes == 2 and again[0][0].shape == (8, 3, 32, 32)
    with pytest.raises(ValueError, match="k must be in 1..4"):
        analysis.temporal_redundant_subset(train, test, deltas, k=9)


def test_redundancy_metrics_static_video_is_more_redundant(sets):
    train, _ = sets
    torch.manual_seed(0)
    model = ConvNet3D(num_classes=4)
    m = analysis.redundancy_metrics(train, model)
    assert len(m["R_t"]) == 4 and all(0 <= v <= 1 for v in m["R_t"] + m["R_IC"])
    assert max(m["R_t"]) < 1  # not saturated
    static = analysis.redundancy_metrics(train.with_options(static=True), model)
    assert np.mean(static["R_t"]) > np.mean(m["R_t"])  # frozen frames: no temporal variance


def test_delta_groups():
    deltas = {"class_names": list("abcd"), "delta": [40.0, 0.0, 20.0, 10.0]}
    g = analysis.delta_groups(deltas, {"dm": [1.0, 2.0, 3.0, 4.0]}, num_groups=2)
    assert g["groups"] == [["b", "d"], ["c", "a"]] and g["accuracy"]["dm"] == [3.0, 2.0]


def test_recipe_groups_and_errors(tmp_path, run_recipe):
    out = tmp_path / "an"
    out.mkdir()
    names = ["square", "disc", "triangle", "ring", "cross", "slide-right", "slide-left", "rotate-cw", "rotate-ccw",
             "bounce"]
    (out / "deltas.json").write_text(json.dumps({"class_names": names, "delta": list(range(10))}))
    results = [{"dataset": "toy-actions", "method": "dm", "ipc": 1, "per_class": [float(i) for i in range(10)]}]
    (tmp_path / "results.json").write_text(json.dumps(results))
    cmd = ["recipes/temporal_redundancy.py", "--task", "groups", "--results",
           str(tmp_path / "results.json"), "--num_groups", "5", "--output_dir", str(out)]
    run_recipe(*cmd)
    groups = json.loads((out / "groups.json").read_text())
    assert groups["accuracy"]["dm ipc1"] == [0.5, 2.5, 4.5, 6.5, 8.5] and (out / "groups.png").is_file()
    bad = run_recipe(cmd[0], "--task", "nope", check=False)
    assert bad.returncode == 2 and "--task must be one of" in bad.stderr
