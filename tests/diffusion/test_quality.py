"""Pool quality: the real counterpart of a pool (same clips per class) and a real-data classifier's view of it."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hf_vdd.data import load_video_dataset
from hf_vdd.diffusion.pool import VideoPool, fit_videos
from hf_vdd.diffusion.quality import pool_recognisability, real_like_pool


@pytest.fixture(scope="module")
def real(tiny_toy):
    return load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32)


def test_real_like_pool_takes_as_many_clips_per_class(real):
    sub = real_like_pool(real, 3, seed=0)
    counts = {c: len(idx) for c, idx in sub.indices_per_class().items()}
    assert counts == {c: 3 for c in range(real.num_classes)}
    rows = sub.row_indices
    assert len(set(rows.tolist())) == len(rows)
    assert np.array_equal(real_like_pool(real, 3, seed=0).row_indices, rows)  # seeded
    assert not np.array_equal(real_like_pool(real, 3, seed=5).row_indices, rows)
    assert len(real_like_pool(real, 100, seed=0)) == len(real)  # a class with fewer clips gives all of them
    with pytest.raises(ValueError, match="per_class must be >= 1"):
        real_like_pool(real, 0)


class _SaysFirstClass(torch.nn.Module):
    """A 'classifier' that always answers class 0, and records the shape it was given."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes, self.shapes = num_classes, []
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        self.shapes.append(tuple(x.shape[1:]))
        logits = torch.zeros(len(x), self.num_classes)
        logits[:, 0] = 1.0
        return logits + self.w


def test_pool_recognisability_scores_per_class_at_the_classifiers_shape():
    names = ["square", "disc", "slide-right"]
    labels = np.repeat(np.arange(3), [2, 3, 5])
    pool = VideoPool(videos=torch.zeros(10, 4, 3, 16, 16, dtype=torch.uint8), labels=labels, class_names=names,
                     seeds=np.zeros(10, int), prompts=[""] * 10, manifest={}, path="memory")
    judge = _SaysFirstClass(3)
    rec = pool_recognisability(pool, judge, num_frames=8, frame_size=32)
    assert rec["per_class"] == {"square": 100.0, "disc": 0.0, "slide-right": 0.0}
    assert rec["top1"] == 20.0 and rec["chance"] == pytest.approx(33.3)
    assert set(judge.shapes) == {(8, 3, 32, 32)}  # resized in time and space to the classifier's input


def test_pool_recognisability_takes_the_pool_already_fitted():
    labels = np.repeat(np.arange(2), 3)
    pool = VideoPool(videos=torch.randint(0, 255, (6, 4, 3, 16, 16), dtype=torch.uint8), labels=labels,
                     class_names=["a", "b"], seeds=np.zeros(6, int), prompts=[""] * 6, manifest={}, path="memory")
    judge = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 3 * 32 * 32, 2))
    fitted = fit_videos(pool.videos, 8, 32).float() / 255.0
    assert pool_recognisability(pool, judge, 8, 32, videos=fitted) == pool_recognisability(pool, judge, 8, 32)
    with pytest.raises(ValueError, match="expected the pool's 6 videos at 8 x 32 x 32"):
        pool_recognisability(pool, judge, 8, 32, videos=fitted[:, :4])


class _IdentityVAE(torch.nn.Module):
    """Latents are the pixels in [-1, 1]."""

    config = SimpleNamespace(scaling_factor=1.0)

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=x))

    def decode(self, z):
        return SimpleNamespace(sample=z)


class _Transformer(torch.nn.Module):
    """Predicts the noise that makes x0 the prompted class's flat video (`follows`), or no noise at all."""

    def __init__(self, levels, alphas, follows: bool, velocity: bool = False):
        super().__init__()
        self.levels, self.alphas, self.follows, self.velocity = levels, alphas, follows, velocity

    def forward(self, zt, timestep, encoder_hidden_states, return_dict=False):
        eps = torch.zeros_like(zt)
        if self.follows:
            a = self.alphas[timestep].reshape(-1, 1, 1, 1, 1)
            x0 = (2 * self.levels[encoder_hidden_states[:, 0].argmax(-1)] - 1).reshape(-1, 1, 1, 1, 1)
            eps = (zt - a.sqrt() * x0) / (1 - a).sqrt()
            if self.velocity:  # a v-prediction model (`prediction_type="v_prediction"`) outputs v, not the noise
                eps = a.sqrt() * eps - (1 - a).sqrt() * x0
        return (torch.cat([eps, eps], 1),)  # learned sigma: twice the channels


class _ByBrightness(torch.nn.Module):
    """Labels a video with the class whose flat level is nearest its mean (after the student's input transform)."""

    def __init__(self, levels):
        super().__init__()
        from hf_vdd.training import _prepare_inputs

        flat = levels.reshape(-1, 1, 1, 1, 1).expand(-1, 2, 3, 4, 4)
        self.centres = _prepare_inputs(flat, False).flatten(1).mean(1)

    def forward(self, x):
        return -(x.flatten(1).mean(1, keepdim=True) - self.centres) ** 2


