import json

import pytest
import torch

from hf_vdd import load_video_dataset
from hf_vdd.distillers import DMConfig, DMDistiller, IDTDConfig, IDTDDistiller, IDTDGenerator
from hf_vdd.distillers.idtd import diversity_loss, resample_time, stochastic_temporal_augmentation
from tests.helpers import ONE_THREAD

SMALL = dict(embed_widths=[8, 16, 16], batch_real=4, log_every=1)


@pytest.fixture(scope="module")
def train_set(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)


@pytest.mark.parametrize("ablation", ["full", "A", "B", "C"])
def test_ablations_shapes(train_set, ablation):
    out = IDTDDistiller(IDTDConfig(ipc=2, iterations=2, ablation=ablation, **SMALL))(train_set)
    assert out.videos.shape == (8, 8, 3, 32, 32) and torch.isfinite(out.videos).all()
    assert out.method == ("idtd" if ablation == "full" else f"idtd-{ablation}")
    assert len(out.stats["loss_curve"]) == (0 if ablation == "A" else 2)


def test_initial_video_is_a_real_clip(train_set):
    d = IDTDDistiller(IDTDConfig(ipc=1, iterations=0, **SMALL))
    out = d(train_set)
    clips = train_set.stack(range(len(train_set)))
    dist = ((clips - out.videos[0:1]) ** 2).flatten(1).mean(1)
    assert dist.min() < 1e-3  # selectors start by picking the pool's frames, the fusor starts as identity


@pytest.mark.parametrize("seed", [0, 3])
def test_pools_start_from_dms_clips(train_set, seed):
    """At a seed, IDTD's pools start as the clips DM's videos start as (both `init="real"`; both `"herding"`: the
    next test), so the two methods compare paired."""
    d = IDTDDistiller(IDTDConfig(ipc=2, iterations=0, seed=seed, init="real", **SMALL))
    d(train_set)
    dm = DMDistiller(DMConfig(ipc=2, seed=seed)).init_synthetic(train_set, list(range(train_set.num_classes)))
    for c, x in dm.items():
        assert torch.equal(d.generator.pool[c].detach(), x.detach())
    other = IDTDDistiller(IDTDConfig(ipc=2, iterations=0, seed=seed + 1, init="real", **SMALL))
    other(train_set)
    assert not torch.equal(other.generator.pool[0], d.generator.pool[0])  # the draw follows the seed


def test_herding_init_starts_from_the_herding_selection(train_set, tmp_path):
    """`init="herding"`: DM's videos and IDTD's pools start as the clips Herding selects at the same seed (the
    rest of IDTD's draw is the `real` init's), and choosing them leaves the global RNG as it was."""
    from hf_vdd.data.decoding import normalize
    from hf_vdd.distillers import CoresetConfig, Herding

    herd = Herding(CoresetConfig(ipc=2, seed=3))(train_set)
    want = {c: normalize(herd.videos[herd.labels == c].float() / 255) for c in range(train_set.num_classes)}
    rng = torch.get_rng_state()
    dm = DMDistiller(DMConfig(ipc=2, seed=3, init="herding")).init_synthetic(train_set, [0, 2])
    assert torch.equal(torch.get_rng_state(), rng) and sorted(dm) == [0, 2]
    for c, x in dm.items():
        assert torch.allclose(x.detach(), want[c], atol=1e-5)
    d = IDTDDistiller(IDTDConfig(ipc=2, iterations=0, seed=3, num_selectors=4, **SMALL))  # the default
    d(train_set)
    real = IDTDDistiller(IDTDConfig(ipc=2, iterations=0, seed=3, num_selectors=4, init="real", **SMALL))
    real(train_set)
    for c in range(train_set.num_classes):
        assert torch.allclose(d.generator.pool[c].detach(), want[c], atol=1e-5)
        assert torch.equal(d.generator.sel_weight[c], real.generator.sel_weight[c])
    assert any(not torch.equal(d.generator.pool[c], real.generator.pool[c]) for c in range(train_set.num_classes))
    out = IDTDDistiller(IDTDConfig(ipc=2, iterations=2, seed=3, init="herding", num_selectors=4, **SMALL))(train_set)
    assert torch.isfinite(out.videos).all() and out.config["init"] == "herding" == IDTDConfig().init
    card = (out.save(tmp_path / "idtd") / "README.md").read_text()  # the card says where the start departs
    assert "## Initialisation" in card and "Herding selects at this seed" in card and "--init random" in card
    dm_real = DMDistiller(DMConfig(ipc=1, iterations=0, **SMALL))(train_set)  # DM's paper start: nothing to say
    assert "## Initialisation" not in (dm_real.save(tmp_path / "dm") / "README.md").read_text()


def test_matching_loss_goes_down(train_set):
    out = IDTDDistiller(IDTDConfig(ipc=1, iterations=30, diversity=False, lr=0.05, augment_strength=0.0,
                                   **SMALL))(train_set)
    curve = [v for _, v in out.stats["loss_curve"]]
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5


