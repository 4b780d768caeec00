"""The shared teacher: trained once on the real split and cached, or loaded from a folder (ConvNet3D, VideoMAE)."""

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
