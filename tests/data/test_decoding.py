import numpy as np
import pytest
import torch

from hf_vdd.data import CorruptVideoError, decode_video, interleave_repeat, resize_crop, sample_indices
from hf_vdd.data.decoding import TruncatedVideoError, probe_video
from tests.helpers import write_video


def test_sample_indices_eval_is_centred_and_deterministic():
    a = sample_indices(100, 8, 4, train=False)
    assert np.array_equal(a, sample_indices(100, 8, 4, train=False))
    assert np.all(np.diff(a) == 4) and a[0] == (100 - 29) // 2


def test_sample_indices_train_random_start_in_range():
    g = torch.Generator().manual_seed(0)
    starts = {int(sample_indices(60, 8, 4, train=True, generator=g)[0]) for _ in range(50)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 60 - 29


def test_sample_indices_short_clips():
    short = sample_indices(20, 8, 4)  # span 29 > 20: largest interval that fits (2)
    assert np.all(np.diff(short) == 2) and short.max() < 20
    tiny = sample_indices(3, 8, 4)  # fewer frames than requested: frames repeat
    assert len(tiny) == 8 and set(tiny.tolist()) == {0, 1, 2}


def test_sample_indices_rejects_bad_args():
    with pytest.raises(ValueError, match="num_frames"):
        sample_indices(10, 0, 4)


def test_decode_picks_video_stream_with_audio(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    path = write_video(tmp_path / "a.mp4", frames, with_audio=True)
    out = decode_video(path)
    assert out.shape == (6, 32, 48, 3) and out.dtype == np.uint8


def test_decode_real_ucf101_avi(shared_data):
    avi = sorted((shared_data / "real_clips" / "Punch").glob("*.avi"))[0]
    out = decode_video(avi)
    assert out.shape[1:] == (240, 320, 3) and out.shape[0] > 30


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_corrupt_or_empty_file_names_path(tmp_path, content):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    with pytest.raises(CorruptVideoError, match="broken.mp4"):
        decode_video(bad)


def test_truncated_file_is_an_error_naming_it(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3), np.uint8)
    data = write_video(tmp_path / "full.avi", frames).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # the header still lists 40 frames
    assert len(decode_video(tmp_path / "full.avi")) == 40
    probe_video(tmp_path / "full.avi")
    for fn in (decode_video, probe_video):
        with pytest.raises(TruncatedVideoError, match=r"cut.avi is truncated: its header lists 40 frames"):
            fn(cut)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        decode_video("nope.mp4")


def test_resize_crop_and_interleave():
    x = torch.rand(5, 3, 40, 60)
    assert resize_crop(x, 32).shape == (5, 3, 32, 32)
    with pytest.raises(ValueError, match="frame_size"):
        resize_crop(x, 0)
    v = torch.arange(4).view(1, 4, 1, 1, 1).float()
    assert interleave_repeat(v, 8).flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
