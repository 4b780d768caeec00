"""Latte fine-tuning options: `--class_conditioning adaln` (the prompt also reaches every block through adaLN) and
`--prediction_type v_prediction`, `--ema_decay` and `--vae_decoder_steps`."""

import pytest
import torch

from hf_vdd import load_video_dataset
from hf_vdd.diffusion import LatteFinetuneConfig, finetune_latte, generate_pool, load_latte, load_pool
from hf_vdd.diffusion.latte_adaln import AdaLNLatteTransformer3DModel
from hf_vdd.diffusion.pool import load_class_embeddings
from tests.diffusion.helpers import CLASSES, small_pool_config


def _out(transformer, x, t, states):
    with torch.no_grad():
        return transformer(x, timestep=t, encoder_hidden_states=states, return_dict=False)[0]


def test_adaln_latte_starts_as_latte_conditions_every_block_and_round_trips(latte_dir, tmp_path):
    pipe = load_latte(latte_dir)
    plain = pipe.transformer.eval()
    model = AdaLNLatteTransformer3DModel.from_latte(plain).eval()
    torch.manual_seed(0)
    x, t, states = torch.randn(2, 4, 8, 16, 16), torch.tensor([10, 700]), torch.randn(2, 120, 32)
    torch.testing.assert_close(_out(model, x, t, states), _out(plain, x, t, states), rtol=0, atol=0)
    torch.nn.init.normal_(model.prompt_adaln[-1].weight, std=0.1)  # as if trained
    # without cross-attention (temporal attention only) the prompt still changes the output: it reaches adaLN
    other = states.roll(1, 0)
    for blocks in (plain, model):
        for block in blocks.transformer_blocks:
            block.attn2.forward = lambda hidden, encoder_hidden_states=None, **kw: torch.zeros_like(hidden)
    assert torch.equal(_out(plain, x, t, states), _out(plain, x, t, other))
    assert not torch.allclose(_out(model, x, t, states), _out(model, x, t, other))
    pipe.transformer = AdaLNLatteTransformer3DModel.from_latte(load_latte(latte_dir).transformer)
    torch.nn.init.normal_(pipe.transformer.prompt_adaln[-1].weight, std=0.1)
    pipe.save_pretrained(str(tmp_path / "adaln"))
    loaded = load_latte(tmp_path / "adaln")  # LattePipeline.from_pretrained finds the subclass
    assert type(loaded.transformer) is AdaLNLatteTransformer3DModel
    torch.testing.assert_close(_out(loaded.transformer, x, t, states), _out(pipe.transformer.eval(), x, t, states))
    generate_pool(loaded, CLASSES, tmp_path / "pool", small_pool_config(videos_per_class=1, shard_size=1,
                                                                        guidance_scale=2.0), show_progress=False)
    assert load_pool(tmp_path / "pool").videos.shape == (3, 8, 3, 32, 32)


def test_finetune_with_adaln_trains_the_prompt_path_saves_and_resumes(tiny_toy, tmp_path):
    from hf_vdd.diffusion import tiny_latte_pipeline

    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    out = tmp_path / "latte"
    cfg = LatteFinetuneConfig(steps=6, batch_size=4, lr=1e-3, learn_class_embeddings=True, checkpointing_steps=3,
                              class_conditioning="adaln")
    finetune_latte(pipe, train, cfg, output_dir=out, source="tiny-toy", show_progress=False)
    assert isinstance(pipe.transformer, AdaLNLatteTransformer3DModel)
    assert pipe.transformer.prompt_adaln[-1].weight.abs().sum() > 0  # started at zero, trained
    loaded = load_latte(out)
    assert isinstance(loaded.transformer, AdaLNLatteTransformer3DModel)
    assert "AdaLNLatteTransformer3DModel" in (out / "README.md").read_text()
    names, embeds = load_class_embeddings(out)
    x, t = torch.randn(2, 4, 8, 16, 16), torch.tensor([500, 500])
    torch.testing.assert_close(_out(loaded.transformer, x, t, embeds[:2]), _out(pipe.transformer.eval(), x, t,
                                                                               embeds[:2]))
    resumed = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)  # a plain Latte: converted first
    stats = finetune_latte(resumed, train, LatteFinetuneConfig(**(cfg.__dict__ | {
        "steps": 7, "resume_from_checkpoint": "latest"})), output_dir=out, source="tiny-toy", show_progress=False)
    assert stats["resumed_from"] == 6 and isinstance(resumed.transformer, AdaLNLatteTransformer3DModel)
    with pytest.raises(ValueError, match=r"checkpoint-6 belongs to another run.*class_conditioning"):
        finetune_latte(tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32), train,
                       LatteFinetuneConfig(**(cfg.__dict__ | {"steps": 8, "resume_from_checkpoint": "latest",
                                                              "class_conditioning": "cross_attention"})),
                       output_dir=out, source="tiny-toy", show_progress=False)
    with pytest.raises(ValueError, match=r"class_conditioning must be one of \['cross_attention', 'adaln'\]"):
        LatteFinetuneConfig(class_conditioning="film")


