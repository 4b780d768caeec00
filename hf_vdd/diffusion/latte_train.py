"""Fine-tune a Latte pipeline on a source video set, class-conditioned by prompt (diffusers training-example style).

    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)     # or load_latte("org/latte")
    finetune_latte(pipe, train, LatteFinetuneConfig(steps=400), output_dir="outputs/latte-toy")

Stage 1 (optional, `vae_steps > 0`, meant for a VAE built from a config): the AutoencoderKL learns to reconstruct
frames (MSE + `kl_weight` KL), then its `scaling_factor` is set so that latents have unit std; with
`vae_decoder_steps > 0` (a pretrained VAE's too) the decoder alone then trains on the frozen encoder's latents.
Stage 2: the transformer (and, with `learn_class_embeddings`, one prompt embedding per class fed through
`prompt_embeds`) learns epsilon (or, with `prediction_type`, velocity) prediction on VAE latents `(B, 4, T, h, w)`;
the text encoder and VAE are frozen; captions are dropped to "" with probability `caption_dropout` so that
classifier-free guidance works. With `ema_decay > 0` an exponential moving average of the trained weights
(diffusers' `EMAModel`) is kept and saved. Checkpoints via `accelerator.save_state` (the EMA included).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from ..checkpoints import resolve_checkpoint, save_state
from ..config_fields import check_fields, config_defaults
from ..utils import atomic_folder, progress
from .latte_adaln import AdaLNLatteTransformer3DModel
from .pool import CLASS_EMBEDS_FILE, DEFAULT_PROMPT_TEMPLATE, encode_prompts, unconditional_states

CONDITIONINGS = ("cross_attention", "adaln")
PREDICTIONS = ("epsilon", "v_prediction")


@dataclass
class LatteFinetuneConfig:
    steps: int = field(default=1000, metadata={"help": "Transformer training steps."})
    batch_size: int = field(default=8, metadata={"help": "Global batch size (split across processes)."})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate (transformer, class embeddings)."})
    vae_steps: int = field(default=0, metadata={"help": "VAE reconstruction steps first (for a VAE from config)."})
    vae_decoder_steps: int = field(default=0, metadata={
        "help": "Then the decoder alone trains N more steps on the frozen encoder's latents (as Stability's "
        "sd-vae-ft-mse): the latents keep their meaning (and scaling factor), the decoded colours come closer to "
        "the data's."})
    vae_lr: float = field(default=1e-3, metadata={"help": "VAE learning rate (both VAE stages)."})
    kl_weight: float = field(default=1e-6, metadata={"help": "KL weight of the VAE stage."})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "Prompt per class name."})
    learn_class_embeddings: bool = field(default=False, metadata={
        "help": "Also learn one prompt embedding per class (saved as class_prompt_embeds.safetensors)."})
    caption_dropout: float = field(default=0.1, metadata={"help": "Probability of the empty prompt (for CFG)."})
    class_conditioning: str = field(default="cross_attention", metadata={
        "choices": CONDITIONINGS, "help": "How the class prompt reaches the transformer: `cross_attention` "
        "(diffusers' text-to-video Latte) or `adaln` (also pooled into every block's adaLN, as Latte's "
        "class-conditional models)."})
    prediction_type: str = field(default="epsilon", metadata={
        "choices": PREDICTIONS, "help": "What the transformer learns to predict: `epsilon` (Latte's) or "
        "`v_prediction` (its loss weighs the high-noise steps, where the class decides, 1/alpha_bar times more); "
        "the saved scheduler samples with it."})
    zero_terminal_snr: bool = field(default=False, metadata={
        "help": "Rescale the noise schedule so that its last step is pure noise, as sampling starts (Lin et al. 2024; "
        "diffusers' `rescale_betas_zero_snr`, with `trailing` timestep spacing; needs `v_prediction`). Latte's "
        "linear schedule keeps sqrt(alpha_bar)=0.0064 of the clip at t=999; the saved scheduler samples as trained."})
    ema_decay: float = field(default=0.0, metadata={
        "help": "Keep an exponential moving average of the trained weights (diffusers' EMAModel: the decay ramps as "
        "(1+step)/(10+step) up to this value) and save it instead of the last weights, as Latte and DiT sample "
        "(0.9999); 0 = off."})
    checkpointing_steps: int = field(default=0, metadata={"help": "Save state every N steps (0 = off)."})
    checkpoints_total_limit: int = field(default=3, metadata={"help": "Keep only the newest N checkpoints (0 = all)."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "A checkpoint folder or 'latest'."})
    seed: int = field(default=0, metadata={"help": "Seed."})

    def __post_init__(self):
        check_fields(self)  # choices, and ranges (`config_fields.RANGES`: steps >= 1, vae_steps >= 0, ...)
        if self.zero_terminal_snr and self.prediction_type != "v_prediction":
            raise ValueError("zero_terminal_snr needs prediction_type 'v_prediction' (add --prediction_type "
                             "v_prediction): at zero SNR the noisiest step's input is the noise itself, so epsilon "
                             "prediction has nothing to learn there.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = no EMA), got {self.ema_decay}.")


def video_latents(vae, frames: torch.Tensor, generator=None, mean: bool = False, chunk: int | None = None):
    """`(B, T, C, H, W)` pixels in [0, 1] → `(B, 4, T, h, w)` scaled latents (what Latte denoises): a posterior
    sample drawn with `generator`, or with `mean` the posterior mean; `chunk` frames per VAE call (None: one call)."""
    b, t = frames.shape[:2]
    f = frames.flatten(0, 1) * 2 - 1
    dists = [vae.encode(x).latent_dist for x in f.split(chunk or len(f))]
    z = torch.cat([d.mean if mean else d.sample(generator) for d in dists]) * vae.config.scaling_factor
    return z.reshape(b, t, *z.shape[1:]).permute(0, 2, 1, 3, 4)


class _VAELoss(torch.nn.Module):
    """Reconstruction + KL of frames `(N, C, H, W)` in [-1, 1] (a module, so DDP syncs its gradients)."""

    def __init__(self, vae, kl_weight: float):
        super().__init__()
        self.vae, self.kl_weight = vae, kl_weight

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        dist = self.vae.encode(frames).latent_dist
        dec = self.vae.decode(dist.sample()).sample
        return F.mse_loss(dec, frames) + self.kl_weight * dist.kl().mean()


def _train_vae(vae, loader, config: LatteFinetuneConfig, accelerator, show: bool,
               decoder_only: bool = False) -> list[float]:
    """Stage 1: the whole VAE for `vae_steps`, then sets `scaling_factor`; with `decoder_only`, the decoder alone
    for `vae_decoder_steps` (the encoder, hence the latents and their scale, stay as they are)."""
    vae.requires_grad_(not decoder_only).train()
    if decoder_only:
        for part in (vae.decoder, getattr(vae, "post_quant_conv", None)):
            if part is not None:
                part.requires_grad_(True)
    model = _VAELoss(vae, config.kl_weight)  # frozen encoder: the KL term is a constant
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=config.vae_lr)
    model, opt = accelerator.prepare(model, opt)
    curve, it = [], iter(loader)
    steps = config.vae_decoder_steps if decoder_only else config.vae_steps
    for step in progress(range(steps), desc="VAE decoder" if decoder_only else "VAE", disable=not show, leave=False):
        try:
            x = next(it)[0]
        except StopIteration:
            it = iter(loader)
            x = next(it)[0]
        loss = model(x.flatten(0, 1) * 2 - 1)
        opt.zero_grad()
        accelerator.backward(loss)
        opt.step()
        if step % 10 == 0:
            curve.append(loss.item())
    vae = accelerator.unwrap_model(model).vae.eval().requires_grad_(False)
    if decoder_only:
        return curve
    with torch.no_grad():  # unit-variance latents for the diffusion stage
        x = next(iter(loader))[0]
        z = vae.encode(x.flatten(0, 1) * 2 - 1).latent_dist.mean
        std = accelerator.reduce(z.std().reshape(1), "mean")
        vae.register_to_config(scaling_factor=float(1.0 / std.clamp_min(1e-3)))
    return curve


RESUME_FREE = ("steps", "checkpointing_steps", "checkpoints_total_limit", "resume_from_checkpoint")


def latte_run(config: LatteFinetuneConfig, train_set) -> dict:
    """What a checkpoint must match to be resumed (settings that change the trajectory, and the data)."""
    from ..distillers.matching import data_fingerprint

    return {"method": "finetune_latte", "data": data_fingerprint(train_set),
            "config": {k: v for k, v in asdict(config).items() if k not in RESUME_FREE},
            "defaults": config_defaults(config)}


def _checkpoint_dir(ckpt_root: Path, config: LatteFinetuneConfig, train_set) -> Path | None:
    """The checkpoint in `ckpt_root` to resume from, checked to belong to this run (`HfVddError` listing the
    differences)."""
    if config.resume_from_checkpoint is None:
        return None
    return resolve_checkpoint(config.resume_from_checkpoint, ckpt_root, latte_run(config, train_set))


def _ema(params, decay: float):
    """diffusers' `EMAModel` over `params` (created where they are), or None when `decay` is 0."""
    if not decay:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(params, decay=decay)


