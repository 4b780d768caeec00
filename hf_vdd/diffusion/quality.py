"""Is a generation pool any good? Two measurements the diffusion paper's claims rest on (issue: a pool whose
videos a real-data classifier cannot tell apart makes every selector look like chance).

- `real_like_pool(train_set, per_class, seed)`: a random real train subset with as many clips per class as the
  pool, the fair reference of "a student on the whole generated pool" (same count, real footage).
- `pool_recognisability(pool, classifier, ...)`: a classifier trained on the real train split labels the pool's
  videos (resized to the classifier's shape); its accuracy per class says which classes the generator has learnt.

When a pool is not recognisable, two more say which part of the generator is at fault (`recipes/diagnose_latte.py`):
- `vae_recognisability`: the same classifier on real clips and on their VAE reconstructions (the latent space);
- `prompt_steering`: one-step x0 predictions of the transformer from noised real latents, prompted with each clip's
  own class and with the next class (does the transformer follow its prompt?);
- `partial_generation`: SDEdit of real clips (noised part of the way, the generator denoises the rest); students
  trained on the results at several strengths say at which noise levels the generator loses what they need.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.distilled import TensorVideoSet
from ..utils import runtime
from .latte_train import video_latents
from .pool import DEFAULT_GUIDANCE_SCALE, fit_videos


def real_like_pool(train_set, per_class: int, seed: int = 0):
    """`per_class` random clips of every class of the real `train_set` (seeded; every clip when a class has fewer),
    as a subset that keeps the train split's own clip sampling."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}.")
    g = np.random.default_rng(seed)
    keep = [np.sort(g.permutation(idx)[:per_class]) for idx in train_set.indices_per_class().values()]
    return train_set.subset(np.sort(np.concatenate(keep)))


def pool_recognisability(pool, classifier: torch.nn.Module, num_frames: int, frame_size: int, config=None,
                         accelerator=None, videos: torch.Tensor | None = None) -> dict:
    """Top-1 of `classifier` (trained on real clips at `num_frames` x `frame_size`) on `pool`'s videos, overall and
    per class name; chance is `1 / pool.num_classes`. `videos`: the pool already fitted to that shape, float in
    [0, 1] (as `fit_videos(pool.videos, T, S) / 255`), to skip fitting it again."""
    from ..training import TrainConfig, predict

    if videos is None:
        videos = fit_videos(pool.videos, num_frames, frame_size).float() / 255.0
    elif tuple(videos.shape) != (len(pool), num_frames, pool.videos.shape[2], frame_size, frame_size):
        raise ValueError(f"videos has shape {tuple(videos.shape)}, expected the pool's {len(pool)} videos at "
                         f"{num_frames} x {frame_size} x {frame_size}.")
    probs, labels = predict(classifier, TensorVideoSet(videos, torch.as_tensor(pool.labels)), config or TrainConfig(),
                            accelerator)
    right = probs.argmax(1) == labels
    per_class = {name: round(100.0 * float(right[labels == c].mean()), 1)
                 for c, name in enumerate(pool.class_names) if (labels == c).any()}
    return {"top1": round(100.0 * float(right.mean()), 1), "chance": round(100.0 / pool.num_classes, 1),
            "per_class": per_class}


def _top1(classifier, videos: torch.Tensor, labels: torch.Tensor, config=None, accelerator=None) -> float:
    from ..training import TrainConfig, predict

    probs, y = predict(classifier, TensorVideoSet(videos.clamp(0, 1).cpu(), labels.cpu()), config or TrainConfig(),
                       accelerator)
    return round(100.0 * float((probs.argmax(1) == y).mean()), 1)


