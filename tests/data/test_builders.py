"""Dataset builders + prepared-folder writer + recipes/prepare_dataset.py, on official-shaped roots built in tmp_path
from a few real ucf12 clips (copied and renamed; the split files are written here)."""

import json
import runpy
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from hf_vdd import load_video_dataset
from hf_vdd.data import build_dataset, save_prepared
from hf_vdd.data.builders import MARKER_FILE, MINIUCF_CLASSES
from tests.helpers import REPO

UCF_CLASSES = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching",
               "BaseballPitch", "Basketball", "BasketballDunk", "Punch", "PushUps"]  # the 11 ucf12 classes
IN_MINIUCF = [c for c in UCF_CLASSES if c in MINIUCF_CLASSES]  # 7 of them
HMDB = {"Archery": "shoot_bow", "Punch": "punch", "PushUps": "pushup"}


def _clips(shared, split, cls, n):
    files = sorted((shared / "ucf12" / "videos" / split / cls).glob("*.mp4"))[:n]
    assert len(files) == n, f"ucf12 has fewer than {n} {split} clips of {cls}"
    return files


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory, shared_data):
    """UCF101-shaped root: 11 classes, 2 train + 1 test clip each (mp4 content under the official .avi names).

    Split 1 lists exactly what exists; split 2 also lists a train clip that is not on disk; split 3 lists a test clip
    that exists only as a VDSD frame folder (jpegs_112/<clip>/)."""
    root = tmp_path_factory.mktemp("UCF101")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)))
    train, test = [], []
    for i, cls in enumerate(UCF_CLASSES, 1):
        (root / "UCF-101" / cls).mkdir(parents=True)
        for split, n, lines in (("train", 2, train), ("test", 1, test)):
            for src in _clips(shared_data, split, cls, n):
                shutil.copy(src, root / "UCF-101" / cls / f"{src.stem}.avi")
                lines.append(f"{cls}/{src.stem}.avi" + (f" {i}\r\n" if split == "train" else "\r\n"))
    for n in (1, 2, 3):
        (lists / f"trainlist0{n}.txt").write_text("".join(train) + ("Archery/v_Archery_g99_c01.avi 3\r\n" if n == 2
                                                                    else ""))
        (lists / f"testlist0{n}.txt").write_text("".join(test) + ("Punch/v_Punch_g98_c01.avi\r\n" if n == 3 else ""))
    frames = root / "jpegs_112" / "v_Punch_g98_c01"
    frames.mkdir(parents=True)
    for t in range(6):
        Image.fromarray(np.full((24, 32, 3), 40 * t, np.uint8)).save(frames / f"frame{t + 1:06d}.jpg")
    return root


@pytest.fixture(scope="module")
def hmdb_root(tmp_path_factory, shared_data):
    """HMDB51-shaped root: 3 classes, 2 train (id 1) + 1 test (id 2) + 1 unused (id 0, not on disk) clip each."""
    root = tmp_path_factory.mktemp("hmdb51_org")
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir()
    for ucf, cls in HMDB.items():
        (root / cls).mkdir()
        lines = []
        for k, src in enumerate(_clips(shared_data, "train", ucf, 3)):
            name = f"{cls}_clip{k}_u_cm_np1_fr_med_0.avi"
            shutil.copy(src, root / cls / name)
            lines.append(f"{name} {1 if k < 2 else 2} \n")
        lines.append(f"{cls}_unused_u_cm_np1_fr_med_0.avi 0 \n")
        (splits / f"{cls}_test_split1.txt").write_text("".join(lines))
    return root


