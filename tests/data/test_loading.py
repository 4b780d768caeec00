import numpy as np
import pytest
import torch
from datasets import Array4D, ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset
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


@pytest.mark.parametrize("kwargs, message", [
    ({"frame_size": 0}, "frame_size must be >= 1, got 0"),  # the flags' table (RANGES) and messages
    ({"num_frames": -1}, "num_frames must be >= 1, got -1"),
    ({"num_frames": 2.5}, r"num_frames must be an integer, got 2.5 \(float\)"),  # was: a TypeError in the sampler
    ({"frame_size": "32"}, r"frame_size must be an integer, got '32' \(str\)"),  # was: a TypeError in a comparison
    ({"interval": 1.5}, r"interval must be an integer, got 1.5 \(float\)"),
    ({"cache_size": -1}, "cache_size must be >= 0, got -1"),
])
def test_bad_sampling_settings_are_refused_before_reading(tiny_toy, kwargs, message):
    with pytest.raises(ValueError, match=message):
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


# ---- constant memory: a sample decodes and resizes only its own frames ------------------------------------------
def _reference_clip(ds, i, train, generator):
    """How `clip` sampled before partial decoding: decode the whole clip, resize every frame, then pick frames."""
    from hf_vdd.data.decoding import resize_crop, sample_indices, to_float_frames

    full = (resize_crop(to_float_frames(ds.decode(i)), ds.frame_size) * 255).round().clamp(0, 255).to(torch.uint8)
    if ds.static:
        j = int(torch.randint(0, len(full), (1,), generator=generator)) if train else len(full) // 2
        idx = np.full(ds.num_frames, j)
    else:
        idx = sample_indices(len(full), ds.num_frames, ds.interval, train=train, generator=generator)
    return full[torch.as_tensor(idx)].float() / 255.0


def _assert_same_samples(ds, items, seeds=(0, 1)):
    for i in items:
        for view, train in ((ds, True), (ds, False), (ds.with_options(static=True), True)):
            for seed in seeds:
                g, g_ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
                out = view.clip(i, train=train, generator=g)
                assert torch.equal(out, _reference_clip(view, i, train, g_ref)), (view.describe(i), train, seed)
                assert torch.equal(g.get_state(), g_ref.get_state())  # the same draws, in the same order


def test_partial_decoding_is_byte_identical_on_real_footage(shared_data):
    ucf = load_video_dataset("ucf12", "train", num_frames=16, frame_size=112)
    _assert_same_samples(ucf, [0, 700], seeds=(0,))
    clips = load_video_dataset("real_clips", "train", num_frames=16, frame_size=112)
    nvop = [i for i in range(len(clips)) if clips.describe(i).endswith("v_BaseballPitch_g09_c01.avi")]
    _assert_same_samples(clips, nvop)  # its AVI header lists 68 frames; 67 decode (a dropped "not coded" frame)


def test_partial_decoding_is_byte_identical_on_a_video_folder(video_folder, tmp_path):
    ds = load_video_dataset(str(video_folder), "train", num_frames=4, frame_size=32)
    _assert_same_samples(ds, range(len(ds)), seeds=(0,))
    frames_dir = tmp_path / "v_clip"  # a VDSD-style folder of frames is read image by image
    frames_dir.mkdir()
    from PIL import Image

    for t, frame in enumerate(ds.decode(0)):
        Image.fromarray(frame).save(frames_dir / f"{t:05d}.png")
    folder_ds = load_video_dataset(Dataset.from_dict({"path": [str(frames_dir)], "label": ["a"]}), num_frames=4,
                                   frame_size=32)
    _assert_same_samples(folder_ds, [0])