def test_v_prediction_trains_on_the_velocity_and_saves_a_scheduler_that_samples_it(tiny_toy, tmp_path, monkeypatch):
    from diffusers import DDIMScheduler

    from hf_vdd.diffusion import tiny_latte_pipeline

    noised, predicted = [], []
    add_noise = DDIMScheduler.add_noise
    monkeypatch.setattr(DDIMScheduler, "add_noise", lambda self, z, noise, t: noised.append(
        (z, noise, self.alphas_cumprod[t])) or add_noise(self, z, noise, t))
    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    pipe.transformer.register_forward_hook(lambda m, args, out: predicted.append(out[0][:, :4].detach()))
    stats = finetune_latte(pipe, train, LatteFinetuneConfig(steps=1, batch_size=4, lr=0.0,
                                                            prediction_type="v_prediction"),
                           output_dir=tmp_path / "latte", show_progress=False)
    (z, noise, a), pred = noised[0], predicted[0]
    a = a.reshape(-1, 1, 1, 1, 1)
    velocity = a.sqrt() * noise - (1 - a).sqrt() * z
    assert stats["loss_first"][0] == pytest.approx(float(((pred - velocity) ** 2).mean()), rel=1e-5)
    assert stats["loss_first"][0] != pytest.approx(float(((pred - noise) ** 2).mean()), rel=1e-2)
    loaded = load_latte(tmp_path / "latte")
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    generate_pool(loaded, train.class_names, tmp_path / "pool", small_pool_config(
        videos_per_class=1, shard_size=1, num_inference_steps=2), show_progress=False)
    assert not loaded.scheduler.config.rescale_betas_zero_snr  # Latte's linear schedule unless asked
    with pytest.raises(ValueError, match=r"prediction_type must be one of \['epsilon', 'v_prediction'\]"):
        LatteFinetuneConfig(prediction_type="sample")


def test_zero_terminal_snr_trains_the_last_step_on_pure_noise_and_samples_from_it(tiny_toy, tmp_path, monkeypatch):
    from diffusers import DDIMScheduler

    from hf_vdd.diffusion import tiny_latte_pipeline

    noised = []
    add_noise = DDIMScheduler.add_noise
    monkeypatch.setattr(DDIMScheduler, "add_noise", lambda self, z, noise, t: noised.append(
        (t, self.alphas_cumprod[t])) or add_noise(self, z, noise, t))
    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    linear = pipe.scheduler.alphas_cumprod.clone()
    stats = finetune_latte(pipe, train, LatteFinetuneConfig(steps=3, batch_size=4, lr=1e-3, zero_terminal_snr=True,
                                                            prediction_type="v_prediction"),
                           output_dir=tmp_path / "latte", show_progress=False)
    assert all(torch.isfinite(torch.tensor(stats["loss_first"])))
    loaded = load_latte(tmp_path / "latte")
    sched = loaded.scheduler
    assert sched.config.rescale_betas_zero_snr and sched.config.timestep_spacing == "trailing"
    assert float(sched.alphas_cumprod[-1]) == 0.0 and float(linear[-1]) > 0  # the last step holds no clip
    for t, a in noised:  # training noised with the schedule the saved pipeline samples with
        torch.testing.assert_close(a, sched.alphas_cumprod[t])
    sched.set_timesteps(4)
    assert int(sched.timesteps[0]) == 999  # sampling starts where training saw pure noise
    generate_pool(loaded, train.class_names, tmp_path / "pool", small_pool_config(
        videos_per_class=1, shard_size=1, num_inference_steps=2), show_progress=False)
    assert load_pool(tmp_path / "pool").videos.shape[0] == len(train.class_names)
    with pytest.raises(ValueError, match=r"zero_terminal_snr needs prediction_type 'v_prediction'"):
        LatteFinetuneConfig(zero_terminal_snr=True)


