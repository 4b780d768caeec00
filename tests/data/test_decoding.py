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


# ---- decode only the frames a sample needs ---------------------------------------------------------------------
class _CountingContainer:
    """`av.open`'s container, with the packets (or frames) it decodes counted and optionally a wrong frame count."""

    decoded_packets = 0

    def __init__(self, container, frames=None):
        self.container, self.frames = container, frames

    def __enter__(self):
        self.container.__enter__()
        return self

    def __exit__(self, *exc):
        return self.container.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.container, name)

    @property
    def streams(self):
        stream = self.container.streams.video[0]
        if self.frames is not None:
            stream = type("Stream", (), {"frames": self.frames, "thread_type": None})()
            stream.real = self.container.streams.video[0]
        return type("Streams", (), {"video": [stream]})()

    def demux(self, stream):
        for packet in self.container.demux(getattr(stream, "real", stream)):
            yield _CountingPacket(packet)

    def decode(self, stream):
        for frame in self.container.decode(getattr(stream, "real", stream)):
            _CountingContainer.decoded_packets += 1
            yield frame


class _CountingPacket:
    def __init__(self, packet):
        self.packet, self.size = packet, packet.size

    def decode(self):
        _CountingContainer.decoded_packets += 1
        return self.packet.decode()


@pytest.fixture
def counting_open(monkeypatch):
    """Patch `av.open` so that containers count decoded packets; `counting_open(frames=N)` fakes the header count."""
    import av

    real_open = av.open

    def install(frames=None):
        _CountingContainer.decoded_packets = 0
        monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), frames))

    return install


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 255, (60, 24, 32, 3), np.uint8)
    folder = tmp_path_factory.mktemp("clips")
    return write_video(folder / "a.mp4", frames, with_audio=True), write_video(folder / "a.avi", frames)


def _recording(indices_for):
    """`indices_for` that records the lengths it is asked about."""
    asked = []
    return asked, lambda n: asked.append(n) or np.asarray(indices_for(n))


@pytest.mark.parametrize("indices", [[3, 7, 11], [59, 0, 5, 5], [20] * 4])
def test_decode_frames_is_full_decode_indexed(clip_files, counting_open, indices):
    from hf_vdd.data.decoding import decode_frames

    for path in clip_files:
        full = decode_video(path)
        counting_open()
        asked, pick = _recording(lambda n: indices)
        frames, where, length = decode_frames(path, pick)
        assert length == len(full) == 60 and asked == [60]
        assert np.array_equal(frames[where], full[indices]) and len(frames) == len(set(indices))
        if path.suffix == ".mp4" and max(indices) <= 20:  # stops after the last needed frame (+ the decoder's delay)
            assert _CountingContainer.decoded_packets < 60
        elif path.suffix == ".avi":  # AVI frame counts are not trusted: decoded whole
            assert _CountingContainer.decoded_packets >= 60


def test_decode_frames_falls_back_when_the_count_is_missing_or_wrong(clip_files, counting_open):
    from hf_vdd.data.decoding import decode_frames

    mp4 = clip_files[0]
    full = decode_video(mp4)
    for header, asked_lengths in ((0, [60]), (62, [62, 60])):  # no count; a count 2 too high, found short
        counting_open(frames=header)
        asked, pick = _recording(lambda n: [0, n - 1])
        frames, where, length = decode_frames(mp4, pick)
        assert asked == asked_lengths and length == 60
        assert np.array_equal(frames[where], full[[0, 59]])
    counting_open(frames=90)  # far more frames listed than the file holds: truncated, as with a full decode
    with pytest.raises(TruncatedVideoError, match="lists 90 frames"):
        decode_frames(mp4, lambda n: np.asarray([0, 1]))