def finetune_latte(pipe, train_set, config: LatteFinetuneConfig, output_dir: str | os.PathLike | None = None,
                   accelerator=None, source: str = "unknown", show_progress: bool = True) -> dict:
    """Fine-tune `pipe` in place on `train_set` (a `VideoClassificationSet`; clips `(T, C, H, W)` in [0, 1]).

    `train_set.num_frames` must equal the transformer's `video_length`. Returns training stats; with `output_dir`,
    the main process writes the pipeline (`save_pretrained`), `hf_vdd_latte.json`, class embeddings and a card.
    """
    from ..training import make_accelerator

    accelerator = make_accelerator(accelerator)
    show = show_progress and accelerator.is_local_main_process
    if pipe.transformer.config.video_length != train_set.num_frames:
        raise ValueError(f"The Latte transformer has video_length {pipe.transformer.config.video_length} but the "
                         f"data has {train_set.num_frames} frames; use --num_frames "
                         f"{pipe.transformer.config.video_length}.")
    set_seed(config.seed)
    output_dir = Path(output_dir) if output_dir else None
    ckpt_root = output_dir.parent / f"{output_dir.name}.checkpoints" if output_dir else None
    resume = _checkpoint_dir(ckpt_root, config, train_set) if output_dir else None
    bs = max(accelerator.num_processes, config.batch_size - config.batch_size % accelerator.num_processes)
    loader = DataLoader(train_set.with_options(train=True), batch_size=bs, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(config.seed))
    loader = accelerator.prepare(loader)
    start = time.perf_counter()
    # 1. VAE (from config) → reconstruct frames; a saved VAE is reused on resume
    vae_curve, decoder_curve = [], []
    if resume is not None and (resume.parent / "vae").is_dir():
        from diffusers import AutoencoderKL

        pipe.vae = AutoencoderKL.from_pretrained(str(resume.parent / "vae"))
    elif config.vae_steps > 0 or config.vae_decoder_steps > 0:
        if config.vae_steps > 0:
            vae_curve = _train_vae(pipe.vae, loader, config, accelerator, show)
        if config.vae_decoder_steps > 0:
            decoder_curve = _train_vae(pipe.vae, loader, config, accelerator, show, decoder_only=True)
        if ckpt_root is not None and config.checkpointing_steps and accelerator.is_main_process:
            pipe.vae.save_pretrained(str(ckpt_root / "vae"))
    device = accelerator.device
    vae = pipe.vae.eval().requires_grad_(False).to(device)
    # eval: no dropout in the prompt states (T5 is built in train mode; a loaded pipeline samples in eval mode)
    pipe.text_encoder.eval().requires_grad_(False).to(device)  # prompt states are made on the device
    # 2. conditioning: per-class prompt states (+ learned copies) and the empty prompt
    names = train_set.class_names
    prompt_states = encode_prompts(pipe, [config.prompt_template.format(c) for c in names])  # (C, L, D)
    empty = unconditional_states(pipe, 1, prompt_states.shape[1])  # what the pool's guidance samples with
    class_embeds = torch.nn.Parameter(prompt_states.clone(), requires_grad=config.learn_class_embeddings)
    if config.class_conditioning == "adaln" and not isinstance(pipe.transformer, AdaLNLatteTransformer3DModel):
        pipe.transformer = AdaLNLatteTransformer3DModel.from_latte(pipe.transformer)  # same outputs until trained
    transformer = pipe.transformer.train().requires_grad_(True)
    params = list(transformer.parameters()) + ([class_embeds] if config.learn_class_embeddings else [])
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    holder = torch.nn.ParameterList([class_embeds])
    accelerator.free_memory()  # forget the VAE stage's objects: checkpoints hold the diffusion stage only
    transformer, opt = accelerator.prepare(transformer, opt)
    accelerator.register_for_checkpointing(holder)
    ema = _ema(params, config.ema_decay)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    first_step = 0
    if resume is not None:
        accelerator.load_state(str(resume))
        first_step = int(resume.name.split("-")[1])
        if ema is not None:
            ema.to(device)  # loaded on the CPU
    schedule = {"prediction_type": config.prediction_type}  # the saved pipeline samples as it trained
    if config.zero_terminal_snr:
        schedule |= {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    if any(pipe.scheduler.config.get(k) != v for k, v in schedule.items()):
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **schedule)
    sched = pipe.scheduler
    gen = torch.Generator().manual_seed(config.seed * 1000 + accelerator.process_index)
    curve, it = [], iter(loader)
    # 3. epsilon-prediction loop (diffusers' train_text_to_image, on video latents)
    for step in progress(range(first_step, config.steps), desc="fine-tune Latte", disable=not show, leave=False):
        try:
            x, y = next(it)[:2]
        except StopIteration:
            it = iter(loader)
            x, y = next(it)[:2]
        with torch.no_grad(), accelerator.autocast():
            z = video_latents(vae, x, gen).float()
        # draws from the CPU generator (the same numbers on every device), then moved
        noise = torch.randn(z.shape, generator=gen).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(z),), generator=gen).to(device)
        noisy = sched.add_noise(z, noise, t)
        emb = holder[0][y.to(device)]
        drop = (torch.rand(len(y), generator=gen) < config.caption_dropout).to(device)
        emb = torch.where(drop[:, None, None], empty.expand_as(emb), emb)
        pred = transformer(noisy, timestep=t, encoder_hidden_states=emb, return_dict=False)[0]
        target = noise if config.prediction_type == "epsilon" else sched.get_velocity(z, noise, t)
        loss = F.mse_loss(pred.chunk(2, dim=1)[0], target)
        opt.zero_grad()
        accelerator.backward(loss)
        if config.learn_class_embeddings and accelerator.num_processes > 1:  # not inside DDP: average by hand
            class_embeds.grad = accelerator.reduce(class_embeds.grad, "mean")
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        if ema is not None:
            ema.step(params)
        curve.append(loss.item())
        done = step + 1
        if ckpt_root is not None and config.checkpointing_steps and done % config.checkpointing_steps == 0:
            save_state(accelerator, ckpt_root, done, latte_run(config, train_set), config.checkpoints_total_limit)
    if ema is not None:
        ema.copy_to(params)  # what is saved and sampled: the average (the last weights stay in the checkpoints)
    pipe.transformer = accelerator.unwrap_model(transformer).eval()
    learned = holder[0].detach().clone()
    stats = {"steps": config.steps, "resumed_from": first_step, "seconds": time.perf_counter() - start,
             "loss_first": curve[:10], "loss_last": curve[-10:], "vae_loss": vae_curve[-3:],
             "vae_decoder_loss": decoder_curve[-3:], "num_processes": accelerator.num_processes}
    if ema is not None:
        stats["ema"] = {"decay": config.ema_decay, "steps": ema.optimization_step, "last_decay": ema.cur_decay_value}
    accelerator.wait_for_everyone()
    if output_dir is not None and accelerator.is_main_process:
        save_latte(pipe, output_dir, names, source, config, stats,
                   learned if config.learn_class_embeddings else None)
    accelerator.wait_for_everyone()
    return stats


