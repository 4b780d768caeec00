"""Shared fixtures: tiny seeded data built locally (tests never reach the Hub)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hf_vdd.data import toy_actions  # noqa: E402
from hf_vdd.utils import shared_data_dir  # noqa: E402

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


@pytest.fixture(scope="session")
def tiny_toy():
    """4 toy-actions classes (square, disc, slide-right, slide-left), 8 train / 4 test per class."""
    return toy_actions(num_classes=4, train_per_class=8, test_per_class=4, min_frames=8, max_frames=20, seed=1)


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory, tiny_toy):
    """A videofolder tree `split/label/file.mp4` (48x40 mp4s, the first with an audio stream)."""
    root = tmp_path_factory.mktemp("videofolder")
    names = tiny_toy["train"].features["label"].names
    for split, per in (("train", 3), ("test", 2)):
        ds = tiny_toy[split].with_format("numpy")
        count = {}
        for row in ds:
            label = names[int(row["label"])]
            if count.get(label, 0) >= per:
                continue
            count[label] = count.get(label, 0) + 1
            frames = np.asarray(row["video"], np.uint8)
            frames = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)[:, :40, :48]  # 40x48, non-square
            write_video(root / split / label / f"{label}_{count[label]}.mp4", frames,
                        with_audio=split == "train" and count[label] == 1)
    return root


@pytest.fixture(scope="session")
def shared_data():
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared real footage not found at {folder}; set HF_VDD_SHARED_DATA")
    return folder


TWO_CPU_PROCESSES = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                     "--mixed_precision", "no", "--dynamo_backend", "no"]


def run_one_and_two_processes(args: list[str], one_out: list[str], two_out: list[str]) -> None:
    """Run a recipe with `python` and with the 2-process CPU `accelerate launch` command (gloo)."""
    import os
    import subprocess
    import sys

    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for prefix, extra in (([], one_out), (TWO_CPU_PROCESSES, two_out)):
        subprocess.run([sys.executable, *prefix, *args, *extra], cwd=REPO, env=env, check=True, timeout=600,
                       capture_output=True)


class RecipeResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_recipe(monkeypatch, capsys):
    """Run a recipe in this process (imports are paid once): `run_recipe("recipes/x.py", *flags, env=..., check=...)`
    → `.returncode`, `.stdout`, `.stderr`."""
    import importlib.util
    import sys

    def _run(script, *args, env=None, check=True):
        spec = importlib.util.spec_from_file_location(f"recipe_{Path(script).stem}", REPO / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(sys, "argv", [script, *args])
        capsys.readouterr()
        code = 0
        try:
            module.run_main(module.main)
        except SystemExit as exit_info:
            code = exit_info.code
        out, err = capsys.readouterr()
        if check and code:
            raise AssertionError(f"{script} exited {code}: {err[-2000:]}")
        return RecipeResult(code, out, err)

    return _run


def snapshot(folder: Path) -> dict:
    """`{relative path: bytes}` of every file under `folder` (to prove a user's files are untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