def test_vae_recognisability_and_prompt_steering_tell_a_prompt_follower_from_an_ignorer():
    from diffusers import DDIMScheduler

    from hf_vdd.diffusion.quality import prompt_steering, vae_recognisability
    from hf_vdd.training import TrainConfig

    levels = torch.tensor([0.25, 0.5, 0.75])
    labels = torch.arange(3).repeat_interleave(2)
    videos = levels[labels].reshape(-1, 1, 1, 1, 1).expand(-1, 2, 3, 4, 4).clone()  # (6, T=2, C=3, 4, 4)
    judge, config = _ByBrightness(levels), TrainConfig(standardize=False)
    vae = vae_recognisability(_IdentityVAE(), videos, labels, judge, config)
    assert vae == {"real": 100.0, "reconstructed": 100.0, "mse": 0.0}
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    states = torch.eye(3)[:, None, :]  # class c's prompt: one token, the c-th basis vector
    for follows, expected in ((True, {100: {"own": 100.0, "next": 100.0}, 900: {"own": 100.0, "next": 100.0}}),
                              (False, {100: {"own": 100.0, "next": 0.0}})):
        pipe = SimpleNamespace(vae=_IdentityVAE(), scheduler=scheduler,
                               transformer=_Transformer(levels, scheduler.alphas_cumprod, follows))
        steering = prompt_steering(pipe, videos, labels, states, judge, timesteps=list(expected), config=config,
                                   empty_states=torch.zeros(1, 1, 3))
        assert {t: {k: r[k] for k in ("own", "next")} for t, r in steering.items()} == expected
        mse = steering[100]["x0_mse"]  # no judge: the clean latents' error with own, next and no class
        if follows:
            assert mse["own"] < 1e-6 < mse["next"]
        else:
            assert mse["own"] == mse["next"] == mse["empty"] > 0
    v_scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="v_prediction")
    pipe = SimpleNamespace(vae=_IdentityVAE(), scheduler=v_scheduler,
                           transformer=_Transformer(levels, v_scheduler.alphas_cumprod, True, velocity=True))
    steering = prompt_steering(pipe, videos, labels, states, judge, timesteps=[100, 900], config=config)
    assert {t: {k: r[k] for k in ("own", "next")} for t, r in steering.items()} == {
        100: {"own": 100.0, "next": 100.0}, 900: {"own": 100.0, "next": 100.0}}
    assert steering[900]["x0_mse"]["own"] < 1e-6 and "empty" not in steering[900]["x0_mse"]


def test_partial_generation_keeps_the_clips_at_strength_0_and_denoises_only_the_steps_below_the_strength():
    from diffusers import DDIMScheduler

    from hf_vdd.diffusion.quality import partial_generation

    levels = torch.tensor([0.25, 0.5, 0.75])
    labels = torch.arange(3).repeat_interleave(2)
    videos = levels[labels].reshape(-1, 1, 1, 1, 1).expand(-1, 2, 3, 4, 4).clone()
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="v_prediction")
    states = torch.eye(3)[:, None, :]
    transformer = _Transformer(levels, scheduler.alphas_cumprod, True, velocity=True)
    calls = []
    transformer.register_forward_hook(lambda m, args, kwargs, out: calls.append(
        (int(kwargs["timestep"][0]), len(args[0]))), with_kwargs=True)
    pipe = SimpleNamespace(vae=_IdentityVAE(), scheduler=scheduler, transformer=transformer)
    nxt = (labels + 1) % 3
    kept = partial_generation(pipe, videos, labels, states, 0.0)
    torch.testing.assert_close(kept, videos)  # strength 0: the VAE's reconstructions, nothing denoised
    assert calls == []
    # a quarter of 20 DDIM steps (timesteps 950, 900, ..., 0): the five below 250, each on both guidance halves
    partial_generation(pipe, videos, nxt, states, 0.25, empty_states=torch.zeros(1, 1, 3), chunk=4)
    assert [t for t, _ in calls] == [200, 150, 100, 50, 0] * 2 and [n for _, n in calls] == [8] * 5 + [4] * 5
    # without guidance, a transformer that denoises towards its prompt's class gives that class's videos
    out = partial_generation(pipe, videos, nxt, states, 0.25, guidance_scale=1.0)
    torch.testing.assert_close(out, levels[nxt].reshape(-1, 1, 1, 1, 1).expand_as(videos), atol=1e-3, rtol=0)
    calls.clear()
    partial_generation(pipe, videos, labels, states, 1.0, guidance_scale=1.0, empty_states=torch.zeros(1, 1, 3))
    assert len(calls) == 20 and calls[0] == (950, 6)  # strength 1: every step from pure noise, no guidance half
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\], got 1.5"):
        partial_generation(pipe, videos, labels, states, 1.5)
