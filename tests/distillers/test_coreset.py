import numpy as np
import pytest
import torch

from hf_vdd import DISTILLERS, Herding, KCenter, RandomSelection, load_video_dataset


@pytest.fixture(scope="module")
def train_set(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=4, frame_size=32)


@pytest.mark.parametrize("cls", [RandomSelection, Herding, KCenter])
def test_selection_per_class_and_seeded(cls, train_set):
    out = cls(ipc=3, seed=0)(train_set)
    assert out.videos.shape == (12, 4, 3, 32, 32) and out.videos.dtype == torch.uint8
    assert np.bincount(out.labels.numpy()).tolist() == [3, 3, 3, 3]
    assert len(set(out.source_index.tolist())) == 12
    assert np.array_equal(train_set.labels[out.source_index.numpy()], out.labels.numpy())
    again = cls(ipc=3, seed=0)(train_set)
    assert torch.equal(out.source_index, again.source_index)
    assert cls.name in DISTILLERS


def test_herding_and_kcenter_objectives():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, 5))
    feats[:5] += 8.0  # a far cluster
    mu = feats.mean(0)
    herd = Herding(ipc=6).select(feats, 6, rng)
    rand = [rng.choice(60, 6, replace=False) for _ in range(50)]
    assert np.linalg.norm(feats[herd].mean(0) - mu) < np.median([np.linalg.norm(feats[r].mean(0) - mu) for r in rand])
    kc = KCenter(ipc=6).select(feats, 6, rng)

    def radius(idx):
        return np.linalg.norm(feats[:, None] - feats[idx][None], axis=2).min(1).max()

    assert radius(kc) < np.median([radius(r) for r in rand]) and len(set(kc.tolist())) == 6


def test_ipc_too_large(train_set):
    with pytest.raises(ValueError, match="lower --ipc to at most 8"):
        RandomSelection(ipc=9)(train_set)
    with pytest.raises(ValueError, match="ipc must be >= 1"):
        RandomSelection(ipc=0)


def test_teacher_features_folder(train_set, tmp_path):
    from hf_vdd import ConvNet3D

    torch.manual_seed(5)
    ConvNet3D(num_classes=4, widths=(8, 16, 16)).save_pretrained(tmp_path / "teacher")
    out = Herding(ipc=2, feature_model=str(tmp_path / "teacher"))(train_set)
    feats = Herding(ipc=2, feature_model=str(tmp_path / "teacher")).embed(train_set, show_progress=False)
    assert feats.shape == (len(train_set), 16) and out.config["feature_model"] == str(tmp_path / "teacher")


def test_distillers_are_hub_mixins(tmp_path):
    from huggingface_hub import ModelHubMixin

    from hf_vdd.distillers import CoresetConfig

    herding = Herding(CoresetConfig(ipc=3, seed=4))
    assert isinstance(herding, ModelHubMixin)
    folder = herding.save_pretrained(tmp_path / "herding")
    assert {p.name for p in folder.iterdir()} == {"config.json", "distiller.json", "README.md"}
    assert "Herding.from_pretrained" in (folder / "README.md").read_text()
    back = Herding.from_pretrained(folder)
    assert back.config == herding.config
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="hf_vdd did not write"):
        herding.save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
