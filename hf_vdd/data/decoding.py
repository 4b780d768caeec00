"""Video decoding (PyAV) and temporal/spatial sampling.

All functions return frames as `(T, H, W, C)` uint8 numpy arrays or `(T, C, H, W)` float tensors in [0, 1].
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import av
import numpy as np
import torch
import torch.nn.functional as F

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class CorruptVideoError(ValueError):
    """A video file is missing a video stream, is empty or cannot be decoded."""


class TruncatedVideoError(CorruptVideoError):
    """A video file holds fewer frames than its header lists (a cut-off download or copy)."""


def _check_complete(name: str, expected: int, got: int) -> None:
    """Raise `TruncatedVideoError` when clearly fewer frames/packets than the header's `expected` were read
    (a tolerance of 5 %, at least 2, absorbs containers whose counts are approximate)."""
    if expected > 0 and got < expected - max(2, expected // 20):
        raise TruncatedVideoError(f"Video {name} is truncated: its header lists {expected} frames but only {got} "
                                  f"can be read. Re-download or re-encode it, or pass skip_corrupt=True "
                                  f"(--skip_corrupt) to skip such files.")


def decode_video(source: str | bytes | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Decode the first video stream of a file (or its bytes) into `(T, H, W, 3)` uint8 RGB frames.

    The video stream is selected explicitly, so files with audio streams (UCF101 .avi) decode correctly.
    A folder is read as a clip of image frames (VDSD's `jpegs_112/v_<clip>/`), in file-name order.
    Raises `CorruptVideoError` naming the file when it has no video stream, no frame, or fails to decode.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    if name != "<bytes>" and os.path.isdir(name):
        return decode_frame_folder(name, max_frames)
    if not isinstance(source, (bytes, bytearray)) and not os.path.exists(name):
        raise FileNotFoundError(f"Video file not found: {name}. Check the path (relative paths resolve against "
                                f"{os.getcwd()}).")
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else name
    frames = []
    try:
        with av.open(handle) as container:
            stream = _video_stream(container, name)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
            if max_frames is None and frames:
                _check_complete(name, int(stream.frames or 0), len(frames))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        _reraise(name, err)
    _require_frames(name, frames)
    return np.stack(frames)


def _has_exact_count(container) -> bool:
    """Whether the container's frame count comes from a per-frame index (MP4/MOV sample tables). AVI headers are not
    trusted: an MPEG-4 "not coded" frame is a packet the decoder drops (real_clips' v_BaseballPitch_g09_c01.avi lists
    68 frames and decodes 67); Matroska/WebM state no count."""
    return bool({"mov", "mp4"} & set(container.format.name.split(",")))


def decode_frames(source: str | bytes | os.PathLike,
                  indices_for: Callable[[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode only the frames of a clip that a sample needs.

    `indices_for(length)` gets the clip's frame count and returns the frame indices to keep (any order, repeats
    allowed). Returns `(frames, where, length)`: `frames` `(K, H, W, 3)` uint8 RGB holds the K distinct frames asked
    for, in increasing order, so `frames[where]` are the frames `indices_for` named.

    The result equals `decode_video(source)[indices_for(len(...))]`. An MP4/MOV file's length is its sample table's
    frame count, so decoding stops after the last needed frame (the remaining packets are only counted, for the
    truncation check); when that count is missing, or the decode comes up short of it, the whole clip is decoded and
    `indices_for` is called again with the decoded length (it must then give the answer it would have given first:
    replay any random draws). Other containers and frame folders are read whole (folders: only the needed images).
    Raises `CorruptVideoError`/`TruncatedVideoError`/`FileNotFoundError` like `decode_video`.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    if name != "<bytes>" and os.path.isdir(name):
        files = _frame_files(name)
        wanted, where = np.unique(np.asarray(indices_for(len(files))), return_inverse=True)
        return decode_frame_folder(name, files=[files[j] for j in wanted]), where.reshape(-1), len(files)
    if not isinstance(source, (bytes, bytearray)) and not os.path.exists(name):
        raise FileNotFoundError(f"Video file not found: {name}. Check the path (relative paths resolve against "
                                f"{os.getcwd()}).")
    try:
        with av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else name) as container:
            stream = _video_stream(container, name)
            count = int(stream.frames or 0) if _has_exact_count(container) else 0
            if count > 0:
                wanted, where = np.unique(np.asarray(indices_for(count)), return_inverse=True)
                frames, packets, k = [], 0, 0
                for packet in container.demux(stream):
                    packets += bool(packet.size)
                    if len(frames) == len(wanted):
                        continue  # every needed frame is decoded: only count the remaining packets
                    for frame in packet.decode():
                        if len(frames) < len(wanted) and k == wanted[len(frames)]:
                            frames.append(frame.to_ndarray(format="rgb24"))
                        k += 1
                if len(frames) == len(wanted):
                    _check_complete(name, count, packets)
                    return np.stack(frames), where.reshape(-1), count
        with av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else name) as container:
            stream = _video_stream(container, name)
            decoded = list(container.decode(stream))  # av.VideoFrames: converted to RGB only when needed
            if decoded:
                _check_complete(name, int(stream.frames or 0), len(decoded))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        _reraise(name, err)
    _require_frames(name, decoded)
    wanted, where = np.unique(np.asarray(indices_for(len(decoded))), return_inverse=True)
    return np.stack([decoded[j].to_ndarray(format="rgb24") for j in wanted]), where.reshape(-1), len(decoded)


def _reraise(name: str, err: Exception):
    """A decoding failure as `CorruptVideoError` naming the file (our own `CorruptVideoError`s pass unchanged)."""
    if isinstance(err, CorruptVideoError):
        raise err
    raise CorruptVideoError(f"Could not decode video {name}: {err}. Re-encode it or pass skip_corrupt=True to skip "
                            f"such files.") from err


def _require_frames(name: str, frames: list) -> None:
    if not frames:
        raise CorruptVideoError(f"Video {name} contains no decodable frame. Remove it or pass skip_corrupt=True.")


def _video_stream(container, name: str):
    if not container.streams.video:
        raise CorruptVideoError(f"{name} has no video stream (streams: {list(container.streams)}).")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _frame_files(folder: str) -> list[str]:
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise CorruptVideoError(f"Frame folder {folder} holds no image ({', '.join(IMAGE_EXTENSIONS)}). Remove it "
                                f"or pass skip_corrupt=True.")
    return files


def decode_frame_folder(folder: str | os.PathLike, max_frames: int | None = None,
                        files: list[str] | None = None) -> np.ndarray:
    """Read a folder of image frames (`.jpg`/`.jpeg`/`.png`, sorted by name) as `(T, H, W, 3)` uint8 RGB (only
    `files`, names inside `folder`, when given)."""
    from PIL import Image, UnidentifiedImageError

    files = _frame_files(os.fspath(folder))[:max_frames] if files is None else files
    frames = []
    for file in files:
        try:
            with Image.open(os.path.join(folder, file)) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as err:
            raise CorruptVideoError(f"Could not read frame {os.path.join(folder, file)}: {err}.") from err
    if len({f.shape for f in frames}) > 1:
        raise CorruptVideoError(f"Frames of {folder} differ in size; re-extract the clip's frames.")
    return np.stack(frames)


def probe_video(source: str | bytes | os.PathLike) -> None:
    """Raise `CorruptVideoError`/`FileNotFoundError` if the video cannot be decoded (decodes one frame) or is
    truncated (`TruncatedVideoError`: fewer packets than the header's frame count; packets are read, not decoded)."""
    decode_video(source, max_frames=1)
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    if name != "<bytes>" and os.path.isdir(name):  # a frame folder has no header to be truncated against
        return
    try:
        with av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else name) as container:
            stream = container.streams.video[0]
            packets = sum(1 for packet in container.demux(stream) if packet.size)
            _check_complete(name, int(stream.frames or 0), packets)
    except CorruptVideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise CorruptVideoError(f"Could not read video {name}: {err}. Re-encode it or pass skip_corrupt=True to "
                                f"skip such files.") from err


