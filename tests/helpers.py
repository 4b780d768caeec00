"""Helpers the tests import (fixtures live in the conftest.py files): paths, video writing, launch commands."""

from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_video(path: Path, frames: np.ndarray, fps: int = 10, with_audio: bool = False) -> Path:
    """Encode `(T, H, W, 3)` uint8 frames as an mp4 with PyAV (optionally with a silent audio stream first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        audio = out.add_stream("aac", rate=8000) if with_audio else None
        stream = out.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        out.mux(stream.encode())
        if audio is not None:
            silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            silence.sample_rate = 8000
            for packet in audio.encode(silence):
                out.mux(packet)
            out.mux(audio.encode())
    return path


def snapshot(folder: Path) -> dict:
    """`{relative path: bytes}` of every file under `folder` (to prove a user's files are untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


TWO_CPU_PROCESSES = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                     "--mixed_precision", "no", "--dynamo_backend", "no"]


def free_port() -> str:
    """A TCP port nothing listens on now, for one 2-process launch's rendezvous (a fixed 29500 can still be held by
    the previous launch's socket)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def run_one_and_two_processes(args: list[str], one_out: list[str], two_out: list[str]) -> None:
    """Run a recipe with `python` and with the 2-process CPU `accelerate launch` command (gloo)."""
    import os
    import subprocess
    import sys

    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    two = [*TWO_CPU_PROCESSES, "--main_process_port", free_port()]
    for prefix, extra in (([], one_out), (two, two_out)):
        res = subprocess.run([sys.executable, *prefix, *args, *extra], cwd=REPO, env=env, timeout=600,
                             capture_output=True, text=True)
        if res.returncode:  # the child's own message, not only its exit status
            raise AssertionError(f"{' '.join(prefix[1:3] + args[:1])} exited {res.returncode}:\n{res.stderr[-4000:]}")


class RecipeResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