def test_partial_decoding_replays_draws_when_the_count_is_wrong(video_folder, monkeypatch):
    import av

    from hf_vdd.data.decoding import sample_indices

    ds = load_video_dataset(str(video_folder), "train", num_frames=4, frame_size=32, interval=1)
    length = len(ds.decode(0))
    seed = next(s for s in range(1000)  # a draw that needs a frame past the end when the header lists 2 extra
                if sample_indices(length + 2, 4, 1, True, torch.Generator().manual_seed(s))[-1] >= length)
    real_open = av.open

    class Lying:  # the container reports `length + 2` frames
        def __init__(self, *a, **k):
            self.c = real_open(*a, **k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.c.close()

        def __getattr__(self, name):
            return getattr(self.c, name)

        @property
        def streams(self):
            stream = self.c.streams.video[0]
            return type("S", (), {"video": [type("V", (), {"frames": length + 2, "thread_type": None,
                                                           "index": stream.index, "type": "video"})()]})()

        def demux(self, _):
            return self.c.demux(self.c.streams.video[0])

        def decode(self, _):
            return self.c.decode(self.c.streams.video[0])

    g_ref = torch.Generator().manual_seed(seed)
    expected = _reference_clip(ds, 0, True, g_ref)
    monkeypatch.setattr(av, "open", Lying)
    g = torch.Generator().manual_seed(seed)
    assert torch.equal(ds.clip(0, train=True, generator=g), expected)
    assert torch.equal(g.get_state(), g_ref.get_state())


def test_array_rows_are_read_without_a_copy(tiny_toy):
    ds = load_video_dataset(tiny_toy["train"].select([5, 3, 1]), num_frames=4, frame_size=24)
    view = ds._array(1)
    assert not view.flags.owndata and not view.flags.writeable  # a view of Arrow's buffer
    assert np.array_equal(view, ds.decode(1))
    _assert_same_samples(ds, range(3))


def test_clip_cache_keeps_the_most_recent_clips(video_folder, monkeypatch):
    ds = load_video_dataset(str(video_folder), "train", num_frames=4, frame_size=32, cache_size=2)
    plain = ds.with_options(cache_size=0)
    decoded = []
    real_decode = type(ds).decode
    monkeypatch.setattr(type(ds), "decode", lambda self, i: decoded.append(int(self._index[i])) or
                        real_decode(self, i))
    for i in (0, 1, 0, 2, 1):
        g, g_plain = torch.Generator().manual_seed(i), torch.Generator().manual_seed(i)
        assert torch.equal(ds.clip(i, train=True, generator=g), plain.clip(i, train=True, generator=g_plain))
        assert torch.equal(g.get_state(), g_plain.get_state())
    assert decoded[:4] == [0, 1, 2, 1]  # 0 was still cached; 1 had been dropped for 2
    assert list(ds._recent) == [2, 1] and len(ds._recent) <= 2
    view = ds.subset([2, 1])  # views share the cache (by row)
    decoded.clear()
    view.clip(0)
    assert decoded == [] and list(ds._recent) == [1, 2]
    with pytest.raises(ValueError, match="cache_size"):
        load_video_dataset(str(video_folder), "train", cache_size=-1)


def test_preload_is_an_opt_in_that_still_works(video_folder):
    ds = load_video_dataset(str(video_folder), "train", num_frames=4, frame_size=32)
    assert ds._cache is None  # loading decodes nothing
    expected = ds.stack(range(len(ds)), train=True, generator=torch.Generator().manual_seed(0))
    ds.preload(show_progress=False)
    assert len(ds._cache) == len(ds) and ds._cache[0].dtype == torch.uint8
    assert torch.equal(ds.stack(range(len(ds)), train=True, generator=torch.Generator().manual_seed(0)), expected)
    assert torch.equal(ds.subset([3, 1]).clip(0, train=False), ds.clip(3, train=False))


def test_loading_opens_no_video(video_folder, monkeypatch):
    import av

    opened = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    files = sorted(str(p) for p in video_folder.glob("train/*/*.mp4"))
    by_path = Dataset.from_dict({"video": files, "label": [f.split("/")[-2] for f in files]})
    sets = [load_video_dataset(str(video_folder), "train"), load_video_dataset(by_path),
            load_video_dataset(load_dataset("videofolder", data_dir=str(video_folder)), "test")]
    assert opened == [] and [len(s) for s in sets] == [12, 12, 8]
    sets[0].clip(0)
    assert len(opened) == 1


def test_hub_sources_are_named_with_the_commit_they_were_read_at(monkeypatch, tiny_toy):
    """A Hub id is recorded as `<id>@<commit sha>` (from the `datasets` cache path), or `@revision` as given when
    the cache does not say; folders and built-ins keep their names."""
    from datasets import Dataset

    from hf_vdd.data import sources

    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr(sources, "load_dataset", lambda name, config=None, revision=None: tiny_toy)
    monkeypatch.setattr(Dataset, "cache_files", property(
        lambda self: [{"filename": f"/cache/org___set/default/0.0.0/{sha}/set-train.arrow"}]))
    assert load_video_dataset("org/set", "train").name == f"org/set@{sha}:train"
    assert load_video_dataset("org/set", "train", revision="main").name == f"org/set@{sha}:train"
    monkeypatch.setattr(Dataset, "cache_files", property(lambda self: []))
    assert load_video_dataset("org/set", "train", revision="v1.0").name == "org/set@v1.0:train"
    assert load_video_dataset("toy-actions", "train").name == "toy-actions:train"
