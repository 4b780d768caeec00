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


def save_tiny_diffusion_models(root: Path, class_names: list[str]) -> Path:
    """An untrained tiny Latte over `class_names` (`root/latte`) and a tiny VideoMAE classifier (`root/videomae`)."""
    import torch
    from transformers import VideoMAEForVideoClassification

    from hf_vdd.diffusion import tiny_latte_pipeline
    from hf_vdd.models import tiny_videomae_config

    tiny_latte_pipeline(class_names, num_frames=8, frame_size=32).save_pretrained(str(root / "latte"))
    torch.manual_seed(0)
    cfg = tiny_videomae_config(len(class_names), 8, 32, id2label=dict(enumerate(class_names)),
                               label2id={n: i for i, n in enumerate(class_names)})
    VideoMAEForVideoClassification(cfg).save_pretrained(str(root / "videomae"))
    return root


ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # a 1-process side run in pytest: the threads each launched process has
TINY_POOL = ["--videos_per_class_pool", "4", "--shard_size", "2", "--num_inference_steps", "2", "--vpc", "2"]


class TwoProcessRuns:
    """The recipes the 1-vs-2-process tests compare. `common[name]` is a job's shared command (its inputs live under
    `root`); `two[name]` its 2-process outputs under `root/name/`. `launch()` runs every job's 2-process side in one
    `accelerate launch` of tests/launch_recipes.py (each test runs its 1-process side in the pytest process)."""

    def __init__(self, root: Path):
        import torch

        from hf_vdd.data import toy_action_class_names
        from hf_vdd.models import ConvNet3D

        self.root = root
        torch.manual_seed(0)
        ConvNet3D(num_classes=10, widths=(8, 16, 16)).save_pretrained(root / "teacher")  # toy-actions: 10 classes
        models = save_tiny_diffusion_models(root / "models", toy_action_class_names(10))
        small = ["--embed_widths", "8", "16", "16", "--batch_real", "4"]
        self.common = {
            "evaluate": ["recipes/evaluate.py", "--dataset", "toy-actions", "--runs", "1", "--steps", "25",
                         "--batch_size", "16", "--show_progress", "false"],
            "dm": ["recipes/dm.py", "--ipc", "1", "--iterations", "3", *small],
            "idtd": ["recipes/idtd.py", "--ipc", "1", "--iterations", "2", *small, "--log_every", "1"],
            "david": ["recipes/david.py", "--ipc", "1", "--iterations", "4", "--beta", "0.25", *small,
                      "--teacher", str(root / "teacher")],
            "diffusion": ["recipes/diffusion_select.py", "--generator", str(models / "latte"), "--encoder",
                          str(models / "videomae"), "--selector", "tacdt", *TINY_POOL],
        }
        self.two = {
            "evaluate": ["--output_json", str(self.path("evaluate", "two.json"))],
            "dm": ["--output_dir", str(self.path("dm", "two")), "--checkpointing_steps", "2",
                   "--checkpoint_dir", str(self.path("dm", "ck"))],
            "idtd": ["--output_dir", str(self.path("idtd", "two"))],
            "david": ["--output_dir", str(self.path("david", "two"))],
            "diffusion": ["--pool_dir", str(self.path("diffusion", "pool2")),
                          "--output_dir", str(self.path("diffusion", "out2"))],
        }

    def path(self, name: str, *parts: str) -> Path:
        return self.root.joinpath(name, *parts)

    def launch(self) -> None:
        import json
        import os
        import subprocess
        import sys

        jobs = self.root / "jobs.json"
        jobs.write_text(json.dumps([self.common[name] + self.two[name] for name in self.common]))
        env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, *TWO_CPU_PROCESSES, "--main_process_port", free_port(), "tests/launch_recipes.py",
               str(jobs)]
        res = subprocess.run(cmd, cwd=REPO, env=env, timeout=900, capture_output=True, text=True)
        if res.returncode:  # the child's own message, not only its exit status
            raise AssertionError(f"the 2-process launch exited {res.returncode}:\n{res.stderr[-4000:]}")


class RecipeResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