def sample_indices(length: int, num_frames: int, interval: int = 4, train: bool = False,
                   generator: torch.Generator | None = None) -> np.ndarray:
    """Indices of `num_frames` frames spaced `interval` apart (VDSD sampling).

    Training picks a random start; evaluation takes the centred window (deterministic). A clip too short
    for the span `(num_frames - 1) * interval + 1` uses the largest interval that fits; a clip shorter than
    `num_frames` is spread evenly over its frames (frames repeat).
    """
    if length <= 0:
        raise ValueError("Cannot sample frames from an empty clip.")
    if num_frames <= 0 or interval <= 0:
        raise ValueError(f"num_frames and interval must be > 0, got {num_frames} and {interval}.")
    if num_frames == 1:
        step = 1
    else:
        step = min(interval, (length - 1) // (num_frames - 1))
    if step < 1:
        return np.linspace(0, length - 1, num_frames).round().astype(np.int64)
    span = (num_frames - 1) * step + 1
    slack = length - span
    if train and slack > 0:
        start = int(torch.randint(0, slack + 1, (1,), generator=generator))
    else:
        start = slack // 2
    return start + step * np.arange(num_frames, dtype=np.int64)


def resize_crop(frames: torch.Tensor, frame_size: int) -> torch.Tensor:
    """Resize `(T, C, H, W)` frames so the short side is `frame_size`, then centre-crop to a square."""
    if frame_size <= 0:
        raise ValueError(f"frame_size must be > 0, got {frame_size}.")
    t, c, h, w = frames.shape
    if (h, w) != (frame_size, frame_size):
        scale = frame_size / min(h, w)
        nh, nw = max(frame_size, round(h * scale)), max(frame_size, round(w * scale))
        if (nh, nw) != (h, w):
            frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", align_corners=False,
                                   antialias=nh < h or nw < w)
        top, left = (nh - frame_size) // 2, (nw - frame_size) // 2
        frames = frames[:, :, top:top + frame_size, left:left + frame_size]
    return frames


def to_float_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """`(T, H, W, C)` uint8 → `(T, C, H, W)` float32 in [0, 1]."""
    frames = torch.as_tensor(np.asarray(frames))
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"Expected frames of shape (T, H, W, C) with C in (1, 3), got {tuple(frames.shape)}.")
    frames = frames.permute(0, 3, 1, 2).float() / 255.0
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    return frames.contiguous()


def interleave_repeat(videos: torch.Tensor, num_frames: int, dim: int = 1) -> torch.Tensor:
    """Expand a clip of `A` frames to `num_frames` by repeating each frame in order (a,a,b,b,...)."""
    a = videos.shape[dim]
    if a == num_frames:
        return videos
    idx = torch.div(torch.arange(num_frames) * a, num_frames, rounding_mode="floor")
    return videos.index_select(dim, idx.to(videos.device))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(videos: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Pixel space `(..., C, H, W)` in [0, 1] → normalised space (per-channel mean/std)."""
    shape = (-1, 1, 1)
    return (videos - videos.new_tensor(mean).view(shape)) / videos.new_tensor(std).view(shape)


def denormalize(videos: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Inverse of `normalize`."""
    shape = (-1, 1, 1)
    return videos * videos.new_tensor(std).view(shape) + videos.new_tensor(mean).view(shape)