def test_ema_saves_the_average_of_the_trained_weights_and_resumes_it(tiny_toy, tmp_path, monkeypatch):
    from hf_vdd.diffusion import tiny_latte_pipeline

    trained = []  # every parameter (transformer, then the class embeddings) after each optimiser step
    adamw_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (adamw_step(self, *a, **k), trained.append(
        [p.detach().clone() for group in self.param_groups for p in group["params"]]))[0])
    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    out = tmp_path / "latte"
    cfg = LatteFinetuneConfig(steps=4, batch_size=4, lr=1e-2, learn_class_embeddings=True, ema_decay=0.9,
                              checkpointing_steps=2)
    stats = finetune_latte(tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32), train, cfg,
                           output_dir=out, source="tiny-toy", show_progress=False)
    assert len(trained) == 4 and stats["ema"]["steps"] == 4
    average = trained[0]  # diffusers' EMAModel: decay 0 at the first step, then min(ema_decay, (1+s)/(10+s))
    for s, weights in enumerate(trained[1:], start=1):
        d = min(0.9, (1 + s) / (10 + s))
        average = [d * a + (1 - d) * w for a, w in zip(average, weights)]
    loaded = load_latte(out)
    saved = [p.detach() for p in loaded.transformer.parameters()] + [load_class_embeddings(out)[1]]
    assert len(saved) == len(average)
    for got, want in zip(saved, average):
        torch.testing.assert_close(got, want)
    assert not all(torch.equal(got, last) for got, last in zip(saved, trained[-1]))  # not the last weights
    assert "exponential moving average" in (out / "README.md").read_text()
    resumed = finetune_latte(tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32), train,
                             LatteFinetuneConfig(**(cfg.__dict__ | {"steps": 5, "resume_from_checkpoint": "latest"})),
                             output_dir=out, source="tiny-toy", show_progress=False)
    assert resumed["resumed_from"] == 4 and resumed["ema"]["steps"] == 5  # the average went on, not restarted
    with pytest.raises(ValueError, match=r"checkpoint-4 belongs to another run.*ema_decay"):
        finetune_latte(tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32), train,
                       LatteFinetuneConfig(**(cfg.__dict__ | {"steps": 6, "resume_from_checkpoint": "latest",
                                                              "ema_decay": 0.0})),
                       output_dir=out, source="tiny-toy", show_progress=False)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        LatteFinetuneConfig(ema_decay=1.0)


def test_decoder_stage_trains_the_decoder_alone_and_keeps_the_latents(tiny_toy):
    from hf_vdd.diffusion import tiny_latte_pipeline
    from hf_vdd.diffusion.latte_train import video_latents
    from hf_vdd.diffusion.quality import _latents_to_frames

    train = load_video_dataset(tiny_toy, "train", num_frames=8, frame_size=32).preload(show_progress=False)
    pipe = tiny_latte_pipeline(train.class_names, num_frames=8, frame_size=32)
    x = train.stack(range(len(train)))

    def latents_and_error():
        with torch.no_grad():
            z = video_latents(pipe.vae, x, mean=True)
            return z, float(((_latents_to_frames(pipe.vae, z) - x) ** 2).mean())

    finetune_latte(pipe, train, LatteFinetuneConfig(steps=1, vae_steps=30, batch_size=4), show_progress=False)
    before, scale = {k: v.clone() for k, v in pipe.vae.state_dict().items()}, pipe.vae.config.scaling_factor
    z, error = latents_and_error()
    stats = finetune_latte(pipe, train, LatteFinetuneConfig(steps=1, vae_decoder_steps=30, batch_size=4),
                           show_progress=False)
    after = pipe.vae.state_dict()
    frozen = [k for k in before if not k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # the encoder did not move
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert pipe.vae.config.scaling_factor == scale  # the transformer's latents keep their scale
    z_after, error_after = latents_and_error()
    assert torch.equal(z_after, z)
    assert error_after < 0.8 * error  # the decoder learned to reconstruct better from the same latents
    assert stats["vae_decoder_loss"] and stats["vae_loss"] == []
    with pytest.raises(ValueError, match="vae_decoder_steps must be >= 0, got -1"):
        LatteFinetuneConfig(vae_decoder_steps=-1)
