"""Generate (or reuse) a Latte pool, select VPC videos per class, save: what `recipes/diffusion_select.py` runs.

Without `--generator`, a tiny Latte is built from a config and fine-tuned on the dataset's train split
(`finetune_latte`, the code path of `recipes/finetune_latte.py`); without `--encoder`, a tiny VideoMAE classifier is
trained on it (for TAC-DT embeddings and MAE-Score). Both are cached under `$HF_VDD_CACHE` (default
`~/.cache/hf_vdd`), keyed by the data and their settings, so the second run reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate.logging import get_logger

from ..utils import atomic_folder
from .latte_train import LatteFinetuneConfig, finetune_latte
from .pool import (
    POOL_MANIFEST,
    PoolConfig,
    generate_pool,
    load_class_embeddings,
    load_latte,
    load_pool,
    pool_is_complete,
)

logger = get_logger(__name__)
SELECTORS = {"tacdt": "tacdt", "vstunet": "vstunet", "maescore": "maescore", "random": "pool-random",
             "full": "pool-random"}


@dataclass
class DiffusionSelectArgs:
    generator: str | None = field(default=None, metadata={
        "help": "LattePipeline folder or Hub id; default: a tiny Latte fine-tuned on --dataset (cached)."})
    encoder: str | None = field(default=None, metadata={
        "help": "VideoMAE folder or Hub id (TAC-DT, MAE-Score); default: a tiny VideoMAE trained on --dataset."})
    selector: str = field(default="tacdt", metadata={"help": "tacdt | vstunet | maescore | random | full (VPC=N_c)."})
    vpc: int = field(default=5, metadata={"help": "Videos per class selected."})
    videos_per_class_pool: int | None = field(default=None, metadata={
        "help": "N_c generated per class (paper: 100; default 100, or 20 for toy-actions, the CPU default)."})
    pool_dir: str | None = field(default=None, metadata={
        "help": "Pool folder: written there, or reused if complete (default outputs/<dataset>-pool-...)."})
    seed: int = field(default=0, metadata={"help": "Seed (pool, selection)."})
    num_inference_steps: int | None = field(default=None, metadata={"help": "Denoising steps (50; toy: 20)."})
    guidance_scale: float = field(default=2.0, metadata={"help": "Classifier-free guidance scale (1 = off)."})
    prompt_template: str = field(default="a video of {}", metadata={"help": "Prompt per class name."})
    shard_size: int = field(default=10, metadata={"help": "Videos per pool shard (unit of work and resume)."})
    vst_epochs: int = field(default=50, metadata={"help": "VST-UNet training epochs."})
    save_selector: bool = field(default=True, metadata={"help": "Save the VST-UNet next to the output."})
    default_finetune_steps: int = field(default=500, metadata={"help": "Default generator: Latte steps."})
    default_vae_steps: int = field(default=300, metadata={"help": "Default generator: VAE steps."})
    default_encoder_steps: int = field(default=300, metadata={"help": "Default encoder: VideoMAE steps."})

    def __post_init__(self):
        if self.selector not in SELECTORS:
            raise ValueError(f"--selector must be one of {sorted(SELECTORS)}, got '{self.selector}'.")
        if self.vpc <= 0:
            raise ValueError(f"--vpc must be >= 1, got {self.vpc}.")


def cache_root() -> Path:
    return Path(os.environ.get("HF_VDD_CACHE", Path.home() / ".cache" / "hf_vdd"))


def _key(facts: dict) -> str:
    return hashlib.sha1(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _is_toy(dataset: str) -> bool:
    return str(dataset) in ("toy-actions", "toy_actions")


def _cache_folder(kind: str, train_set, config) -> Path:
    """`<cache>/<kind>/tiny-<kind>-<hash>`: keyed by the data and the training config that built the model."""
    facts = {"data": train_set.name, "classes": train_set.class_names, "n": len(train_set),
             "t": train_set.num_frames, "size": train_set.frame_size, "config": asdict(config)}
    return cache_root() / kind / f"tiny-{kind}-{_key(facts)}"


def default_generator(train_set, args: DiffusionSelectArgs, accelerator) -> str:
    """A tiny Latte fine-tuned on `train_set` (cached); returns its folder."""
    from .pool import tiny_latte_pipeline

    cfg = LatteFinetuneConfig(steps=args.default_finetune_steps, vae_steps=args.default_vae_steps, batch_size=8,
                              lr=1e-3, prompt_template=args.prompt_template, seed=0)
    folder = _cache_folder("latte", train_set, cfg)
    if not (folder / "model_index.json").is_file():
        logger.info(f"building the default generator: a tiny Latte fine-tuned on {train_set.name} -> {folder}")
        pipe = tiny_latte_pipeline(train_set.class_names, train_set.num_frames, train_set.frame_size, seed=0,
                                   prompt_template=args.prompt_template)
        finetune_latte(pipe, train_set.preload(show_progress=False), cfg, output_dir=folder, accelerator=accelerator,
                       source=train_set.name.split(":")[0])
    return str(folder)


def default_encoder(train_set, args: DiffusionSelectArgs, accelerator) -> str:
    """A tiny VideoMAE classifier trained on `train_set` (cached); returns its folder."""
    from ..models import VideoMAEStudent
    from ..training import TrainConfig, train_student

    config = TrainConfig(student="videomae", steps=args.default_encoder_steps, batch_size=16, lr=0.05, runs=1, seed=0,
                         show_progress=accelerator.is_local_main_process)
    folder = _cache_folder("videomae", train_set, config)
    if not (folder / "config.json").is_file():
        logger.info(f"building the default encoder: a tiny VideoMAE classifier trained on {train_set.name} -> "
                    f"{folder}")
        torch.manual_seed(0)
        names = train_set.class_names
        student = VideoMAEStudent.from_config(len(names), train_set.num_frames, train_set.frame_size,
                                              id2label=dict(enumerate(names)),
                                              label2id={n: i for i, n in enumerate(names)})
        student = train_student(student, train_set.with_options(train=True).preload(show_progress=False), config,
                                0, accelerator)
        if accelerator.is_main_process:
            with atomic_folder(folder, marker="config.json") as tmp:
                student.model.save_pretrained(str(tmp))
        accelerator.wait_for_everyone()
    return str(folder)


def pool_config(data, args: DiffusionSelectArgs) -> PoolConfig:
    from ..data.loading import default_video_shape

    size, frames = default_video_shape(data.dataset, data.frame_size, data.num_frames)
    toy = _is_toy(data.dataset)
    return PoolConfig(videos_per_class=args.videos_per_class_pool or (20 if toy else 100), num_frames=frames,
                      frame_size=size, num_inference_steps=args.num_inference_steps or (20 if toy else 50),
                      guidance_scale=args.guidance_scale, prompt_template=args.prompt_template,
                      shard_size=args.shard_size, seed=args.seed)


def check_pool_dir(pool_dir: str | None, class_names: list[str]) -> None:
    """Before any work: `--pool_dir` is absent, empty, or a pool (complete or not) over the same classes."""
    from ..utils import HfVddError

    if pool_dir is None or not Path(pool_dir).exists():
        return
    folder = Path(pool_dir)
    if not folder.is_dir():
        raise HfVddError(f"--pool_dir {pool_dir} is a file; pass a folder.")
    if not (folder / POOL_MANIFEST).is_file():
        if any(folder.iterdir()):
            raise HfVddError(f"--pool_dir {pool_dir} holds files but no {POOL_MANIFEST}: it is not a generation pool, "
                             f"and hf_vdd does not write into folders it did not make. Pass a new or empty folder.")
        return
    names = json.loads((folder / POOL_MANIFEST).read_text()).get("class_names")
    if names != list(class_names):
        load_pool(folder, list(class_names))  # raises the detailed class-list error


def build_pool(data, args: DiffusionSelectArgs, accelerator, train_set=None):
    """Reuse the pool at `args.pool_dir` when complete, else generate (only) its missing shards → a VideoPool."""
    from ..hub import save_frames_grid

    cfg = pool_config(data, args)
    train_set = train_set or data.load("train")
    names = train_set.class_names
    pool_dir = Path(args.pool_dir or f"outputs/{Path(str(data.dataset)).name}-pool-{cfg.num_frames}x"
                    f"{cfg.frame_size}-nc{cfg.videos_per_class}-seed{cfg.seed}")
    stats = {"reused": True}
    if pool_is_complete(pool_dir):
        manifest = json.loads((pool_dir / "pool.json").read_text())
        if manifest["class_names"] != names:  # before anything else: a pool of another dataset
            load_pool(pool_dir, names)
        if manifest["config"]["videos_per_class"] < args.vpc:
            raise ValueError(f"--vpc {args.vpc} is larger than the pool's {manifest['config']['videos_per_class']} "
                             f"videos per class ({pool_dir}); lower --vpc or use a larger pool.")
    else:
        if cfg.videos_per_class < args.vpc:
            raise ValueError(f"--vpc {args.vpc} is larger than the pool's {cfg.videos_per_class} videos per class; "
                             f"lower --vpc or raise --videos_per_class_pool.")
        generator = args.generator or default_generator(train_set, args, accelerator)
        pipe = load_latte(generator)
        learned = load_class_embeddings(generator) if Path(generator).is_dir() else None
        embeds = None
        if learned is not None and learned[0] == names:
            embeds = learned[1]
        start = time.perf_counter()
        manifest = generate_pool(pipe, names, pool_dir, cfg, dataset=str(data.dataset), generator=generator,
                                 accelerator=accelerator, class_embeds=embeds,
                                 show_progress=accelerator.is_local_main_process)
        stats = manifest["generation"] | {"reused": False, "seconds_total": time.perf_counter() - start}
        logger.info(f"pool {pool_dir}: generated {stats['videos_generated']} videos in {stats['wall_seconds']:.1f} s "
                    f"({stats['videos_per_second'] or 0:.2f} videos/s, {accelerator.num_processes} process(es); "
                    f"{stats['shards_skipped']} shards reused)")
    pool = load_pool(pool_dir, names)
    if accelerator.is_main_process and not (pool_dir / "preview.png").is_file():
        first = [int(idx[0]) for idx in pool.indices_per_class().values()]
        save_frames_grid(pool.videos[first], pool.labels[first], names, pool_dir / "preview.png",
                         title=f"generated pool · {pool.name}")
    pool.manifest["generation_stats"] = stats
    return pool


def make_selector(args: DiffusionSelectArgs, pool, encoder: str | None):
    from ..distillers.base import get_distiller

    method = SELECTORS[args.selector]
    vpc = int(min(torch.bincount(torch.as_tensor(pool.labels)))) if args.selector == "full" else args.vpc
    kwargs = {"ipc": vpc, "seed": args.seed}
    if method in ("tacdt", "maescore"):
        kwargs["encoder"] = encoder
    if method == "vstunet":
        kwargs["epochs"] = args.vst_epochs
    return get_distiller(method)(**kwargs)


def run_diffusion_select(data, args: DiffusionSelectArgs, accelerator):
    """Pool → selection → `DistillationOutput` (not yet saved; `hf_vdd.cli.finish` evaluates/saves/pushes)."""
    train = data.load("train")
    pool = build_pool(data, args, accelerator, train)
    encoder = args.encoder
    if SELECTORS[args.selector] in ("tacdt", "maescore") and encoder is None:
        encoder = default_encoder(train, args, accelerator)
    selector = make_selector(args, pool, encoder)
    output = selector(pool, accelerator=accelerator)
    if args.selector == "full":
        output.method = "full-pool"
    output.stats["generation"] = pool.manifest["generation_stats"]
    output.config |= {"generator": pool.manifest.get("generator"), "encoder": encoder, "selector": args.selector}
    return output, selector