def _latents_to_frames(vae, z: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    f = z.permute(0, 2, 1, 3, 4).flatten(0, 1) / vae.config.scaling_factor
    x = torch.cat([vae.decode(c).sample.float() for c in f.split(chunk)])
    return ((x.clamp(-1, 1) + 1) / 2).reshape(z.shape[0], z.shape[2], *x.shape[1:]).cpu()


@torch.no_grad()
def vae_recognisability(vae, videos: torch.Tensor, labels, classifier, config=None, accelerator=None) -> dict:
    """Does the latent space keep the classes? `classifier`'s top-1 on real `videos` `(N, T, C, H, W)` in [0, 1]
    and on their reconstructions through `vae` (posterior mean), and the reconstruction's MSE."""
    device, _ = runtime(accelerator)
    vae = vae.to(device).eval()
    labels = torch.as_tensor(labels)
    rec = _latents_to_frames(vae, video_latents(vae, videos.to(device), mean=True, chunk=64).float())
    return {"real": _top1(classifier, videos, labels, config, accelerator),
            "reconstructed": _top1(classifier, rec, labels, config, accelerator),
            "mse": round(float(((rec - videos.cpu()) ** 2).mean()), 5)}


@torch.no_grad()
def prompt_steering(pipe, videos: torch.Tensor, labels, class_states: torch.Tensor, classifier,
                    timesteps=(500, 700, 900), seed: int = 0, config=None, accelerator=None,
                    empty_states: torch.Tensor | None = None) -> dict:
    """Does the transformer follow its class prompt? The latents of real `videos` are noised to each timestep `t`
    (seeded), the transformer predicts x0 in one step with each clip's own class states (`class_states[label]`) and
    with the next class's, and `classifier` labels the decoded predictions: `{t: {"own": top-1 as the clip's class,
    "next": top-1 as the next class, "x0_mse": {...}}}`. At high `t` little of the clip is left, so a transformer
    that has learnt the classes scores "next" well above chance there; one that ignores its prompt scores about
    chance. `x0_mse` needs no judge: the predictions' mean squared error to the clean latents with the own class,
    the next class and (given `empty_states` `(1, L, D)`, guidance's unconditional side) no class. A transformer
    that uses its prompt predicts better with its own class than with none, and worse with the wrong one."""
    device, autocast = runtime(accelerator)
    vae, transformer = pipe.vae.to(device).eval(), pipe.transformer.to(device).eval()
    labels = torch.as_tensor(labels)
    z = video_latents(vae, videos.to(device), mean=True, chunk=64).float()
    alphas, velocity = pipe.scheduler.alphas_cumprod, pipe.scheduler.config.prediction_type == "v_prediction"
    gen, out = torch.Generator().manual_seed(seed), {}
    prompts = [("own", labels), ("next", (labels + 1) % len(class_states))]
    for t in timesteps:
        a = alphas[int(t)].to(device)
        zt = a.sqrt() * z + (1 - a).sqrt() * torch.randn(z.shape, generator=gen).to(device)
        out[int(t)], mse = {}, {}
        for name, target in prompts + ([("empty", None)] if empty_states is not None else []):
            states = (class_states[target.to(class_states.device)] if target is not None
                      else empty_states.expand(len(z), -1, -1)).to(device)
            with autocast():
                pred = transformer(zt, timestep=torch.full((len(z),), int(t), device=device),
                                   encoder_hidden_states=states, return_dict=False)[0]
            p0 = pred.float()[:, :z.shape[1]]  # learned sigma: the first channels are the prediction
            x0 = a.sqrt() * zt - (1 - a).sqrt() * p0 if velocity else (zt - (1 - a).sqrt() * p0) / a.sqrt()
            mse[name] = round(float(((x0 - z) ** 2).mean()), 5)
            if target is not None:
                out[int(t)][name] = _top1(classifier, _latents_to_frames(vae, x0), target, config, accelerator)
        out[int(t)]["x0_mse"] = mse
    return out


@torch.no_grad()
def partial_generation(pipe, videos: torch.Tensor, labels, class_states: torch.Tensor, strength: float,
                       num_inference_steps: int = 20, guidance_scale: float = DEFAULT_GUIDANCE_SCALE, seed: int = 0,
                       empty_states: torch.Tensor | None = None, accelerator=None, chunk: int = 16) -> torch.Tensor:
    """SDEdit (Meng et al. 2022) of real `videos` `(N, T, C, H, W)` in [0, 1]: their latents (posterior mean) are
    noised (seeded) to the first of the scheduler's `num_inference_steps` sampling timesteps below
    `strength * num_train_timesteps`, and the transformer denoises the remaining steps with each clip's class states
    (`class_states[label]`; classifier-free guidance against `empty_states` `(1, L, D)` when given and
    `guidance_scale > 1`). Strength 0 gives the VAE's reconstructions, 1 generates from pure noise as the pool does.
    Returns the decoded videos, on the CPU. Students trained on them say where a pool loses what a student needs:
    near the real clips' score at low strength and far below it at high strength means the generator renders
    details well and decides the coarse content (form, motion) badly."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}.")
    device, autocast = runtime(accelerator)
    vae, transformer = pipe.vae.to(device).eval(), pipe.transformer.to(device).eval()
    sched = type(pipe.scheduler).from_config(pipe.scheduler.config)
    sched.set_timesteps(num_inference_steps)
    limit = strength * sched.config.num_train_timesteps
    steps = [int(t) for t in sched.timesteps if strength >= 1.0 or t < limit]
    labels = torch.as_tensor(labels)
    z0 = video_latents(vae, videos.to(device), mean=True, chunk=64).float()
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    if strength >= 1.0:
        z0 = noise
    elif steps:
        z0 = sched.add_noise(z0, noise, torch.tensor([steps[0]], device=device))
    guided = empty_states is not None and guidance_scale > 1.0
    out = []
    for idx in torch.arange(len(z0)).split(chunk):
        z, states = z0[idx], class_states[labels[idx].to(class_states.device)].to(device)
        if guided:
            states = torch.cat([empty_states.to(device).expand(len(idx), -1, -1), states])
        for t in steps:
            inp = torch.cat([z, z]) if guided else z
            with autocast():
                pred = transformer(inp, timestep=torch.full((len(inp),), t, device=device),
                                   encoder_hidden_states=states, return_dict=False)[0]
            pred = pred.float()[:, :z.shape[1]]  # learned sigma: the first channels are the prediction
            if guided:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            z = sched.step(pred, t, z).prev_sample
        out.append(z)
    return _latents_to_frames(vae, torch.cat(out))
