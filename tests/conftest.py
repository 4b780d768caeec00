"""Shared fixtures: tiny seeded data built locally (tests never reach the Hub)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hf_vdd.data import toy_actions  # noqa: E402
from hf_vdd.utils import shared_data_dir  # noqa: E402
from tests.helpers import REPO, RecipeResult, write_video  # noqa: E402


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


