"""Latte generation pool: class-conditioned synthetic videos, sharded over processes, seeded, resumable.

A pool is a folder::

    <pool_dir>/
    ├── pool.json                          # manifest: dataset, class names, generator, N_c, T, size, shard size, ...
    └── data/c0003-s0001.parquet           # one shard = `shard_size` videos of one class (written atomically)

Rows: `video` `Array4D((T, C, H, W), uint8)`, `label` `ClassLabel`, `index` (within the class), `seed`, `prompt`.
Video `index` of class `c` is generated from `torch.Generator().manual_seed(sample_seed(seed, c, index))`, and a shard
is always generated as one batch, so the pool is bit-identical for any number of processes. The pool is complete
when every shard listed by the manifest exists; `generate_pool` on an incomplete pool makes only the missing shards.

Class conditioning, through `prompt_embeds` (diffusers' Latte is text-conditioned only) and as `finetune_latte` trains:
the prompts `prompt_template.format(class_name)` ("a video of {}") encoded together, or the per-class embeddings of
`finetune_latte(..., learn_class_embeddings=True)` (`class_prompt_embeds.safetensors`); guidance's unconditional side
is `unconditional_states`. Pools of `conditioning` 1 (zero-padded, prompted by string) are not resumed today.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from accelerate.utils import gather_object
from datasets import Array4D, ClassLabel, Dataset, Features, Value, concatenate_datasets

from ..config_fields import check_fields
from ..data.sources import shareable
from ..utils import atomic_file, get_logger, precision_key, progress, runtime

logger = get_logger(__name__)

DEFAULT_PROMPT_TEMPLATE = "a video of {}"
# The diffusion paper states no guidance scale: 7.5 is `LattePipeline.__call__`'s, read by PoolConfig and the recipes.
DEFAULT_GUIDANCE_SCALE = 7.5
CLASS_EMBEDS_FILE = "class_prompt_embeds.safetensors"
POOL_MANIFEST = "pool.json"


# ---- pipelines ----------------------------------------------------------------------------------------------
def _word_tokenizer(words: list[str]):
    """A lower-case WordLevel tokenizer (`tokenizers`) over `words`, wrapped as `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>"]
    pre = pre_tokenizers.Whitespace()
    vocab_words = sorted({w for text in words for w, _ in pre.pre_tokenize_str(text.lower())})
    vocab = {w: i for i, w in enumerate(special + vocab_words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=120)


def tiny_latte_pipeline(class_names: list[str], num_frames: int = 8, frame_size: int = 32, seed: int = 0,
                        prompt_template: str = DEFAULT_PROMPT_TEMPLATE, width: int = 64, layers: int = 2):
    """A small, randomly initialised `LattePipeline` built from configs (CPU-trainable; for tests and the default).

    VAE: 2 blocks (scale factor 2, 4 latent channels); transformer: `layers` spatial+temporal blocks of width
    `width`, patch 2, `video_length = num_frames`; text encoder: a 1-layer T5 encoder (d_model 32) with a word-level
    tokenizer over the class prompts; DDIM scheduler. `frame_size` must be divisible by 8.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, LattePipeline, LatteTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    if frame_size % 8:
        raise ValueError(f"Latte needs a frame size divisible by 8, got {frame_size}.")
    torch.manual_seed(seed)
    tokenizer = _word_tokenizer([prompt_template.format(c) for c in class_names] + [""])
    d_model = 32
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=64, num_layers=1,
                                           num_heads=4, pad_token_id=0, eos_token_id=1)).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1,
                        latent_channels=4, norm_num_groups=8, sample_size=frame_size, scaling_factor=1.0,
                        mid_block_add_attention=False)
    heads = max(1, width // 16)
    transformer = LatteTransformer3DModel(num_attention_heads=heads, attention_head_dim=width // heads,
                                          in_channels=4, out_channels=8, num_layers=layers,
                                          sample_size=frame_size // 2,
                                          patch_size=2, cross_attention_dim=width, caption_channels=d_model,
                                          norm_type="ada_norm_single", num_embeds_ada_norm=1000,
                                          video_length=num_frames, activation_fn="gelu-approximate")
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    return LattePipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                         scheduler=scheduler)


def load_latte(id_or_dir: str | os.PathLike):
    """`LattePipeline.from_pretrained(id_or_dir)` with a clear error naming the id and the local-folder form."""
    from diffusers import LattePipeline

    try:
        pipe = LattePipeline.from_pretrained(str(id_or_dir))
    except Exception as err:  # noqa: BLE001 - OSError, ValueError, HTTP errors: one message for the user
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"Could not load the Latte generator '{id_or_dir}': {reason}. Pass a local folder written by "
                         f"LattePipeline.save_pretrained (e.g. the output of recipes/finetune_latte.py), or a Hub id "
                         f"on a connected machine.") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_class_embeddings(folder: str | os.PathLike | None) -> tuple[list[str], torch.Tensor] | None:
    """Learned per-class prompt embeddings `(C, L, D)` saved next to a pipeline, with their class names."""
    from safetensors.torch import load_file

    path = Path(folder) / CLASS_EMBEDS_FILE if folder else None
    if path is None or not path.is_file():
        return None
    names = json.loads((path.parent / "class_names.json").read_text())
    return names, load_file(str(path))["embeds"]


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    """`(N, L, D)` text-encoder states of `prompts` (what Latte's cross-attention sees), on its device."""
    emb, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, device=pipe.text_encoder.device,
                                clean_caption=False)
    return emb


def unconditional_states(pipe, n: int, length: int) -> torch.Tensor:
    """`(n, length, D)`: the empty prompt's states as `finetune_latte` trains classifier-free guidance on them and
    the pool samples with them: the "" prompt's tokens, the last one repeated to `length` positions."""
    empty = encode_prompts(pipe, [""])[:, :length]
    if empty.shape[1] < length:
        empty = torch.cat([empty, empty[:, -1:].expand(-1, length - empty.shape[1], -1)], dim=1)
    return empty.expand(n, -1, -1)


# ---- pool ---------------------------------------------------------------------------------------------------
@dataclass
class PoolConfig:
    """How the generation pool is made (paper: N_c = 100 per class)."""

    videos_per_class: int = field(default=100, metadata={"help": "N_c: generated videos per class (paper: 100)."})
    num_frames: int = field(default=16, metadata={"help": "Frames per generated video (= Latte's video_length)."})
    frame_size: int = field(default=256, metadata={"help": "Generated frame side (divisible by 8)."})
    num_inference_steps: int = field(default=50, metadata={"help": "Denoising steps."})
    guidance_scale: float = field(default=DEFAULT_GUIDANCE_SCALE, metadata={"help": "Classifier-free guidance (1 = "
                                  f"off; default {DEFAULT_GUIDANCE_SCALE}: LattePipeline's; the paper has none)."})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "Prompt per class name."})
    shard_size: int = field(default=10, metadata={"help": "Videos per shard (the unit of work and of resume)."})
    seed: int = field(default=0, metadata={"help": "Pool seed; sample seeds derive from (seed, class, index)."})


def check_generation_shape(frame_size: int, num_frames: int, generator: str | None = None) -> None:
    """Refuse a pool shape Latte cannot generate, before any work (`ValueError`, naming the flag to change).

    Latte needs `frame_size` divisible by 8 (`LattePipeline.check_inputs`) and by the VAE scale times the patch size
    (latents are cut into patches), and makes exactly `video_length` frames (its temporal position embedding). With
    `generator` (a pipeline folder or Hub id), its `transformer/` and `vae/` configs are read (not the weights)."""
    if frame_size <= 0 or frame_size % 8:
        raise ValueError(f"--pool_frame_size must be a positive multiple of 8 for Latte, got {frame_size}.")
    if num_frames <= 0:
        raise ValueError(f"--pool_num_frames must be >= 1, got {num_frames}.")
    if generator is None:
        return
    from diffusers import AutoencoderKL, LatteTransformer3DModel

    try:
        transformer = LatteTransformer3DModel.load_config(str(generator), subfolder="transformer")
        vae = AutoencoderKL.load_config(str(generator), subfolder="vae")
    except Exception as err:  # noqa: BLE001 - one message for the user, as load_latte
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"Could not read the Latte generator '{generator}' (transformer/ and vae/ configs): "
                         f"{reason}. Pass a local folder written by LattePipeline.save_pretrained, or a Hub id on a "
                         f"connected machine.") from err
    if transformer.get("video_length") != num_frames:
        raise ValueError(f"The generator '{generator}' makes {transformer.get('video_length')}-frame videos (its "
                         f"transformer's video_length) but the pool asks for {num_frames}; use --pool_num_frames "
                         f"{transformer.get('video_length')} (the student's frame count is --num_frames).")
    step = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1) * int(transformer.get("patch_size") or 1)
    if frame_size % step:
        raise ValueError(f"The generator '{generator}' needs a frame size divisible by {step} (VAE scale x patch "
                         f"size), got --pool_frame_size {frame_size}.")


def fit_videos(videos: torch.Tensor, num_frames: int, frame_size: int) -> torch.Tensor:
    """uint8 `(N, T, C, H, W)` → uint8 `(N, num_frames, C, frame_size, frame_size)`: frames resampled uniformly in
    time (`interleave_repeat`: repeats when growing, evenly spaced frames when shrinking), then resized (bilinear,
    antialiased when shrinking; square frames, so no crop). How a pool generated at `--pool_frame_size` /
    `--pool_num_frames` becomes the student's clips; a no-op at the same shape."""
    from ..data.decoding import interleave_repeat, resize_crop

    if videos.shape[1] == num_frames and videos.shape[-1] == frame_size:
        return videos
    out = []
    for v in interleave_repeat(videos, num_frames, dim=1):
        out.append((resize_crop(v.float(), frame_size)).round().clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


def sample_seed(seed: int, label: int, index: int) -> int:
    """The seed of video `index` of class `label` (independent of process count and shard size)."""
    return (int(seed) * 1_000_003 + int(label)) * 1_000_033 + int(index)


def pool_features(class_names: list[str], num_frames: int, frame_size: int) -> Features:
    return Features({"video": Array4D(shape=(num_frames, 3, frame_size, frame_size), dtype="uint8"),
                     "label": ClassLabel(names=list(class_names)), "index": Value("int32"), "seed": Value("int64"),
                     "prompt": Value("string")})


def _shards(num_classes: int, config: PoolConfig) -> list[tuple[int, int]]:
    per = -(-config.videos_per_class // config.shard_size)
    return [(c, s) for c in range(num_classes) for s in range(per)]


def _shard_file(pool_dir: Path, c: int, s: int) -> Path:
    return pool_dir / "data" / f"c{c:04d}-s{s:04d}.parquet"


def _check_manifest(pool_dir: Path, manifest: dict) -> None:
    """An existing pool must be for the same classes and generation settings."""
    old = json.loads((pool_dir / POOL_MANIFEST).read_text())
    if old["class_names"] != manifest["class_names"]:
        raise ValueError(f"The pool at {pool_dir} was generated for dataset '{old.get('dataset')}' with classes "
                         f"{old['class_names'][:6]}..., not for '{manifest['dataset']}' "
                         f"{manifest['class_names'][:6]}...; use another --pool_dir.")
    keys = ("videos_per_class", "num_frames", "frame_size", "num_inference_steps", "guidance_scale",
            "prompt_template", "shard_size", "seed")

    def settings(m: dict) -> dict:  # a pool from before mixed precision was recorded was generated in fp32
        return {k: m["config"].get(k) for k in keys} | {"generator": m.get("generator"), "conditioning": m.get(
            "conditioning", 1), "mixed_precision": m.get("mixed_precision", "no")}

    diff = {k: (a, b) for (k, a), b in zip(settings(old).items(), settings(manifest).values()) if a != b}
    if diff:
        raise ValueError(f"The pool at {pool_dir} was made with other settings {diff} (existing, requested); use "
                         f"another --pool_dir or the same settings.")


def pool_is_complete(pool_dir: str | os.PathLike) -> bool:
    pool_dir = Path(pool_dir)
    if not (pool_dir / POOL_MANIFEST).is_file():
        return False
    manifest = json.loads((pool_dir / POOL_MANIFEST).read_text())
    cfg = PoolConfig(**manifest["config"])
    return all(_shard_file(pool_dir, c, s).is_file() for c, s in _shards(len(manifest["class_names"]), cfg))


@torch.no_grad()
def _generate_shard(pipe, c: int, s: int, class_names: list[str], config: PoolConfig, class_states: torch.Tensor,
                    uncond: torch.Tensor | None, learned: bool) -> dict:
    """One shard of class `c`, conditioned by `class_states[c]` (and, for guidance, `uncond`) as `finetune_latte`
    trains; `mask_feature=False`: the states are final (the pipeline's masking of given states needs a negative)."""
    idx = list(range(s * config.shard_size, min((s + 1) * config.shard_size, config.videos_per_class)))
    seeds = [sample_seed(config.seed, c, i) for i in idx]
    gens = [torch.Generator().manual_seed(sd) for sd in seeds]
    prompt = config.prompt_template.format(class_names[c])
    emb = class_states[c:c + 1].expand(len(idx), -1, -1)
    neg = None if uncond is None else uncond.expand(len(idx), -1, -1)
    video = pipe(prompt_embeds=emb, negative_prompt_embeds=neg, negative_prompt=None, mask_feature=False,
                 num_inference_steps=config.num_inference_steps, guidance_scale=config.guidance_scale,
                 video_length=config.num_frames, height=config.frame_size, width=config.frame_size, generator=gens,
                 output_type="pt", clean_caption=False, decode_chunk_size=config.num_frames).frames
    video = (video.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()  # (n, T, C, H, W)
    return {"video": video.numpy(), "label": [c] * len(idx), "index": idx, "seed": seeds,
            "prompt": [f"<learned:{class_names[c]}>" if learned else prompt] * len(idx)}


def generate_pool(pipe, class_names: list[str], pool_dir: str | os.PathLike, config: PoolConfig,
                  dataset: str = "unknown", generator: str = "unknown", accelerator=None,
                  class_embeds: torch.Tensor | None = None, show_progress: bool = True) -> dict:
    """Generate (or complete) the pool at `pool_dir`; returns the manifest with throughput stats.

    Args:
        pipe: a `LattePipeline` (`video_length` = `config.num_frames`), or its folder / Hub id (`load_latte`).
        class_names: the source dataset's classes (label `c` is prompted with `config.prompt_template`).
        accelerator: shards are strided over `accelerator.num_processes`; each process writes its own shards.
        class_embeds: optional learned `(C, L, D)` prompt embeddings (see `load_class_embeddings`).
    """
    check_fields(config)  # counts >= 1, guidance >= 0, seed >= 0: before any generation
    check_generation_shape(config.frame_size, config.num_frames)
    pipe = load_latte(pipe) if isinstance(pipe, (str, os.PathLike)) else pipe  # (a str had no `.transformer`)
    video_length = pipe.transformer.config.video_length
    if video_length != config.num_frames:
        raise ValueError(f"The generator makes {video_length}-frame videos (transformer video_length) but "
                         f"the pool asks for {config.num_frames}; use --pool_num_frames {video_length}.")
    pool_dir = Path(pool_dir)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    is_main = accelerator is None or accelerator.is_main_process
    manifest = {"dataset": dataset, "generator": str(generator), "class_names": list(class_names),
                "config": asdict(config), "class_embeddings": class_embeds is not None, "conditioning": 2,
                "format": "hf_vdd generation pool v1"} | precision_key(accelerator)  # autocast: other pixels
    if (pool_dir / POOL_MANIFEST).is_file():
        _check_manifest(pool_dir, manifest)
    elif is_main:
        (pool_dir / "data").mkdir(parents=True, exist_ok=True)
        with atomic_file(pool_dir / POOL_MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    (pool_dir / "data").mkdir(parents=True, exist_ok=True)
    pipe.set_progress_bar_config(disable=True)
    device, autocast = runtime(accelerator)
    pipe.to(device)  # one model load per process; the CPU generators of the seeds keep videos device-independent
    class_states = (class_embeds.to(device) if class_embeds is not None else
                    encode_prompts(pipe, [config.prompt_template.format(c) for c in class_names]))
    uncond = unconditional_states(pipe, 1, class_states.shape[1]) if config.guidance_scale > 1 else None
    todo = [cs for cs in _shards(len(class_names), config) if not _shard_file(pool_dir, *cs).is_file()]
    if accelerator is not None:  # every process lists the missing shards before any of them writes one
        accelerator.wait_for_everyone()
    mine = todo[rank::world]
    feats = pool_features(class_names, config.num_frames, config.frame_size)
    start, made = time.perf_counter(), 0
    bar = progress(total=len(mine), desc=f"generate pool (process {rank})", unit="shard",
               disable=not (show_progress and (accelerator is None or accelerator.is_local_main_process)))
    for c, s in mine:
        with autocast():
            rows = _generate_shard(pipe, c, s, class_names, config, class_states, uncond, class_embeds is not None)
        target = _shard_file(pool_dir, c, s)
        with atomic_file(target) as tmp:
            pq.write_table(Dataset.from_dict(rows, features=feats).data.table, str(tmp))
        made += len(rows["label"])
        bar.update(1)
        bar.set_postfix(videos_per_s=f"{made / (time.perf_counter() - start):.2f}")
    bar.close()
    seconds = time.perf_counter() - start
    stats = {"videos": made, "seconds": seconds, "shards_skipped": len(_shards(len(class_names), config)) - len(todo)}
    stats_all = [stats]
    if accelerator is not None:
        stats_all = gather_object(stats_all)
        accelerator.wait_for_everyone()
    total = sum(st["videos"] for st in stats_all)
    wall = max(st["seconds"] for st in stats_all)
    manifest["generation"] = {"videos_generated": total, "wall_seconds": wall, "num_processes": world,
                              "videos_per_second": total / wall if wall > 0 and total else None,
                              "shards_skipped": stats_all[0]["shards_skipped"]}
    if total:
        logger.info(f"generated {total} videos in {wall:.1f} s ({total / wall:.2f} videos/s, {world} processes)")
    if not pool_is_complete(pool_dir):
        raise RuntimeError(f"Pool {pool_dir} is still incomplete after generation.")
    return manifest


@dataclass
class VideoPool:
    """A loaded generation pool: uint8 `videos` `(N, T, C, H, W)`, `labels` `(N,)`, per-row `seeds`, `prompts`."""

    videos: torch.Tensor
    labels: np.ndarray
    class_names: list[str]
    seeds: np.ndarray
    prompts: list[str]
    manifest: dict
    path: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def name(self) -> str:  # the source as cards name it (a pool records the folder it was generated for)
        return shareable(self.manifest.get("dataset", "unknown"))

    def __len__(self) -> int:
        return len(self.labels)

    def indices_per_class(self) -> dict[int, np.ndarray]:
        return {c: np.flatnonzero(self.labels == c) for c in range(self.num_classes)}

    def float_videos(self, idx=None) -> torch.Tensor:
        """`(n, T, C, H, W)` float pixels in [0, 1]."""
        v = self.videos if idx is None else self.videos[torch.as_tensor(np.asarray(idx))]
        return v.float() / 255.0


def load_pool(pool_dir: str | os.PathLike, class_names: list[str] | None = None) -> VideoPool:
    """Read a complete pool (rows ordered by class, then index). `class_names` guards against another dataset."""
    pool_dir = Path(pool_dir)
    if not (pool_dir / POOL_MANIFEST).is_file():
        raise FileNotFoundError(f"{pool_dir} is not a generation pool ({POOL_MANIFEST} missing).")
    manifest = json.loads((pool_dir / POOL_MANIFEST).read_text())
    if class_names is not None and list(class_names) != manifest["class_names"]:
        raise ValueError(f"The pool at {pool_dir} was generated for '{manifest.get('dataset')}' with classes "
                         f"{manifest['class_names'][:6]}..., which do not match the dataset's {list(class_names)[:6]}"
                         f"...; use another --pool_dir.")
    if not pool_is_complete(pool_dir):
        raise ValueError(f"The pool at {pool_dir} is incomplete; run generation again to finish it.")
    cfg = PoolConfig(**manifest["config"])
    files = [_shard_file(pool_dir, c, s) for c, s in _shards(len(manifest["class_names"]), cfg)]
    ds = concatenate_datasets([Dataset(pq.read_table(str(f))) for f in files])
    table = ds.with_format(None)
    return VideoPool(videos=ds.with_format("torch", columns=["video"], dtype=torch.uint8)[:]["video"],
                     labels=np.asarray(table["label"]), class_names=manifest["class_names"],
                     seeds=np.asarray(table["seed"]), prompts=list(table["prompt"]), manifest=manifest,
                     path=str(pool_dir))
