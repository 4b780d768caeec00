"""Generate (or reuse) a Latte pool, select VPC videos per class, save: what `recipes/diffusion_select.py` runs.

The pool is generated at `--pool_frame_size` x `--pool_num_frames` (default: the student's `--frame_size` /
`--num_frames`); selectors see it at that shape, and the selected videos are resized to the student's shape
(`fit_videos`) in `run_diffusion_select` / `student_shaped`, so the saved distilled set and every evaluation are at
the student's shape. The paper repeats selection and classification 5 times (`--selection_runs 5`): selection `r`
uses seed `seed + r`; the saved (and pushed) distilled set is the first one (seed `seed`).

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..config_fields import check_fields
from ..utils import atomic_folder, get_logger, precision_key
from .latte_train import PREDICTIONS, LatteFinetuneConfig, finetune_latte
from .pool import (
    DEFAULT_GUIDANCE_SCALE,
    POOL_MANIFEST,
    PoolConfig,
    check_generation_shape,
    fit_videos,
    generate_pool,
    load_class_embeddings,
    load_latte,
    load_pool,
    pool_is_complete,
)

logger = get_logger(__name__)
SELECTORS = {"tacdt": "tacdt", "vstunet": "vstunet", "maescore": "maescore", "csta": "csta", "dm-mmd": "dm-mmd",
             "random": "pool-random", "full": "pool-random"}
NEEDS_ENCODER = ("tacdt", "maescore", "csta")
PAPER_SELECTION_RUNS = 5  # "we repeat both the selection process and classification task 5 times" (Sec. 4)


@dataclass
class DiffusionSelectArgs:
    generator: str | None = field(default=None, metadata={
        "help": "LattePipeline folder or Hub id; default: a tiny Latte fine-tuned on --dataset (cached)."})
    encoder: str | None = field(default=None, metadata={
        "help": "VideoMAE folder or Hub id (TAC-DT, MAE-Score); default: a tiny VideoMAE trained on --dataset."})
    selector: str = field(default="tacdt", metadata={
        "help": "tacdt | vstunet | maescore | csta | dm-mmd | random | full (VPC=N_c)."})
    vpc: int = field(default=5, metadata={"help": "Videos per class selected."})
    videos_per_class_pool: int | None = field(default=None, metadata={
        "help": "N_c generated per class (paper: 100; default 100, or 20 for toy-actions, the CPU default)."})
    pool_dir: str | None = field(default=None, metadata={
        "help": "Pool folder: written there, or reused if complete (default outputs/<dataset>-pool-...)."})
    pool_frame_size: int | None = field(default=None, metadata={
        "help": "Generated frame side (a multiple of 8, and of the generator's VAE scale x patch size; default: the "
                "student's --frame_size). The selected videos are resized to --frame_size."})
    pool_num_frames: int | None = field(default=None, metadata={
        "help": "Generated frames (= the generator's video_length; default: the student's --num_frames). The selected "
                "videos are resampled to --num_frames."})
    seed: int = field(default=0, metadata={"help": "Seed (pool, selection)."})
    selection_runs: int = field(default=PAPER_SELECTION_RUNS, metadata={
        "help": f"Selections with seeds seed..seed+R-1, each evaluated by --eval_runs students; the result is mean ± "
                f"std over all of them (paper: {PAPER_SELECTION_RUNS}, 1 student each). Only with --eval_runs; the "
                f"saved set is the first selection. Deterministic selectors (tacdt, maescore) select once."})
    num_inference_steps: int | None = field(default=None, metadata={"help": "Denoising steps (50; toy: 20)."})
    guidance_scale: float = field(default=DEFAULT_GUIDANCE_SCALE, metadata={
        "help": f"Classifier-free guidance scale (1 = off). Default {DEFAULT_GUIDANCE_SCALE}: LattePipeline's own "
                f"default (hf_vdd.diffusion.DEFAULT_GUIDANCE_SCALE); the paper states none."})
    prompt_template: str = field(default="a video of {}", metadata={"help": "Prompt per class name."})
    shard_size: int = field(default=10, metadata={"help": "Videos per pool shard (unit of work and resume)."})
    vst_epochs: int = field(default=50, metadata={"help": "VST-UNet training epochs."})
    save_selector: bool = field(default=True, metadata={"help": "Save the VST-UNet next to the output."})
    default_finetune_steps: int = field(default=500, metadata={"help": "Default generator: Latte steps."})
    default_vae_steps: int = field(default=300, metadata={"help": "Default generator: VAE steps."})
    default_prediction_type: str = field(default="v_prediction", metadata={
        "choices": PREDICTIONS, "help": "Default generator (a tiny Latte trained from scratch): what it learns to "
        "predict. `v_prediction` made the more recognisable pools on toy-actions (last weights, every step count "
        "compared; sessions 24-25, README); `epsilon` is Latte's own (and a pretrained --generator's)."})
    default_encoder_steps: int = field(default=300, metadata={
        "help": "Default encoder: VideoMAE steps. 300 is a CPU stand-in for the paper's pretrained VideoMAE: on "
                "toy-actions (16x32x32) it labels 14.5 %% of the real test clips right, 4,000 steps 55 %%, 10,000 "
                "57.5 %%; the stronger encoder did not change TAC-DT's selection there (README, session 28)."})

    def __post_init__(self):
        if self.selector not in SELECTORS:
            raise ValueError(f"--selector must be one of {sorted(SELECTORS)}, got '{self.selector}'.")
        check_fields(self, prefix="--")  # --default_prediction_type; --vpc, --selection_runs >= 1 (RANGES)
        # Latte's shape rules, while parsing flags (the generator's own rules: check_generation)
        check_generation_shape(8 if self.pool_frame_size is None else self.pool_frame_size,
                               1 if self.pool_num_frames is None else self.pool_num_frames)


def cache_root() -> Path:
    return Path(os.environ.get("HF_VDD_CACHE", Path.home() / ".cache" / "hf_vdd"))


def _key(facts: dict) -> str:
    return hashlib.sha1(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _is_toy(dataset: str) -> bool:
    return str(dataset) in ("toy-actions", "toy_actions")


def default_inference_steps(dataset: str) -> int:
    """The pool's DDIM steps when none are asked for: 50 (the library's and the paper's), 20 on toy-actions."""
    return 20 if _is_toy(dataset) else 50


