"""Recipes refuse bad input before any work, never destroy a user's folder, and say what they wrote."""

import json
import os
import re
import shutil
import time

import pytest
import torch
from datasets import load_dataset

from hf_vdd import DistillationOutput
from hf_vdd.cli import OutputArgs, parse_args
from hf_vdd.data import toy_action_class_names
from hf_vdd.distillers import DMConfig
from tests.helpers import snapshot, write_video

CORESET = ["recipes/coreset.py", "--method", "random", "--ipc", "1"]


@pytest.fixture
def user_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("months of work")
    (folder / "results.csv").write_text("a,b\n1,2\n")
    return folder


def _refused(res, *needles):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


def test_existing_user_folder_is_never_replaced(run_recipe, user_folder):
    before = snapshot(user_folder)
    res = run_recipe(*CORESET, "--output_dir", str(user_folder), check=False)
    _refused(res, str(user_folder), "already exists and is not empty", "--overwrite")
    res = run_recipe(*CORESET, "--output_dir", str(user_folder), "--overwrite", check=False)
    _refused(res, "hf_vdd did not write", "even with --overwrite")
    assert snapshot(user_folder) == before


def test_working_directory_and_input_folder_are_never_replaced(run_recipe, user_folder, video_folder, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(user_folder)
    before = snapshot(user_folder)
    for target in (".", ".."):
        _refused(run_recipe(*CORESET, "--output_dir", target, "--overwrite", check=False), "working directory")
    assert snapshot(user_folder) == before
    source = tmp_path / "source"
    shutil.copytree(video_folder, source)
    before = snapshot(source)
    for target in (source, source / "train", source / "distilled"):
        res = run_recipe(*CORESET, "--dataset", str(source), "--frame_size", "32", "--num_frames", "4",
                         "--output_dir", str(target), "--overwrite", check=False)
        _refused(res, "input dataset folder")
    assert snapshot(source) == before


def test_overwrite_replaces_an_earlier_output_atomically(run_recipe, tmp_path):
    out = tmp_path / "set"
    run_recipe(*CORESET, "--output_dir", str(out))
    first = (out / "distillation.json").read_text()
    res = run_recipe(*CORESET, "--output_dir", str(out), "--seed", "1", check=False)
    _refused(res, "already exists")
    assert (out / "distillation.json").read_text() == first
    res = run_recipe(*CORESET, "--output_dir", str(out), "--seed", "1", "--overwrite")
    assert f"wrote {out}" in res.stdout and json.loads((out / "distillation.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary or backup folder left


def test_hub_settings_are_checked_before_any_work(run_recipe, tmp_path):
    out = tmp_path / "never"
    start = time.perf_counter()
    _refused(run_recipe(*CORESET, "--output_dir", str(out), "--push_to_hub", check=False),
             "--push_to_hub needs --hub_repo_id")
    _refused(run_recipe(*CORESET, "--output_dir", str(out), "--push_to_hub", "--hub_repo_id", "org/toy", check=False),
             "HF_HUB_OFFLINE is set")
    _refused(run_recipe(*CORESET, "--output_dir", str(out), "--hub_repo_id", "not a repo!", check=False),
             "not a valid Hub repo id")
    assert time.perf_counter() - start < 10 and not out.exists()


def test_models_named_on_the_command_line_are_checked_first(run_recipe, tmp_path):
    out = tmp_path / "never"
    _refused(run_recipe(*CORESET, "--method", "herding", "--feature_model", str(tmp_path / "nope"),
                        "--output_dir", str(out), check=False), "--feature_model", "no such folder")
    _refused(run_recipe(*CORESET, "--method", "herding", "--feature_model", "org/unknown-model",
                        "--output_dir", str(out), check=False), "not in the local Hub cache")
    (tmp_path / "empty").mkdir()
    _refused(run_recipe("recipes/diffusion_select.py", "--encoder", str(tmp_path / "empty"), "--output_dir",
                        str(out), check=False), "--encoder", "not a saved model folder")
    _refused(run_recipe("recipes/david.py", "--teacher", "./missing", "--output_dir", str(out), check=False),
             "--teacher ./missing")
    assert not out.exists()


@pytest.mark.parametrize("text,message", [("ipc: [1\n", "is not valid YAML (line"), ("- 1\n- 2\n", "mapping"),
                                          ("ipcs: 3\n", "unknown keys")])
def test_bad_config_yaml_is_a_message(run_recipe, tmp_path, text, message):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    _refused(run_recipe(*CORESET, "--config", str(cfg), check=False), message)


def test_bad_flag_values_are_refused_when_parsed(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse knows the choices
        parse_args(OutputArgs, DMConfig, argv=["--init", "zeros"])
    assert exit_info.value.code == 2 and "invalid choice: 'zeros'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        parse_args(DMConfig, argv=["--iterations", "-1"])
    with pytest.raises(ValueError, match="init must be one of"):  # the same check for library users
        DMConfig(init="zeros")


def test_mixed_precision_flag_is_checked_and_handed_to_accelerate(monkeypatch, capsys):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # restored after the test
    parse_args(DMConfig, argv=["--mixed_precision", "bf16"])
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"
    parse_args(DMConfig, argv=[])  # not given: accelerate launch's setting stays
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"
    with pytest.raises(SystemExit):
        parse_args(DMConfig, argv=["--mixed_precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 needs a CUDA GPU; use bf16"):
            parse_args(DMConfig, argv=["--mixed_precision", "fp16"])


def _fake_set(names, folder, n_per_class=1):
    labels = torch.arange(len(names)).repeat_interleave(n_per_class)
    out = DistillationOutput(videos=torch.randint(0, 255, (len(labels), 8, 3, 32, 32), dtype=torch.uint8),
                             labels=labels, class_names=names, method="random", ipc=n_per_class, source="x")
    return out.save(folder)


def test_evaluate_checks_classes_before_training(run_recipe, tmp_path, tiny_toy):
    two = _fake_set(["square", "disc"], tmp_path / "two")
    _refused(run_recipe("recipes/evaluate.py", "--dataset", "toy-actions", "--distilled", str(two), "--runs", "1",
                        check=False), "2 classes and the test split 10", "8 test classes are not in it", "triangle")
    small = tmp_path / "small"  # a 4-class dataset folder; a 10-class distilled set cannot be tested on it
    for split in ("train", "test"):
        tiny_toy[split].to_parquet(str(small / "data" / f"{split}-00000-of-00001.parquet"))
    ten = _fake_set(toy_action_class_names(10), tmp_path / "ten")
    _refused(run_recipe("recipes/evaluate.py", "--dataset", str(small), "--distilled", str(ten), "--runs", "1",
                        check=False), "10 classes and the test split 4")
    (ten / "distillation.json").write_text("{not json")
    _refused(run_recipe("recipes/evaluate.py", "--distilled", str(ten), check=False), "is not valid JSON")
    (ten / "distillation.json").write_text('{"method": "x"}')
    _refused(run_recipe("recipes/evaluate.py", "--distilled", str(ten), check=False), "was not written by hf_vdd")


def test_skip_corrupt_lists_skipped_files_in_output_and_card(run_recipe, tmp_path, video_folder):
    source = tmp_path / "source"
    shutil.copytree(video_folder, source)
    bad = source / "train" / "square" / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    args = [*CORESET, "--method", "herding", "--dataset", str(source), "--frame_size", "32", "--num_frames", "4"]
    res = run_recipe(*args, "--output_dir", str(tmp_path / "a"), check=False)
    _refused(res, "broken.mp4", "skip_corrupt")
    assert not (tmp_path / "a").exists()
    res = run_recipe(*args, "--output_dir", str(tmp_path / "b"), "--skip_corrupt")
    assert "skipped 1 unreadable video(s)" in res.stdout and "broken.mp4" in res.stdout
    card = (tmp_path / "b" / "README.md").read_text()
    assert "Skipped source videos" in card and "`train/square/broken.mp4`" in card  # relative to --dataset
    assert str(tmp_path) not in card.split("## Skipped source videos")[1].split("##")[0]
    assert len(load_dataset(str(tmp_path / "b"), split="train")) == 4


def test_truncated_video_in_a_source_names_the_file(run_recipe, tmp_path, video_folder):
    import numpy as np

    source = tmp_path / "source"
    shutil.copytree(video_folder, source)
    clip = write_video(tmp_path / "long.avi", np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3), np.uint8))
    data = clip.read_bytes()
    (source / "train" / "disc" / "cut.avi").write_bytes(data[: len(data) // 2])
    args = [*CORESET, "--method", "herding", "--dataset", str(source), "--frame_size", "32", "--num_frames", "4"]
    _refused(run_recipe(*args, "--output_dir", str(tmp_path / "a"), check=False), "cut.avi", "is truncated")
    res = run_recipe(*args, "--output_dir", str(tmp_path / "b"), "--skip_corrupt")
    assert "cut.avi" in res.stdout


def test_any_dataset_columns_splits_and_source_name(tmp_path, tiny_toy):
    from hf_vdd.cli import DataArgs

    folder = tmp_path / "my-actions"  # a dataset whose columns and splits have other names
    for split, name in (("train", "train"), ("test", "validation")):
        ds = tiny_toy[split].rename_columns({"video": "clip", "label": "action"})
        ds.to_parquet(str(folder / "data" / f"{name}-00000-of-00001.parquet"))
    data = DataArgs(dataset=str(folder), frame_size=32, num_frames=4, video_column="clip", label_column="action",
                    test_split="validation")
    train, test = data.load_splits()
    assert len(train) == 32 and len(test) == 16 and train.train and not test.train
    assert train.class_names == tiny_toy["train"].features["label"].names
    assert train.name == "my-actions:train"  # the folder's name, never the machine's path
    with pytest.raises(ValueError, match="video column 'video' not found"):
        DataArgs(dataset=str(folder), video_column="video").load("train")


def test_card_states_license_and_the_command(run_recipe, tmp_path):
    out = tmp_path / "set"
    run_recipe(*CORESET, "--output_dir", str(out), "--license", "cc-by-4.0")
    card = (out / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "| license | cc-by-4.0 |" in card
    assert "## Reproduce" in card and "recipes/coreset.py --method random --ipc 1 --output_dir set" in card
    # never the machine's folders
    assert str(tmp_path) not in card
    meta = json.loads((out / "distillation.json").read_text())
    assert meta["license"] == "cc-by-4.0" and "coreset.py" in meta["command"]


def test_given_flags_include_config_keys(tmp_path):
    from hf_vdd.cli import given_flags

    cfg = tmp_path / "c.yaml"
    cfg.write_text("runs: 2\nlr: 0.1\n")
    assert given_flags(["--steps", "3", "--batch_size=8", "--config", str(cfg)]) == {"steps", "batch_size", "config",
                                                                                       "runs", "lr"}


def test_unknown_protocol_is_refused_before_any_work(run_recipe, tmp_path):
    _refused(run_recipe(*CORESET, "--output_dir", str(tmp_path / "x"), "--eval_runs", "1", "--protocol", "vdsdd",
                        check=False), "--protocol must be one of")
    assert not (tmp_path / "x").exists()


def _outside(interval: str, kind) -> list:
    """Values just outside `interval` (`RANGES` notation) for a field of type `kind`, NaN for floats."""
    low, high = (float(v) for v in interval[1:-1].split(","))
    values = [low - 1 if interval[0] == "[" else low] + ([high if interval[-1] == ")" else high + 0.5]
                                                         if high != float("inf") else [])
    return [kind(v) for v in values if kind is float or float(v).is_integer()] + ([float("nan")] if kind is float
                                                                                  else [])


def _range_configs():
    from hf_vdd.diffusion.latte_train import LatteFinetuneConfig
    from hf_vdd.distillers import DISTILLERS
    from hf_vdd.training import TrainConfig

    return [TrainConfig, LatteFinetuneConfig] + sorted({c.config_class for c in DISTILLERS.values()},
                                                        key=lambda c: c.__name__)


@pytest.mark.parametrize("config_class", _range_configs(), ids=lambda c: c.__name__)
def test_numbers_out_of_range_are_refused_by_every_config(config_class):
    """Every numeric field a config shares with `RANGES` (counts >= 1, learning rates >= 0, fractions in [0, 1],
    seeds >= 0) is checked when the config is made, so a recipe refuses `--lr -1` while parsing flags, not after
    decoding."""
    from dataclasses import fields

    from hf_vdd.config_fields import RANGES
    from hf_vdd.utils import HfVddError

    config_class()  # the defaults are in range
    checked = 0
    for f in fields(config_class):
        if f.name not in RANGES or not f.init or "bool" in str(f.type) or f.metadata.get("choices"):
            continue
        kind = float if "float" in str(f.type) else int
        for value in _outside(f.metadata.get("range", RANGES[f.name]), kind):
            with pytest.raises(HfVddError, match=f"^{f.name} must be "):
                config_class(**{f.name: value})
            checked += 1
    assert checked >= 3  # each config has several such fields: the table did not silently stop matching


@pytest.mark.parametrize("config_class", _range_configs(), ids=lambda c: c.__name__)
def test_values_of_the_wrong_kind_are_refused_by_every_config(config_class):
    """A library user's `ipc=2.5`, a YAML config's `lr: "1e-3"` (a string: YAML reads no exponent without a dot) or
    `steps: 5.0` is refused with the field named when the config is made, not deep inside the work; an int is a
    valid float and `None` stays valid where the field allows it."""
    from dataclasses import fields

    from hf_vdd.config_fields import _declared
    from hf_vdd.utils import HfVddError

    wrong = {"int": [2.5, "5", True], "float": ["1e-3"], "bool": ["yes", 2], "str": [5]}
    checked = 0
    for f in fields(config_class):
        declared = _declared(config_class, f.name)
        if not f.init or f.metadata.get("choices") or declared.removesuffix("|None") not in wrong:
            continue
        for value in wrong[declared.removesuffix("|None")]:
            with pytest.raises(HfVddError, match=f"^{f.name} must be .*got {re.escape(repr(value))}"):
                config_class(**{f.name: value})
            checked += 1
        if declared == "float" and float(f.default).is_integer():
            config_class(**{f.name: int(f.default)})  # an int is a float
        if declared.endswith("|None"):
            config_class(**{f.name: None})
    assert checked >= 5


def test_library_calls_with_the_wrong_objects_say_what_to_pass(tiny_toy, tmp_path):
    """Distillers, evaluation and `build_student` name what they take, where they used to fail with an
    AttributeError from inside."""
    import hf_vdd

    train, test = (hf_vdd.load_video_dataset(tiny_toy, s, num_frames=4, frame_size=16) for s in ("train", "test"))
    with pytest.raises(TypeError, match="distils a VideoClassificationSet, got list: pass hf_vdd.load_video_dataset"):
        hf_vdd.RandomSelection(ipc=1)([1, 2, 3])
    with pytest.raises(TypeError, match="TACDTSelector selects from a generation pool, got VideoClassificationSet"):
        hf_vdd.TACDTSelector(ipc=1)(train)  # before: an AttributeError ('videos')
    out = hf_vdd.RandomSelection(ipc=1, seed=0)(train)
    with pytest.raises(TypeError, match="test_set must be a VideoClassificationSet, got list"):
        hf_vdd.evaluate_distilled(out, [1, 2])
    with pytest.raises(TypeError, match="train_data must be a DistillationOutput, TensorVideoSet or"):
        hf_vdd.evaluate_distilled(None, test)
    with pytest.raises(ValueError, match="lr_img must be finite and >= 0, got inf"):  # was: "must be >= 0, got inf"
        DMConfig(lr_img=float("inf"))
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        hf_vdd.build_student("convnet3d", 0, 8, 32)
    videos = torch.rand(2, 4, 3, 16, 16)
    assert hf_vdd.TensorVideoSet(videos, torch.tensor([0.0, 1.0])).labels.dtype == torch.long  # whole floats: ids
    for labels in (torch.tensor([0.5, 1.0]), torch.tensor([-1, 1])):  # before: cast to 0, or an IndexError later
        with pytest.raises(ValueError, match="labels must be class indices"):
            hf_vdd.TensorVideoSet(videos, labels)
    with pytest.raises(ValueError, match=r"integers in \[0, 2\)\), got torch.int64 values from 0 to 2"):
        hf_vdd.TensorVideoSet(videos, torch.tensor([0, 2]), class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"integers in \[0, 2\)\), got torch.int64 values from 0 to 3"):
        DistillationOutput(videos=videos, labels=[0, 3], class_names=["a", "b"], method="mine", ipc=1)
    with pytest.raises(ValueError, match="one \\(C, H, W\\) for all"):  # before: an error only when saved
        DistillationOutput(videos=[videos[0], videos[1, :, :, :8]], labels=[0, 1], class_names=["a", "b"],
                           method="mine", ipc=1)
    with pytest.raises(ValueError, match="a set needs at least one"):  # before: an IndexError
        DistillationOutput(videos=[], labels=[], class_names=["a"], method="mine", ipc=1)
    with pytest.raises(ValueError, match="train_set is empty"):  # before: torch's sampler error
        hf_vdd.train_student(hf_vdd.build_student("convnet3d", 3, 4, 16),
                             hf_vdd.TensorVideoSet(videos[:0], torch.zeros(0, dtype=torch.long)),
                             hf_vdd.TrainConfig(steps=1), 0)
    hf_vdd.get_distiller("dm")(ipc=1, iterations=1).save_pretrained(tmp_path / "dm")
    with pytest.raises(ValueError, match="holds a 'dm' distiller, not 'herding': load it with "
                                         "hf_vdd.get_distiller\\('dm'\\)"):  # before: a Herding with DM's settings
        hf_vdd.Herding.from_pretrained(tmp_path / "dm")
    from hf_vdd.diffusion.pool import PoolConfig, generate_pool

    with pytest.raises(ValueError, match="Could not load the Latte generator"):  # a folder is loaded (was: 'str'
        generate_pool(str(tmp_path / "nosuch"), ["a"], tmp_path / "pool", PoolConfig())  # has no .transformer)
    assert not (tmp_path / "pool").exists()
    out.save(tmp_path / "set")
    shutil.rmtree(tmp_path / "set" / "data")
    with pytest.raises(ValueError, match="has distillation.json but no data/train-\\*.parquet: the folder is damaged"):
        hf_vdd.load_distilled(tmp_path / "set")


def test_a_validation_split_is_never_read_from_test():
    """`test` falls back to `validation` (the papers' Kinetics and SSv2 test on it); asking for `validation` must
    not silently give the test split, or a user tuning on it would tune on test."""
    from datasets import Dataset, DatasetDict

    from hf_vdd.data.sources import _pick_split

    data = DatasetDict({"train": Dataset.from_dict({"x": [0]}), "test": Dataset.from_dict({"x": [1]})})
    with pytest.raises(ValueError, match="Split 'validation' not found; available splits: \\['train', 'test'\\]"):
        _pick_split(data, "validation")
    assert _pick_split(DatasetDict({"val": data["test"]}), "validation")["x"] == [1]
    assert _pick_split(DatasetDict({"validation": data["test"]}), "test")["x"] == [1]


def test_out_of_range_flags_are_refused_before_any_work(run_recipe, tmp_path, capsys):
    from hf_vdd.cli import DataArgs

    with pytest.raises(ValueError, match="--interval must be >= 1, got 0"):  # recipe flags: the same table
        parse_args(DataArgs, argv=["--interval", "0"], runtime=False)
    _refused(run_recipe("recipes/benchmark.py", "--methods", "random", "--ipc", "1", "0", "--output_dir",
                        str(tmp_path / "b"), check=False), "--ipc must be >= 1, got [1, 0]")  # each number of a list
    res = run_recipe("recipes/dm.py", "--ipc", "1", "--lr_img", "-1", "--output_dir", str(tmp_path / "x"), check=False)
    _refused(res, "lr_img must be >= 0, got -1")
    assert not (tmp_path / "x").exists() and "DM:" not in res.stderr  # refused before the loop started
    from hf_vdd.diffusion.pool import PoolConfig, generate_pool

    with pytest.raises(ValueError, match="shard_size must be >= 1"):  # before the pipeline is touched
        generate_pool(None, ["a"], tmp_path / "pool", PoolConfig(shard_size=0))
    assert not (tmp_path / "pool").exists()


def test_unknown_selectors_and_students_are_refused_before_any_work(run_recipe, tmp_path):
    from hf_vdd.training import TrainConfig

    res = run_recipe("recipes/diffusion_benchmark.py", "--methods", "tacdt", "nosuch", "--pool_dir",
                     str(tmp_path / "pool"), check=False)  # before: it trained a VAE and a Latte first
    _refused(res, "--methods ['nosuch']: choose from")
    assert not (tmp_path / "pool").exists() and "VAE" not in res.stderr
    _refused(run_recipe("recipes/diffusion_benchmark.py", "--vpcs", "0", check=False), "--vpcs must be")
    with pytest.raises(ValueError, match="student must be one of"):  # a library user too, not only the flag
        TrainConfig(student="resnet")
