import time

import numpy as np
import pytest

from hf_vdd.data import toy_action_class_names, toy_actions
from hf_vdd.data.toy_actions import APPEARANCE_CLASSES, MOTION_CLASSES


def test_classes_and_shapes(tiny_toy):
    assert tiny_toy["train"].features["label"].names == ["square", "disc", "slide-right", "slide-left"]
    assert len(tiny_toy["train"]) == 32 and len(tiny_toy["test"]) == 16
    lengths = {np.asarray(v).shape[0] for v in tiny_toy["train"].with_format("numpy")["video"]}
    assert len(lengths) > 3 and min(lengths) >= 8 and max(lengths) <= 20  # variable length


def test_seeded_and_fast():
    start = time.perf_counter()
    a = toy_actions(num_classes=10, train_per_class=4, test_per_class=2, seed=3)
    assert time.perf_counter() - start < 10
    b = toy_actions(num_classes=10, train_per_class=4, test_per_class=2, seed=3)
    c = toy_actions(num_classes=10, train_per_class=4, test_per_class=2, seed=4)
    va, vb, vc = (d["train"].with_format("numpy")[0]["video"] for d in (a, b, c))
    assert np.array_equal(va, vb) and not (va.shape == vc.shape and np.array_equal(va, vc))


def test_motion_classes_share_appearance_and_move():
    d = toy_actions(num_classes=10, train_per_class=6, test_per_class=1, seed=0)["train"].with_format("numpy")
    names = d.features["label"].names
    assert names == APPEARANCE_CLASSES + MOTION_CLASSES
    for row in d:
        v = np.asarray(row["video"], np.float32)
        change = np.abs(np.diff(v, axis=0)).mean()
        if names[int(row["label"])] in ("rotate-cw", "rotate-ccw", "bounce"):
            assert change > 1.0  # fast motion: consecutive frames differ beyond the noise
    # appearance of the moving object is the same family for every motion class: bright pixel count is similar
    area = {n: [] for n in MOTION_CLASSES}
    for row in d:
        n = names[int(row["label"])]
        if n in area:
            area[n].append((np.asarray(row["video"][0]).max(-1) > 110).sum())
    means = [np.mean(v) for v in area.values()]
    assert max(means) < 2.0 * min(means)


def test_bad_class_count():
    with pytest.raises(ValueError, match="2 to 10"):
        toy_action_class_names(11)