def _cache_folder(kind: str, train_set, config, accelerator=None, version: int = 1) -> Path:
    """`<cache>/<kind>/tiny-<kind>-<hash>`: keyed by the data and the training config that built the model, and the
    accelerator's autocast when it has one (fp32 keys are what they were before mixed precision existed), and
    `version` (> 1 once a change makes the models cached before it stale)."""
    facts = {"data": train_set.name, "classes": train_set.class_names, "n": len(train_set),
             "t": train_set.num_frames, "size": train_set.frame_size, "config": asdict(config)}
    facts |= precision_key(accelerator) | ({"version": version} if version > 1 else {})
    return cache_root() / kind / f"tiny-{kind}-{_key(facts)}"


def learned_class_embeddings(generator: str, class_names: list[str]) -> torch.Tensor | None:
    """The per-class prompt embeddings learned with the Latte folder `generator` when they were learned for exactly
    `class_names` (in that order); None for a Hub id, a folder without them or other classes (then: the prompts)."""
    learned = load_class_embeddings(generator) if Path(generator).is_dir() else None
    return learned[1] if learned is not None and learned[0] == list(class_names) else None


def default_generator(train_set, args: DiffusionSelectArgs, accelerator) -> str:
    """A tiny Latte fine-tuned on `train_set` (cached); returns its folder."""
    from .pool import tiny_latte_pipeline

    cfg = LatteFinetuneConfig(steps=args.default_finetune_steps, vae_steps=args.default_vae_steps, batch_size=8,
                              lr=1e-3, prompt_template=args.prompt_template, seed=0,
                              prediction_type=args.default_prediction_type, ema_decay=0.9999)  # session 25
    # version 2: a default Latte cached before fine-tuning encoded prompts in eval mode trained on dropout draws
    folder = _cache_folder("latte", train_set, cfg, accelerator, version=2)
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
    folder = _cache_folder("videomae", train_set, config, accelerator)
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
    return PoolConfig(videos_per_class=args.videos_per_class_pool or (20 if toy else 100),
                      num_frames=frames if args.pool_num_frames is None else args.pool_num_frames,
                      frame_size=size if args.pool_frame_size is None else args.pool_frame_size,
                      num_inference_steps=args.num_inference_steps or default_inference_steps(data.dataset),
                      guidance_scale=args.guidance_scale, prompt_template=args.prompt_template,
                      shard_size=args.shard_size, seed=args.seed)


