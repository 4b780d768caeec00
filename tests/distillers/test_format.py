import json
import shlex
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from datasets import load_dataset

from hf_vdd import DistillationOutput, KCenter, load_distilled, load_video_dataset
from hf_vdd.data.sources import shareable_command


@pytest.fixture(scope="module")
def selected(tiny_toy):
    return KCenter(ipc=2, seed=0)(load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32))


def _float_output(num_classes=3):
    torch.manual_seed(0)
    videos = [torch.rand(4 if i % 2 else 2, 3, 32, 32) * 1.4 - 0.2 for i in range(2 * num_classes)]
    return DistillationOutput(videos=videos, labels=torch.arange(2 * num_classes) % num_classes,
                              class_names=[f"c{i}" for i in range(num_classes)], method="dm", ipc=2, source="toy",
                              soft_labels=torch.softmax(torch.randn(2 * num_classes, num_classes), -1), seed=3)


def test_save_load_dataset_identical_rows(selected, tmp_path):
    folder = selected.save(tmp_path / "toy-ipc2-kcenter")
    ds = load_dataset(str(folder), split="train")
    assert ds.features == selected.dataset.features
    assert ds.to_dict() == selected.dataset.to_dict()
    for name in ("README.md", "preview.png", "distillation.json", "data/train-00000-of-00001.parquet"):
        assert (folder / name).is_file()


def test_card_metadata(selected, tmp_path):
    selected.eval_results = {"convnet3d": {k: {"mean": 50.0, "std": 1.0} for k in ("top1", "top5", "auc", "f1")}}
    folder = selected.save(tmp_path / "carded")
    text = (folder / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["task_categories"] == ["video-classification"] and "kcenter" in meta["tags"]
    assert meta["hf_vdd"]["ipc"] == 2 and meta["hf_vdd"]["frame_size"] == 32
    assert meta["source_datasets"] == [selected.source]
    assert meta["hf_vdd"]["eval_results"]["convnet3d"]["top1"]["mean"] == 50.0
    assert "| convnet3d | 50.0 ± 1.0" in text and "(preview.png)" in text and "(preview.gif)" in text
    assert json.loads((folder / "distillation.json").read_text())["method"] == "kcenter"


def test_load_distilled_round_trip_uint8(selected, tmp_path):
    back = load_distilled(selected.save(tmp_path / "u8"))
    assert torch.equal(torch.stack(back.videos), selected.videos) and torch.equal(back.labels, selected.labels)
    assert back.method == "kcenter" and back.class_names == selected.class_names
    assert torch.equal(back.source_index, selected.source_index)


def test_float16_variable_length_round_trip(tmp_path):
    out = _float_output()
    folder = out.save(tmp_path / "f16")
    ds = load_dataset(str(folder), split="train")
    assert ds.features["video"].dtype == "float16" and ds[0]["num_frames"] == 2 and ds[1]["num_frames"] == 4
    back = load_distilled(folder)
    for a, b in zip(out.videos, back.videos):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-2)  # float16 in normalised space
    assert torch.allclose(back.soft_labels, out.soft_labels)
    train = back.to_train_set(num_frames=4)
    assert train.videos.shape == (6, 4, 3, 32, 32) and len(train[0]) == 3  # soft label attached