def test_diversity_loss_bounded_and_pushes_apart():
    same = torch.ones(2, 4, 16)
    assert diversity_loss(same).item() == pytest.approx(1.0)
    z = torch.randn(1, 4, 16, requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5)
    first = diversity_loss(z).item()
    for _ in range(50):
        opt.zero_grad()
        diversity_loss(z).backward()
        opt.step()
    last = diversity_loss(z).item()
    assert -1.0 <= last < first  # more diverse, never below the bound


def test_temporal_ops():
    v = torch.arange(8.0).view(1, 8, 1, 1, 1).expand(2, 8, 3, 4, 4)
    aug = stochastic_temporal_augmentation(v, torch.Generator().manual_seed(0), 0.5)
    assert aug.shape == v.shape and (aug[:, 1:] >= aug[:, :-1]).all()  # a monotone sub-interval, resized to T
    assert (aug[0, -1, 0, 0, 0] - aug[0, 0, 0, 0, 0]) >= 3.5 - 1e-5
    assert resample_time(v, 4).shape == (2, 4, 3, 4, 4)


def test_save_and_from_pretrained(train_set, tmp_path):
    d = IDTDDistiller(IDTDConfig(ipc=1, iterations=1, **SMALL))
    d(train_set)
    d.save_pretrained(tmp_path / "idtd")
    assert (tmp_path / "idtd" / "generator" / "model.safetensors").is_file()
    assert "IDTDDistiller.from_pretrained" in (tmp_path / "idtd" / "README.md").read_text()
    back = IDTDDistiller.from_pretrained(tmp_path / "idtd")
    assert torch.allclose(back.generator(0)[0], d.generator(0)[0]) and back.config.ipc == 1
    with pytest.raises(ValueError, match="ablation"):
        IDTDGenerator(2, 1, 8, 32, ablation="Z")
    assert json.loads((tmp_path / "idtd" / "config.json").read_text())["ipc"] == 1  # ModelHubMixin's config
    with pytest.raises(FileNotFoundError, match="distiller.json"):
        IDTDDistiller.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="Could not load IDTDDistiller 'org/missing'"):
        IDTDDistiller.from_pretrained("org/missing")
    with pytest.raises(ValueError, match="Could not push .* to the Hub model repo.*Nothing was uploaded"):
        d.push_to_hub("org/idtd-toy")


def test_checkpoint_resume_matches(train_set, tmp_path):
    cfg = dict(ipc=1, iterations=4, checkpoint_dir=str(tmp_path / "ck"), **SMALL)
    straight = IDTDDistiller(IDTDConfig(**cfg))(train_set)
    IDTDDistiller(IDTDConfig(**(cfg | {"iterations": 2, "checkpointing_steps": 2})))(train_set)
    resumed = IDTDDistiller(IDTDConfig(**(cfg | {"resume_from_checkpoint": "latest"})))(train_set)
    assert torch.allclose(resumed.videos, straight.videos, atol=1e-5)
    assert [round(v, 5) for _, v in resumed.stats["loss_curve"]] == [round(v, 5) for _, v in
                                                                     straight.stats["loss_curve"]]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, run_recipe, two_processes):
    import json

    from hf_vdd import load_distilled

    run_recipe(*two_processes.common["idtd"], "--output_dir", str(tmp_path / "one"), env=ONE_THREAD)
    one, two = load_distilled(tmp_path / "one"), load_distilled(two_processes.path("idtd", "two"))
    meta = json.loads(two_processes.path("idtd", "two", "distillation.json").read_text())
    assert meta["stats"]["num_processes"] == 2
    assert torch.allclose(torch.stack(one.videos), torch.stack(two.videos), atol=1e-2)
    assert [v for _, v in one.stats["loss_curve"]] == pytest.approx([v for _, v in two.stats["loss_curve"]], rel=1e-4)
    assert two_processes.path("idtd", "two.distiller", "generator", "model.safetensors").is_file()


def test_segments_keep_at_least_two_frames(train_set):
    with pytest.warns(UserWarning, match="using K=4"):
        out = IDTDDistiller(IDTDConfig(ipc=1, iterations=1, **SMALL))(train_set)  # T = 8, K = 8
    assert (out.stats["num_selectors"], out.stats["segment_frames"]) == (4, 2)
    kept = IDTDDistiller(IDTDConfig(ipc=1, iterations=1, min_segment_frames=1, **SMALL))(train_set)
    assert (kept.stats["num_selectors"], kept.stats["segment_frames"]) == (8, 1)
    with pytest.raises(ValueError, match="min_segment_frames"):
        IDTDDistiller(IDTDConfig(min_segment_frames=0))