def check_generation(data, args: DiffusionSelectArgs) -> None:
    """Before any work: the pool's shape suits Latte and `--generator` (its configs are read, not its weights),
    unless a complete pool at `--pool_dir` is reused. The default generator is built at the pool's shape."""
    cfg = pool_config(data, args)
    check_generation_shape(cfg.frame_size, cfg.num_frames)
    if args.generator and not (args.pool_dir and pool_is_complete(args.pool_dir)):
        check_generation_shape(cfg.frame_size, cfg.num_frames, args.generator)


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
        gen_train = train_set  # the default generator learns the train clips at the pool's shape
        if (cfg.num_frames, cfg.frame_size) != (train_set.num_frames, train_set.frame_size):
            gen_train = data.load("train", num_frames=cfg.num_frames, frame_size=cfg.frame_size)
        generator = args.generator or default_generator(gen_train, args, accelerator)
        pipe = load_latte(generator)
        embeds = learned_class_embeddings(generator, names)
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


def make_selector(args: DiffusionSelectArgs, pool, encoder: str | None, seed: int | None = None):
    from ..distillers.base import get_distiller

    method = SELECTORS[args.selector]
    vpc = int(min(torch.bincount(torch.as_tensor(pool.labels)))) if args.selector == "full" else args.vpc
    kwargs = {"ipc": vpc, "seed": args.seed if seed is None else seed}
    if method in NEEDS_ENCODER:
        kwargs["encoder"] = encoder
    if method == "vstunet":
        kwargs["epochs"] = args.vst_epochs
    return get_distiller(method)(**kwargs)


def student_shaped(output, num_frames: int, frame_size: int):
    """The selection resized from the pool's shape to the student's (`fit_videos`); the pool shape is recorded."""
    if (output.num_frames, output.frame_size) == (num_frames, frame_size):
        return output
    pool_shape = {"pool_num_frames": output.num_frames, "pool_frame_size": output.frame_size}
    return replace(output, videos=fit_videos(output.videos, num_frames, frame_size), num_frames=num_frames,
                   frame_size=frame_size, config=output.config | pool_shape)


def select_runs(args: DiffusionSelectArgs, pool, encoder: str | None, accelerator, real, runs: int) -> tuple:
    """Selections with seeds `args.seed + r`, `r < runs` (one for `full` and for a selector the seed does not
    change), each a `DistillationOutput` at `real`'s (the student's) shape → `(outputs, the first's selector)`; the
    first output is the one to save."""
    outputs, selectors = [], []
    for r in range(1 if args.selector == "full" else runs):
        selector = make_selector(args, pool, encoder, seed=args.seed + r)
        if r and not selector.seeded:
            break
        out = selector(pool, accelerator=accelerator, real=real if selector.needs_real else None)
        outputs.append(student_shaped(out, real.num_frames, real.frame_size))
        selectors.append(selector)
    for out in outputs:
        out.stats["selection_runs"] = len(outputs)
    return outputs, selectors[0]


def evaluate_selections(selections: list, test_set, config, accelerator=None, runs: int | None = None):
    """One `EvalReport` over every selection: selection `r` is evaluated by `config.runs` students with seeds
    `config.seed + r * config.runs + i`; top-1/top-5/AUC/F1 are mean ± std over all those runs. A single selection
    (a deterministic selector) is evaluated by `runs` students (default `config.runs`), its spread is then the
    students' only."""
    from ..training import evaluate_distilled, summarize_runs

    reports = []
    for r, output in enumerate(selections):
        n = config.runs if len(selections) > 1 else (runs or config.runs)
        students = replace(config, runs=n, seed=config.seed + r * config.runs)
        reports.append(evaluate_distilled(output, test_set, students, accelerator))
    all_runs = [run | {"selection": r, "selection_seed": selections[r].seed}
                for r, rep in enumerate(reports) for run in rep.runs]
    return summarize_runs(all_runs, sum(rep.train_seconds for rep in reports),
                          reports[0].config | {"selections": len(selections), "runs": len(all_runs)})


def run_diffusion_select(data, args: DiffusionSelectArgs, accelerator, runs: int = 1):
    """Pool → `runs` selections (`select_runs`) → `([DistillationOutput], selector of the first)`, at the student's
    shape, not yet saved (`hf_vdd.cli.finish` evaluates/saves/pushes the first)."""
    train = data.load("train")
    pool = build_pool(data, args, accelerator, train)
    encoder = args.encoder
    if SELECTORS[args.selector] in NEEDS_ENCODER and encoder is None:
        encoder = default_encoder(train, args, accelerator)
    outputs, selector = select_runs(args, pool, encoder, accelerator, train, runs)
    for output in outputs:
        if args.selector == "full":
            output.method = "full-pool"
        output.stats["generation"] = pool.manifest["generation_stats"]
        output.config |= {"generator": pool.manifest.get("generator"), "encoder": encoder, "selector": args.selector}
    return outputs, selector
