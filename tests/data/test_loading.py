import numpy as np
import pytest
import torch
from datasets import Array4D, ClassLabel, Dataset, DatasetDict, Features, Value
from torch.utils.data import DataLoader

from hf_vdd import CorruptVideoError, load_video_dataset
from tests.helpers import write_video


def test_toy_actions_builtin():
    ds = load_video_dataset("toy-actions", "train", num_frames=8, frame_size=32,
                            toy_kwargs={"num_classes": 4, "train_per_class": 3, "test_per_class": 2})
    x, y = ds[0]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert ds.num_classes == 4 and len(ds) == 12 and isinstance(y, int)


def test_array_dataset_dict_train_random_eval_fixed(tiny_toy):
    tr = load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32)
    te = load_video_dataset(tiny_toy, "test", num_frames=4, frame_size=32)
    assert tr.train and not te.train
    assert torch.equal(te[0][0], te[0][0])  # deterministic evaluation clips
    torch.manual_seed(0)
    draws = {tr.clip(0).sum().item() for _ in range(10)}
    assert len(draws) > 1  # random temporal start for training


def test_videofolder_with_workers(video_folder):
    ds = load_video_dataset(str(video_folder), "train", num_frames=4, frame_size=32)
    assert ds.kind == "video" and ds.class_names == ["disc", "slide-left", "slide-right", "square"]
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert sum(len(b[0]) for b in batches) == len(ds) == 12
    assert batches[0][0].shape == (4, 4, 3, 32, 32)


def test_path_column_and_string_labels(video_folder):
    files = sorted(str(p) for p in video_folder.glob("test/*/*.mp4"))
    ds = Dataset.from_dict({"path": files, "label": [p.split("/")[-2] for p in files]})
    vs = load_video_dataset(ds, num_frames=4, frame_size=32)
    assert vs.kind == "path" and vs.num_classes == 4 and vs[1][0].shape == (4, 3, 32, 32)


def test_unknown_dataset_and_missing_label(video_folder):
    with pytest.raises(ValueError, match="Unknown dataset 'no-such-org/no-such-set'"):
        load_video_dataset("no-such-org/no-such-set")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_video_dataset("./missing/folder")
    ds = Dataset.from_dict({"video": [str(next(video_folder.glob("train/*/*.mp4")))]})
    with pytest.raises(ValueError, match="No label column"):
        load_video_dataset(ds)


def test_wrong_array_shape():
    feats = Features({"video": Array4D(shape=(None, 3, 8, 8), dtype="uint8"), "label": ClassLabel(names=["a"])})
    ds = Dataset.from_dict({"video": [np.zeros((4, 3, 8, 8), np.uint8)], "label": [0]}, features=feats)
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        load_video_dataset(ds, num_frames=2, frame_size=8)


@pytest.mark.parametrize("kwargs", [{"frame_size": 0}, {"num_frames": -1}])
def test_non_positive_sizes(tiny_toy, kwargs):
    with pytest.raises(ValueError, match="must be > 0"):
        load_video_dataset(tiny_toy, **kwargs)


def test_corrupt_file_error_and_skip(tmp_path, video_folder):
    good = sorted(video_folder.glob("train/*/*.mp4"))[:2]
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00garbage" * 100)
    ds = Dataset.from_dict({"video": [str(good[0]), str(bad), str(good[1])], "label": [0, 1, 0]},
                           features=Features({"video": Value("string"), "label": ClassLabel(names=["a", "b"])}))
    strict = load_video_dataset(ds, num_frames=4, frame_size=32)
    with pytest.raises(CorruptVideoError, match="corrupt.mp4"):
        strict[1]
    lenient = load_video_dataset(ds, num_frames=4, frame_size=32, skip_corrupt=True)
    assert len(lenient) == 2 and lenient.skipped == [str(bad)]


def test_short_clip_and_split_alias(tmp_path, caplog):
    path = write_video(tmp_path / "short.mp4", np.zeros((3, 16, 16, 3), np.uint8))
    ds = DatasetDict({"validation": Dataset.from_dict({"video": [str(path)], "label": [0]}).cast_column(
        "label", ClassLabel(names=["x"]))})
    vs = load_video_dataset(ds, "test", num_frames=8, frame_size=16)
    with caplog.at_level("WARNING", logger="hf_vdd"):
        assert vs[0][0].shape == (8, 3, 16, 16) and vs[0][0].shape == (8, 3, 16, 16)
    assert caplog.text.count("short.mp4 has 3 frames, fewer than num_frames=8") == 1  # once per file


def test_single_dataset_has_no_other_split(tiny_toy):
    train = tiny_toy["train"]
    assert len(load_video_dataset(train, "train", num_frames=4, frame_size=32)) == len(train)
    assert len(load_video_dataset(tiny_toy["test"], None, num_frames=4, frame_size=32)) == len(tiny_toy["test"])
    with pytest.raises(ValueError, match="split='test' was asked of a single datasets.Dataset"):
        load_video_dataset(train, "test", num_frames=4, frame_size=32)


def test_skip_corrupt_warns_with_names(tmp_path, video_folder, caplog):
    import shutil

    source = tmp_path / "src"
    shutil.copytree(video_folder, source)
    (source / "train" / "disc" / "bad.mp4").write_bytes(b"junk")
    with caplog.at_level("WARNING", logger="hf_vdd"):
        ds = load_video_dataset(str(source), "train", num_frames=4, frame_size=32, skip_corrupt=True)
    assert len(ds.skipped) == 1 and ds.skipped[0].endswith("bad.mp4")
    assert "skipped 1 of 13 videos" in caplog.text and "bad.mp4" in caplog.text


def test_real_sets_load(shared_data):
    for name, kind in (("ucf12", "video"), ("real_clips", "path")):
        ds = load_video_dataset(name, "test", num_frames=8, frame_size=64)
        x, y = ds[0]
        assert ds.kind == kind and ds.num_classes == 11 and x.shape == (8, 3, 64, 64) and x.std() > 0.05