def save_latte(pipe, output_dir: str | os.PathLike, class_names: list[str], source: str,
               config: LatteFinetuneConfig, stats: dict, class_embeds: torch.Tensor | None = None,
               repo_id: str = "<org>/<repo>") -> Path:
    """`save_pretrained` + `hf_vdd_latte.json` + optional class embeddings + a model card (atomic)."""
    from huggingface_hub import ModelCard, ModelCardData
    from safetensors.torch import save_file

    output_dir = Path(output_dir)
    with atomic_folder(output_dir, marker="hf_vdd_latte.json") as tmp:
        pipe.save_pretrained(str(tmp))
        facts = {"source": source, "class_names": list(class_names), "config": asdict(config), "stats": stats,
                 "num_frames": pipe.transformer.config.video_length,
                 "frame_size": pipe.transformer.config.sample_size * pipe.vae_scale_factor,
                 "transformer_class": type(pipe.transformer).__name__}
        (tmp / "hf_vdd_latte.json").write_text(json.dumps(facts, indent=2, default=str))
        (tmp / "class_names.json").write_text(json.dumps(list(class_names)))
        if class_embeds is not None:
            save_file({"embeds": class_embeds.contiguous()}, str(tmp / CLASS_EMBEDS_FILE))
        data = ModelCardData(library_name="diffusers", pipeline_tag="text-to-video",
                             tags=["hf_vdd", "latte", "dataset-distillation", "text-to-video"])
        embeds_note = (f" (plus learned per-class prompt embeddings, `{CLASS_EMBEDS_FILE}`)"
                       if class_embeds is not None else "")
        notes = (" The transformer is hf_vdd's `AdaLNLatteTransformer3DModel` (`--class_conditioning adaln`: the "
                 "pooled prompt states are also added to the timestep embedding of every block's adaLN, as in "
                 "Latte's class-conditional models); loading it needs hf_vdd installed."
                 if isinstance(pipe.transformer, AdaLNLatteTransformer3DModel) else "")
        notes += (" The weights are an exponential moving average of training's (decay up to "
                  f"{config.ema_decay}; the last weights are in the training checkpoints)."
                  if config.ema_decay else "")
        t, size, example = facts["num_frames"], facts["frame_size"], config.prompt_template.format(class_names[0])
        text = (f"---\n{data.to_yaml()}\n---\n\n# Latte fine-tuned on {source}\n\n"
                f"Class-conditioned by the prompt `{config.prompt_template}` over {len(class_names)} classes"
                f"{embeds_note}; {t} frames of {size}×{size}.{notes}\n\n"
                f"```python\nfrom diffusers import LattePipeline\n"
                f"pipe = LattePipeline.from_pretrained(\"{repo_id}\")\nvideo = pipe(\"{example}\", video_length={t}, "
                f"height={size}, width={size}, output_type=\"pt\").frames\n```\n\n"
                f"Made with `recipes/finetune_latte.py` of hf_vdd; generation pools and selection: "
                f"`recipes/diffusion_select.py`.\n\n## Training\n\n```json\n"
                f"{json.dumps({'config': asdict(config), 'stats': stats}, indent=2, default=str)}\n```\n")
        ModelCard(text).save(tmp / "README.md")
    return output_dir