def test_paper_random_initialisation(train_set):
    d = IDTDDistiller(IDTDConfig(ipc=1, iterations=0, init="random", **SMALL))
    out = d(train_set)
    pool = torch.cat([p.detach().flatten() for p in d.generator.pool])
    assert abs(float(pool.mean())) < 0.05 and 0.9 < float(pool.std()) < 1.1  # standard normal, not a clip
    clips = train_set.stack(range(len(train_set)))
    assert ((clips - out.videos[0:1]) ** 2).flatten(1).mean(1).min() > 1e-2
    again = IDTDDistiller(IDTDConfig(ipc=1, iterations=0, init="random", **SMALL))(train_set)
    assert torch.equal(out.videos, again.videos)  # seeded per class
    with pytest.raises(ValueError, match="init must be"):
        IDTDDistiller(IDTDConfig(init="zeros"))


class _FixedReal:
    """A sampler that always returns the same real batch (pixel space)."""

    def __init__(self, clips):
        self.clips = clips

    def batch(self, seed, it, c, n):
        return self.clips, torch.Generator().manual_seed(it)


def test_aligned_segment_window_matches_each_segment_at_its_position(train_set):
    from hf_vdd.distillers.matching import fresh_embedder

    losses = {}
    for window in ("random", "aligned"):
        d = IDTDDistiller(IDTDConfig(ipc=1, iterations=0, segment_window=window, augment_strength=0.0,
                                     num_selectors=4, **SMALL))
        out = d(train_set)  # initialised from a real clip: segment k = the clip's k-th 2-frame window
        net = fresh_embedder(0, 0, 4, SMALL["embed_widths"])
        _, parts = d.class_loss(net, _FixedReal(out.videos[0:1]), 0, 0)
        losses[window] = float(parts["match_segments"])
    # the real "batch" is the initial video itself (its stitched segments through the identity fusor): aligned
    # windows are its segments exactly, one shared window does not match the mean of 4 different segments
    assert losses["aligned"] < 1e-6 < 1e-4 < losses["random"]
    with pytest.raises(ValueError, match="segment_window must be"):
        IDTDDistiller(IDTDConfig(segment_window="middle"))
    out = IDTDDistiller(IDTDConfig(ipc=1, iterations=3, segment_window="aligned", num_selectors=4, **SMALL))(train_set)
    assert torch.isfinite(out.videos).all() and len(out.stats["loss_curve"]) == 3


def test_pixel_and_module_optimisers(train_set, tmp_path):
    cfg = dict(ipc=1, num_selectors=4, **SMALL)
    start = IDTDDistiller(IDTDConfig(iterations=0, **cfg))
    start(train_set)
    moved = {}
    for name, extra in {"adam": {}, "sgd@0": {"pool_optimizer": "sgd", "pool_lr": 0.0},
                        "sgd": {"pool_optimizer": "sgd", "pool_lr": 1e-3}, "adam@m0": {"module_lr": 0.0},
                        "sgd@m": {"pool_optimizer": "sgd", "pool_lr": 0.0, "module_lr": 1e-3}}.items():
        d = IDTDDistiller(IDTDConfig(iterations=1, **cfg, **extra))
        d(train_set)
        moved[name] = [float((p - q).detach().abs().max()) for p, q in zip(d.generator.class_parameters(0),
                                                                  start.generator.class_parameters(0))]
    # order: pool, selector weights, selector biases, fusor weights, fusor biases
    assert 0.009 < moved["adam"][0] < 0.011  # Adam's first step moves a pixel by about lr (0.01)
    assert moved["sgd@0"][0] == 0.0 and moved["sgd@0"][1:] == pytest.approx(moved["adam"][1:], abs=1e-6)
    assert 0 < moved["sgd"][0] < 1e-3  # lr x gradient: far below Adam's normalised step
    assert moved["adam@m0"][0] == moved["adam"][0] and moved["adam@m0"][1:] == [0.0] * 4  # --module_lr 0
    assert moved["sgd@m"][1:] == pytest.approx([m / 10 for m in moved["adam"][1:]], rel=1e-3)
    ck = dict(cfg, pool_optimizer="sgd", iterations=4, checkpoint_dir=str(tmp_path / "ck"))
    straight = IDTDDistiller(IDTDConfig(**ck))(train_set)  # the SGD momentum buffers are checkpointed too
    IDTDDistiller(IDTDConfig(**(ck | {"iterations": 2, "checkpointing_steps": 2})))(train_set)
    resumed = IDTDDistiller(IDTDConfig(**(ck | {"resume_from_checkpoint": "latest"})))(train_set)
    assert torch.allclose(resumed.videos, straight.videos, atol=1e-5)
    b = IDTDDistiller(IDTDConfig(iterations=2, ablation="B", pool_optimizer="sgd", **cfg))(train_set)
    assert torch.isfinite(b.videos).all()
    with pytest.raises(ValueError, match="pool_optimizer must be"):
        IDTDDistiller(IDTDConfig(pool_optimizer="lbfgs"))