def test_ucf101_counts_classes_and_split_checks(ucf_root, tmp_path):
    built = build_dataset("ucf101", ucf_root, split=1)
    assert built.counts() == {"train": 22, "test": 11} and not built.is_partial
    assert built.class_names == UCF_CLASSES and built.source_name == ucf_root.name
    assert set(built.dataset["train"].column_names) == {"video", "label", "clip_id"}
    row = built.dataset["test"][9]
    assert row["video"].endswith(f"UCF-101/Punch/{row['clip_id']}.avi") and row["label"] == UCF_CLASSES.index("Punch")
    assert all(n == 2 for n in built.class_counts()["train"].values())
    with pytest.raises(ValueError, match="official splits \\[1, 2, 3\\].*--split"):
        build_dataset("ucf101", ucf_root, split=4)
    with pytest.raises(FileNotFoundError, match="UCF101 root not found"):
        build_dataset("ucf101", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="UCF101 split folder not found"):
        build_dataset("ucf101", tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset 'ucf102'"):
        build_dataset("ucf102", ucf_root)


def test_missing_clip_is_an_error_unless_partial(ucf_root):
    with pytest.raises(FileNotFoundError) as err:
        build_dataset("ucf101", ucf_root, split=2)
    msg = str(err.value)
    assert "1 of 23 train clips are missing: v_Archery_g99_c01" in msg and "--root" in msg and "--allow_partial" in msg
    built = build_dataset("ucf101", ucf_root, split=2, allow_partial=True)
    assert built.counts() == {"train": 22, "test": 11}
    assert built.missing == {"classes": [], "train": ["v_Archery_g99_c01"], "test": []}


def test_miniucf_restricts_to_its_50_classes(ucf_root):
    with pytest.raises(FileNotFoundError, match=r"43 of 50 classes have no clip: Biking, Billiards.*--allow_partial"):
        build_dataset("miniucf", ucf_root)
    built = build_dataset("miniucf", ucf_root, allow_partial=True)
    assert built.class_names == list(MINIUCF_CLASSES) and len(built.class_names) == 50
    assert built.counts() == {"train": 2 * len(IN_MINIUCF), "test": len(IN_MINIUCF)} == {"train": 14, "test": 7}
    names = built.class_names
    assert {names[y] for y in built.dataset["train"]["label"]} == set(IN_MINIUCF)
    assert not any("Archery" in v or "PushUps" in v for v in built.dataset["train"]["video"])
    assert len(built.missing["classes"]) == 43 and "Biking" in built.missing["classes"]
    assert built.missing["train"] == built.missing["test"] == []  # absent classes list no clip here
    with pytest.raises(ValueError, match="official splits \\[1\\]"):
        build_dataset("miniucf", ucf_root, split=2)


def test_frame_folder_clip_loads_but_is_not_embedded(ucf_root, tmp_path):
    built = build_dataset("ucf101", ucf_root, split=3)
    assert built.counts() == {"train": 22, "test": 12} and built.uses_frame_folders
    assert built.dataset["test"][11]["video"].endswith("jpegs_112/v_Punch_g98_c01")
    test = load_video_dataset(built.dataset, "test", num_frames=4, frame_size=16)
    x, y = test[11]
    assert x.shape == (4, 3, 16, 16) and y == UCF_CLASSES.index("Punch")
    assert x[0].mean() < x[-1].mean()  # frames read in name order (brightness rises)
    with pytest.raises(ValueError, match="--no_embed"):
        save_prepared(built, tmp_path / "embedded")
    assert not (tmp_path / "embedded").exists()
    out = save_prepared(built, tmp_path / "paths", embed=False)
    back = load_video_dataset(str(out), "test", num_frames=4, frame_size=16)
    assert len(back) == 12 and back[11][0].shape == (4, 3, 16, 16)


def test_hmdb51_counts_and_order(hmdb_root):
    built = build_dataset("hmdb51", hmdb_root, split=1)
    assert built.class_names == ["punch", "pushup", "shoot_bow"]
    assert built.counts() == {"train": 6, "test": 3} and not built.is_partial
    assert built.class_counts()["test"] == {"punch": 1, "pushup": 1, "shoot_bow": 1}
    assert built.source.license == "cc-by-4.0"
    with pytest.raises(FileNotFoundError, match="No \\*_test_split2.txt file"):
        build_dataset("hmdb51", hmdb_root, split=2)


def test_empty_frame_folder_is_a_corrupt_clip(tmp_path):
    from hf_vdd import CorruptVideoError
    from hf_vdd.data import decode_video

    (tmp_path / "v_x").mkdir()
    with pytest.raises(CorruptVideoError, match="holds no image"):
        decode_video(tmp_path / "v_x")


def test_saved_folder_round_trip_card_and_overwrite(ucf_root, tmp_path):
    built = build_dataset("ucf101", ucf_root, split=1)
    out = save_prepared(built, tmp_path / "ucf101", max_shard_bytes=200_000)
    for split in ("train", "test"):  # ~20-40 kB clips in shards of at most 200 kB
        shards = sorted(p.name for p in (out / "data").glob(f"{split}-*.parquet"))
        n = len(shards)
        assert n > 1 and shards == [f"{split}-{k:05d}-of-{n:05d}.parquet" for k in range(n)]
    assert len(list((out / "data").iterdir())) == len(list((out / "data").glob("*-of-*.parquet")))
    train = load_video_dataset(str(out), "train", num_frames=4, frame_size=32)
    test = load_video_dataset(str(out), "test", num_frames=4, frame_size=32)
    assert train.kind == "video" and train.class_names == UCF_CLASSES and (len(train), len(test)) == (22, 11)
    assert np.bincount(train.labels, minlength=11).tolist() == [2] * 11
    x, y = test[0]
    assert x.shape == (4, 3, 32, 32) and y == 0 and x.std() > 0.01
    assert train.hf[0]["video"]["path"].endswith(".avi") and "/" not in train.hf[0]["video"]["path"]
    card = (out / "README.md").read_text()
    assert "license: unknown" in card and "video-classification" in card and "official split 1" in card
    assert f"`{ucf_root.name}`" in card and str(ucf_root) not in card and "| train | 22 |" in card
    assert "| 10 | PushUps | 2 | 1 |" in card and "## Missing" not in card
    marker = json.loads((out / MARKER_FILE).read_text())
    assert marker["counts"] == {"train": 22, "test": 11} and marker["embedded"] and marker["name"] == "ucf101"
    with pytest.raises(ValueError, match="not empty.*--overwrite"):
        save_prepared(built, out)
    save_prepared(build_dataset("miniucf", ucf_root, allow_partial=True), out, overwrite=True, license="cc-by-4.0")
    assert "license: cc-by-4.0" in (out / "README.md").read_text()
    again = load_video_dataset(str(out), "train", num_frames=2, frame_size=16)  # the new rows, not a stale cache
    assert len(again) == 14 and again.class_names == list(MINIUCF_CLASSES)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"did not write \(no prepared_dataset.json\).*even with --overwrite"):
        save_prepared(built, foreign, overwrite=True)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "keep me"


