"""The shared teacher: trained once on the real split and cached, or loaded from a folder (ConvNet3D, VideoMAE)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from hf_vdd.data import load_video_dataset
from hf_vdd.models import ConvNet3D, VideoMAEStudent
from hf_vdd.teacher import load_teacher
from hf_vdd.training import TrainConfig


@pytest.fixture(scope="module")
def train_set(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)


def test_trained_teacher_is_cached_and_beats_chance(train_set, tmp_path):
    config = TrainConfig(steps=60, batch_size=16)
    teacher = load_teacher(None, train_set, config, cache_dir=tmp_path, show_progress=False)
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and (folders[0] / "config.json").is_file()
    videos = train_set.stack(range(len(train_set)))
    probs = teacher.probs(videos)
    assert probs.shape == (len(train_set), 4)
    assert torch.allclose(probs.sum(-1), torch.ones(len(train_set)), atol=1e-5)
    acc = (probs.argmax(-1).numpy() == train_set.labels).mean()
    assert acc > 0.5  # 4 classes: chance is 0.25
    again = load_teacher(None, train_set, config, cache_dir=tmp_path, show_progress=False)
    assert torch.allclose(again.probs(videos), probs)  # reused from disk, not retrained
    assert teacher.features(videos[:3]).shape == (3, 128)


def test_a_teacher_trained_under_bf16_is_cached_apart_from_the_fp32_one(train_set, tmp_path, monkeypatch):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    import hf_vdd.teacher
    from hf_vdd.teacher import _cache_key

    monkeypatch.setattr(hf_vdd.teacher, "train_student", lambda model, *a, **k: model)  # the cache is tested here

    config = TrainConfig(steps=1, batch_size=8)
    folders = []
    try:
        for precision in ("no", "bf16"):
            AcceleratorState._reset_state(reset_partial_state=True)
            load_teacher(None, train_set, config, cache_dir=tmp_path, show_progress=False,
                         accelerator=Accelerator(cpu=True, mixed_precision=precision))
            folders.append(sorted(p.name for p in tmp_path.iterdir()))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    fp32 = f"convnet3d-{_cache_key(train_set, replace(config, runs=1, show_progress=False))}"
    assert folders[0] == [fp32]  # the fp32 key is the one caches written before mixed precision carry
    assert _cache_key(train_set, replace(config, channels_last=True)) != _cache_key(train_set, config)
    assert len(folders[1]) == 2 and fp32 in folders[1]  # bf16 trained its own teacher, not the fp32 one reused
    (bf16,) = set(folders[1]) - {fp32}
    assert json.loads((tmp_path / bf16 / "teacher.json").read_text())["mixed_precision"] == "bf16"


def test_saved_teachers_load_and_resize_inputs(train_set, tmp_path):
    ConvNet3D(num_classes=4).save_pretrained(tmp_path / "conv")
    conv = load_teacher(tmp_path / "conv", train_set)
    assert conv.probs(torch.rand(2, 5, 3, 40, 40)).shape == (2, 4)  # other T and size are resampled
    VideoMAEStudent.from_config(4, 8, 32).model.save_pretrained(tmp_path / "mae")
    mae = load_teacher(str(tmp_path / "mae"), train_set)
    assert mae.features(torch.rand(2, 8, 3, 32, 32)).shape[0] == 2
    ConvNet3D(num_classes=7).save_pretrained(tmp_path / "wrong")
    with pytest.raises(ValueError, match="predicts 7 classes"):
        load_teacher(tmp_path / "wrong", train_set)
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_teacher(tmp_path / "missing", train_set)


# ---- VideoMAE teachers: a head over the data's classes, or a linear probe; never a random head -----------------
def _save_videomae(folder, labels, head=True):
    """A seeded tiny random VideoMAE classifier named with `labels` (or its backbone only, `head=False`)."""
    from transformers import VideoMAEModel

    torch.manual_seed(0)
    model = VideoMAEStudent.from_config(len(labels), 8, 32, id2label=dict(enumerate(labels)),
                                        label2id={n: i for i, n in enumerate(labels)}).model
    (model if head else VideoMAEModel(model.config)).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def tinted():
    """A linearly separable set: 3 classes of noisy clips tinted red, green or blue; 10 train / 5 test per class."""
    from datasets import Array4D, ClassLabel, Dataset, DatasetDict, Features

    rng = np.random.default_rng(0)
    names = ["red", "green", "blue"]
    features = Features({"video": Array4D(shape=(None, 32, 32, 3), dtype="uint8"), "label": ClassLabel(names=names)})
    splits = {}
    for split, per_class in (("train", 10), ("test", 5)):
        labels = [i % 3 for i in range(3 * per_class)]
        videos = [(np.clip(rng.uniform(0, 0.6, (8, 32, 32, 3)) + 0.4 * np.eye(3)[k], 0, 1) * 255).astype(np.uint8)
                  for k in labels]
        splits[split] = Dataset.from_dict({"video": videos, "label": labels}, features=features)
    data = DatasetDict(splits)
    return [load_video_dataset(data, split, num_frames=8, frame_size=32).preload(show_progress=False)
            for split in ("train", "test")]


def test_videomae_with_other_labels_gets_a_linear_probe(tinted, tmp_path):
    train, test = tinted
    _save_videomae(tmp_path / "abc", ["a", "b", "c"])
    teacher = load_teacher(tmp_path / "abc", train, show_progress=False)
    assert teacher.model.model.config.id2label == {0: "red", 1: "green", 2: "blue"}
    probe = teacher.probe
    assert probe["num_train"] == len(train) == 30 and probe["num_held_out"] == 6  # 20 % of 10 per class
    assert probe["train_accuracy"] == 1.0 and probe["held_out_accuracy"] == 1.0  # chance: 1/3
    acc = (teacher.probs(train.stack(range(len(train)))).argmax(-1).numpy() == train.labels).mean()
    assert acc == probe["train_accuracy"]  # the installed head is the probe
    assert "linear probe" in teacher.head and teacher.info()["probe"] is probe
    # measured on a given split (the test split) instead
    on_test = load_teacher(tmp_path / "abc", train, show_progress=False, eval_set=test).probe
    assert on_test["num_held_out"] == 15 and on_test["held_out_accuracy"] > 0.9
    # a backbone-only checkpoint has no head to trust: probed too
    _save_videomae(tmp_path / "backbone", ["red", "green", "blue"], head=False)
    assert load_teacher(tmp_path / "backbone", train, show_progress=False).probe["train_accuracy"] == 1.0


def test_videomae_with_the_datas_labels_in_another_order_is_reordered(train_set, tmp_path):
    names = train_set.class_names  # square, disc, slide-right, slide-left
    saved = ["Slide_Left", "kicking", "Square", "slide right", "DISC"]  # other case/separators, one extra class
    model = _save_videomae(tmp_path / "mae", saved).eval()
    teacher = load_teacher(tmp_path / "mae", train_set)
    assert teacher.probe is None and "rows in the data's class order" in teacher.head
    videos = torch.rand(3, 8, 3, 32, 32)
    with torch.no_grad():
        full = model(pixel_values=teacher._fit(videos)).logits
    assert torch.allclose(teacher.logits(videos), full[:, [2, 4, 3, 0]], atol=1e-5)
    assert teacher.model.model.config.id2label == dict(enumerate(names))


def test_teacher_head_error_names_the_mismatch_and_the_fix(train_set, tmp_path):
    _save_videomae(tmp_path / "abc", ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\(3, e.g. \['a', 'b', 'c'\]\).*missing 4 of 4.*teacher_head='probe'"):
        load_teacher(tmp_path / "abc", train_set, teacher_head="error")
    _save_videomae(tmp_path / "backbone", list(train_set.class_names), head=False)
    with pytest.raises(ValueError, match="no classifier head"):
        load_teacher(tmp_path / "backbone", train_set, teacher_head="error")
    with pytest.raises(ValueError, match="teacher_head must be one of"):
        load_teacher(tmp_path / "abc", train_set, teacher_head="random")


def test_card_states_the_probe():
    from hf_vdd.data.distilled import teacher_section

    text = teacher_section({"source": "org/videomae-k400", "head": "linear probe ...", "probe": {
        "train_accuracy": 0.91, "held_out_accuracy": 0.8, "held_out": "20 % ...", "num_train": 100, "num_held_out": 20,
        "feature_dim": 768}})
    assert "## Teacher" in text and "train accuracy 91.0%" in text and "held-out accuracy 80.0% (20 clips" in text