def test_save_failure_leaves_nothing(selected, tmp_path):
    target = tmp_path / "atomic"
    with mock.patch("datasets.Dataset.to_parquet", side_effect=OSError("disk full")):
        with pytest.raises(OSError, match="disk full"):
            selected.save(target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_push_offline_clear_error(selected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="Could not push .* to the Hub dataset repo 'org/toy-ipc2'.*HF_HUB_OFFLINE.*"
                                         "Nothing was uploaded"):
        selected.push_to_hub("org/toy-ipc2")
    assert list(tmp_path.iterdir()) == []


def test_bad_output_inputs(tmp_path):
    with pytest.raises(ValueError, match="3 videos but 2 labels"):
        DistillationOutput(videos=torch.zeros(3, 2, 3, 8, 8), labels=[0, 1], class_names=["a", "b"], method="x", ipc=1)
    with pytest.raises(FileNotFoundError, match="distillation.json"):
        (tmp_path / "empty").mkdir()
        load_distilled(tmp_path / "empty")
    assert np.isfinite(_float_output().storage_bytes())


def test_save_refuses_existing_folders_without_overwrite(selected, tmp_path):
    selected.save(tmp_path / "set")
    with pytest.raises(ValueError, match="already exists and is not empty.*--overwrite"):
        selected.save(tmp_path / "set")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("keep")
    with pytest.raises(ValueError, match="hf_vdd did not write"):
        selected.save(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "a.txt").read_text() == "keep"


def test_skipped_videos_listed_in_card(selected, tmp_path):
    selected.stats["skipped_videos"] = ["/data/ucf/train/x/v_bad.avi"]
    card = (selected.save(tmp_path / "set") / "README.md").read_text()
    assert "## Skipped source videos" in card and "v_bad.avi" in card


def test_card_and_metadata_name_no_local_folders(selected, tmp_path):
    ckpt = str(tmp_path / "run.checkpoints")
    selected.config |= {"checkpoint_dir": ckpt, "resume_from_checkpoint": ckpt + "/checkpoint-10",
                        "teacher_cache_dir": str(tmp_path / "cache"), "teacher": "/home/me/models/my-teacher"}
    selected.stats["teacher"] = {"source": "/root/.cache/hf_vdd/teachers/convnet3d-abc", "head": "trained"}
    folder = selected.save(tmp_path / "set")
    card, meta = (folder / "README.md").read_text(), (folder / "distillation.json").read_text()
    for text in (card, meta):
        assert str(tmp_path) not in text and "/home/me" not in text and "/root/" not in text
    assert "`convnet3d-abc`" in card and json.loads(meta)["config"]["teacher"] == "my-teacher"
    assert "checkpoint_dir" not in json.loads(meta)["config"] and selected.config["checkpoint_dir"] == ckpt


def test_a_local_source_and_the_command_are_shared_without_the_machines_folders(tmp_path):
    """A set made from a local folder (here a pool's recorded dataset, as the benchmark's diffusion cells get it)
    names the folder, never its path; the reproduce command keeps every flag but shortens absolute paths."""
    out = _float_output()
    out.source = "/root/hf_vdd-data/ucf12-miniucf"  # what a pool records for a dataset given by its path
    out.command = ("python /work/elsewhere/benchmark.py --datasets /root/hf_vdd-data/ucf12-miniucf --ipc 1 "
                   "--pool_dir=/work/out/pool --overrides "
                   + shlex.quote(json.dumps({"tacdt": {"encoder": "/root/.cache/x/tiny-videomae/", "seed": 2}})))
    out = DistillationOutput(**{f: getattr(out, f) for f in ("videos", "labels", "class_names", "method", "ipc",
                                                             "source", "seed", "command")})
    folder = out.save(tmp_path / "set")
    card, meta = (folder / "README.md").read_text(), json.loads((folder / "distillation.json").read_text())
    assert "/root/" not in card + json.dumps(meta) and "/work/" not in card + json.dumps(meta)
    front = yaml.safe_load(card.split("---")[1])
    assert front["source_datasets"] == ["ucf12-miniucf"] and front["hf_vdd"]["source"] == "ucf12-miniucf"
    assert front["pretty_name"] == "ucf12-miniucf distilled, IPC 2, dm"
    assert shlex.split(meta["command"]) == [
        "python", "benchmark.py", "--datasets", "ucf12-miniucf", "--ipc", "1", "--pool_dir=pool", "--overrides",
        json.dumps({"tacdt": {"encoder": "tiny-videomae", "seed": 2}})]
    assert meta["command"] in card
    assert shareable_command("python recipes/dm.py --x 'unbalanced") == "python recipes/dm.py --x 'unbalanced"


def test_resave_same_folder_is_not_stale(tmp_path):
    for value in (3, 9):
        out = DistillationOutput(videos=torch.full((2, 2, 3, 8, 8), value, dtype=torch.uint8), labels=[0, 1],
                                 class_names=["a", "b"], method="x", ipc=1)
        out.save(tmp_path / "same", overwrite=True)
        assert load_dataset(str(tmp_path / "same"), split="train")[0]["video"][0][0][0][0] == value
        assert int(load_distilled(tmp_path / "same").videos[0][0, 0, 0, 0]) == value


def test_animated_preview_per_class(tmp_path):
    from PIL import Image

    out = _float_output(num_classes=3)  # rows of 2 and 4 frames (per-row temporal resolution)
    folder = out.save(tmp_path / "set")
    with Image.open(folder / "preview.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (3 * 64, 64)  # 3 tiles of 32 px, enlarged 2x, 4 frames
    assert "(preview.gif)" in (folder / "README.md").read_text()