def test_partial_build_is_listed_in_the_card(ucf_root, tmp_path):
    built = build_dataset("ucf101", ucf_root, split=2, allow_partial=True)
    out = save_prepared(built, tmp_path / "partial")
    card = (out / "README.md").read_text()
    assert "partial build: 0 of 11 classes had no clip; 1 train and 0 test clips" in card
    assert "- train: v_Archery_g99_c01" in card
    assert json.loads((out / MARKER_FILE).read_text())["missing"]["train"] == ["v_Archery_g99_c01"]
    mini = save_prepared(build_dataset("miniucf", ucf_root, allow_partial=True), tmp_path / "mini")
    card = (mini / "README.md").read_text()
    assert "43 of 50 classes had no clip" in card and "Biking" in card and "# MiniUCF" in card
    assert load_video_dataset(str(mini), "test", num_frames=2, frame_size=16).class_names == list(MINIUCF_CLASSES)


def test_kinetics400_csv_layout(tmp_path, shared_data):
    root = tmp_path / "kinetics400"
    rows = {"train": [("abseiling", "aaa", 10, 20), ("playing guitar", "bbb", 0, 10),
                      ("playing guitar", "ccc", 5, 15)],
            "validate": [("abseiling", "ddd", 1, 11), ("playing guitar", "eee", 2, 12)]}
    sources = iter(_clips(shared_data, "train", "Basketball", 5))
    for split, folder in (("train", "train"), ("validate", "val")):
        lines = ["label,youtube_id,time_start,time_end,split\n"]
        for label, yid, start, end in rows[split]:
            lines.append(f'"{label}",{yid},{start},{end},{split}\n')
            clip = root / folder / label.replace(" ", "_") / f"{yid}_{start:06d}_{end:06d}.mp4"
            clip.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(next(sources), clip)
        (root / f"{split}.csv").write_text("".join(lines))
    built = build_dataset("kinetics400", root)
    assert built.class_names == ["abseiling", "playing guitar"] and built.counts() == {"train": 3, "test": 2}
    assert built.dataset["test"]["clip_id"] == ["ddd_000001_000011", "eee_000002_000012"]
    assert built.dataset["train"]["label"] == [0, 1, 1]
    (root / "val" / "abseiling" / "ddd_000001_000011.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 2 test clips are missing: ddd_000001_000011.*--allow_partial"):
        build_dataset("kinetics400", root)
    partial = build_dataset("kinetics400", root, allow_partial=True)
    assert partial.counts() == {"train": 3, "test": 1} and partial.missing["test"] == ["ddd_000001_000011"]
    with pytest.raises(ValueError, match="one official split|official splits \\[1\\]"):
        build_dataset("kinetics400", root, split=2)


