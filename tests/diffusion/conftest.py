"""Session fixtures for the diffusion + selection tests: a tiny Latte folder, a tiny pool, a tiny VideoMAE."""

import pytest
import torch

from tests.diffusion.helpers import CLASSES, small_pool_config


@pytest.fixture(scope="session")
def latte_dir(tmp_path_factory):
    """An untrained tiny Latte pipeline (8 frames, 32x32) saved to a folder."""
    from hf_vdd.diffusion import tiny_latte_pipeline

    folder = tmp_path_factory.mktemp("latte") / "tiny-latte"
    tiny_latte_pipeline(CLASSES, num_frames=8, frame_size=32, seed=0).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def pool_dir(tmp_path_factory, latte_dir):
    from hf_vdd.diffusion import generate_pool, load_latte

    folder = tmp_path_factory.mktemp("pools") / "pool"
    generate_pool(load_latte(latte_dir), CLASSES, folder, small_pool_config(), dataset="tiny",
                  generator=str(latte_dir), show_progress=False)
    return folder


@pytest.fixture(scope="session")
def videomae_dir(tmp_path_factory):
    """A randomly initialised tiny VideoMAE classifier over CLASSES (seeded)."""
    from transformers import VideoMAEForVideoClassification

    from hf_vdd.models import tiny_videomae_config

    torch.manual_seed(0)
    cfg = tiny_videomae_config(len(CLASSES), 8, 32, id2label=dict(enumerate(CLASSES)),
                               label2id={c: i for i, c in enumerate(CLASSES)})
    folder = tmp_path_factory.mktemp("videomae") / "tiny-videomae"
    VideoMAEForVideoClassification(cfg).save_pretrained(str(folder))
    return folder