def test_ssv2_json_layout(tmp_path, shared_data):
    root = tmp_path / "ssv2"
    (root / "20bn-something-something-v2").mkdir(parents=True)
    labels = {"Putting something on a surface": "1", "Pushing something from left to right": "0"}
    entries = {"train": [("11", "Putting [something] on a surface"), ("12", "Pushing [something] from left to right"),
                         ("13", "Putting [something] on a surface")],
               "validation": [("21", "Pushing [something] from left to right")]}
    sources = iter(_clips(shared_data, "train", "Punch", 4))
    for split, items in entries.items():
        data = [{"id": i, "label": t.replace("[something]", "a cup"), "template": t, "placeholders": ["a cup"]}
                for i, t in items]
        (root / f"something-something-v2-{split}.json").write_text(json.dumps(data))
        for i, _ in items:
            shutil.copy(next(sources), root / "20bn-something-something-v2" / f"{i}.webm")
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels))
    built = build_dataset("ssv2", root)
    assert built.class_names == ["Pushing something from left to right", "Putting something on a surface"]
    assert built.dataset["train"]["label"] == [1, 0, 1] and built.dataset["train"]["clip_id"] == ["11", "12", "13"]
    assert built.counts() == {"train": 3, "test": 1} and built.source.license == "other"
    (root / "something-something-v2-labels.json").unlink()
    with pytest.raises(FileNotFoundError, match="something-something-v2-labels.json"):
        build_dataset("ssv2", root)


def _recipe(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["prepare_dataset.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "recipes" / "prepare_dataset.py"), run_name="__main__")
    return exit_info.value.code


def test_recipe_writes_the_folder_and_rejects_bad_flags(monkeypatch, capsys, hmdb_root, tmp_path):
    out = tmp_path / "hmdb51"
    monkeypatch.setattr(sys, "argv", ["prepare_dataset.py", "--name", "hmdb51", "--root", str(hmdb_root),
                                      "--output_dir", str(out)])
    runpy.run_path(str(REPO / "recipes" / "prepare_dataset.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "HMDB51 split 1 train: 6 clips, 3/3 classes" in printed and "test: 3 clips" in printed
    assert f"wrote {out}" in printed and len(load_video_dataset(str(out), "train", num_frames=2, frame_size=16)) == 6
    bad = [(["--push_to_hub"], "--push_to_hub needs --hub_repo_id"),
           (["--overwrite", "--name", "hmdb52"], "--name must be one of miniucf, ucf101, hmdb51"),
           ([], "already exists and is not empty"),
           (["--overwrite", "--split", "5"], "official splits [1, 2, 3]"),
           (["--overwrite", "--root", str(tmp_path / "absent")], "HMDB51 root not found"),
           (["--overwrite", "--compile"], "not used by the HfArgumentParser: ['--compile']")]  # no model runs here
    for extra, message in bad:
        code = _recipe(monkeypatch, "--name", "hmdb51", "--root", str(hmdb_root), "--output_dir", str(out), *extra)
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (extra, err)
    assert _recipe(monkeypatch, "--root", str(hmdb_root)) == 2 and "--name is required" in capsys.readouterr().err
