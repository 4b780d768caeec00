"""What every recipe shares: dataclass flags (+ `--config file.yaml`), checks before the work, distil → save → push.

Recipes check everything a user can get wrong *before* decoding a video (`parse_args` checks the flags and every
model named on the command line; `OutputArgs.prepare` checks the output folder and the Hub settings;
`DataArgs.load_splits` checks the class lists), and `run_main` turns those user errors into one line on stderr and
exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import yaml
from transformers import HfArgumentParser

from .config_fields import check_fields
from .data.loading import default_video_shape, load_video_dataset
from .hub import check_models, check_push_settings, push_folder
from .utils import (
    HfVddError,
    check_output_dir,
    configure_logging,
    configure_threads,
    get_logger,
    keep_freed_memory,
    shared_data_dir,
)

USER_ERRORS = (ValueError, FileNotFoundError)  # HfVddError and CorruptVideoError are ValueErrors

@dataclass
class RuntimeArgs:
    """How every recipe runs, whatever its method (added to each recipe's flags by `parse_args`)."""

    mixed_precision: str | None = field(default=None, metadata={
        "choices": ("no", "bf16", "fp16"),
        "help": "Autocast embeddings, teachers and generation in bf16/fp16 (synthetic pixels, losses and optimiser "
                "state stay fp32). Default: `accelerate launch --mixed_precision`'s setting, else no."})

    compile: bool = field(default=False, metadata={
        "help": "torch.compile the matching embedders and the prepared models (Accelerate's inductor backend); "
                "without a compiler (a C++ compiler on the CPU, triton on CUDA) a warning is printed and the run "
                "stays eager."})

    def apply(self) -> None:
        """Check the request and hand it to Accelerate (every `Accelerator()` of the run reads it)."""
        if self.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise HfVddError("--mixed_precision fp16 needs a CUDA GPU; use bf16 on the CPU (or no).")
        if self.mixed_precision is not None:
            os.environ["ACCELERATE_MIXED_PRECISION"] = self.mixed_precision
        if self.compile:
            import importlib.util
            import shutil

            missing = ("triton" if torch.cuda.is_available() and importlib.util.find_spec("triton") is None else
                       None if shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") else "a C++ compiler")
            if missing:
                get_logger(__name__).warning(f"--compile: {missing} is not installed; running eagerly.")
            else:
                os.environ["ACCELERATE_DYNAMO_BACKEND"] = "INDUCTOR"


def parse_args(*dataclass_types, argv: list[str] | None = None, runtime: bool = True):
    """Parse dataclasses from the command line; `--config file.yaml` supplies defaults that flags override.

    A recipe that runs models also takes `RuntimeArgs` (`--mixed_precision`, `--compile`), applied here;
    `runtime=False` leaves them out (a recipe that only reads and writes files). Every model a field names
    (`MODEL_FIELDS`) is checked to exist (local folder, or Hub id when online / in the cache when offline) before
    the recipe starts its work."""
    argv = list(sys.argv[1:] if argv is None else argv)
    dataclass_types = (*dataclass_types, RuntimeArgs) if runtime else dataclass_types
    parser = HfArgumentParser(dataclass_types)
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            parser.error("--config needs a YAML file")
        path = Path(argv[i + 1])
        if not path.is_file():
            parser.error(f"--config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
            parser.error(f"--config file {path} is not valid YAML{line}: {getattr(err, 'problem', err)}. Write one "
                         f"`key: value` per line, e.g. `ipc: 5`.")
        if not isinstance(values, dict):
            parser.error(f"--config file {path} must be a mapping of flag names to values (e.g. `ipc: 5`), got a "
                         f"{type(values).__name__}.")
        known = {f.name for dc in dataclass_types for f in fields(dc) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"unknown keys in {path}: {unknown}")
        parser.set_defaults(**values)
        del argv[i:i + 2]
    parsed = list(parser.parse_args_into_dataclasses(args=argv))
    if runtime:
        parsed.pop().apply()
    for args in parsed:  # numbers in range, choices among theirs: before any work
        check_fields(args, prefix="--")
    check_models(*parsed)
    return parsed


def given_flags(argv: list[str] | None = None) -> set[str]:
    """Field names the user set: `--name` flags on the command line and the keys of a `--config` YAML."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {a[2:].split("=")[0] for a in argv if a.startswith("--")}
    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        names |= set(yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {})
    return names


def run_main(main) -> None:
    """Run `main()`; user errors exit with status 2 and a one-line message instead of a traceback."""
    configure_threads()
    keep_freed_memory()
    configure_logging()
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


@dataclass
class DataArgs:
    dataset: str = field(default="toy-actions", metadata={"help": "Source: Hub id, folder, toy-actions, ucf12."})
    frame_size: int | None = field(default=None, metadata={"help": "Frame side (default 32 toy, 112 else)."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames per clip (default 8 toy, 16 else)."})
    interval: int = field(default=4, metadata={"help": "Temporal sampling interval."})
    skip_corrupt: bool = field(default=False, metadata={"help": "Skip unreadable or truncated videos (they are "
                                                                "listed at the end and in the card)."})
    video_column: str | None = field(default=None, metadata={"help": "Video column (default: found by name/type)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: label/labels)."})
    train_split: str = field(default="train", metadata={"help": "The source's training split."})
    test_split: str = field(default="test", metadata={"help": "The source's test split (test falls back to "
                                                              "validation)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_revision: str | None = field(default=None, metadata={
        "help": "Hub dataset revision (branch, tag or commit); recorded as <id>@<revision> in the card."})
    dataloader_num_workers: int = field(default=2, metadata={
        "help": "Worker processes that decode real clips ahead of the distiller (0: decode inline)."})
    cache_size: int = field(default=0, metadata={
        "help": "Decoded clips kept in memory per process, least recently used dropped (0: none; each sample "
                "decodes only its own frames)."})
    preload: bool = field(default=False, metadata={
        "help": "Decode every training clip once and keep it in memory before distilling (fast to revisit, but "
                "memory grows with the dataset: ~3.6 GB for ucf12 at 112x112)."})
    _loaded: dict = field(default_factory=dict, init=False, repr=False)

    def sampler_options(self) -> dict:
        """Keyword arguments of `hf_vdd.data.streaming.PrefetchingClassSampler` from these flags:
        `PrefetchingClassSampler(train_set, seed, keys, n, **data.sampler_options())`."""
        return {"num_workers": self.dataloader_num_workers, "prefetch_factor": 2}

    def load(self, split: str, **kwargs):
        """The `train` or `test` split (`--train_split`/`--test_split` name them in the source) as a
        `VideoClassificationSet` (nothing decoded; the same object for the same arguments), carrying
        `sampler_options` (`--dataloader_num_workers`) for the distillers' real-batch sampler. `frame_size` and
        `num_frames` override the flags."""
        key = (split, tuple(sorted(kwargs.items())))
        if key not in self._loaded:
            # `frame_size` / `num_frames` in kwargs: the split at another shape (e.g. a generation pool's)
            size, frames = default_video_shape(self.dataset, kwargs.pop("frame_size", self.frame_size),
                                               kwargs.pop("num_frames", self.num_frames))
            name = {"train": self.train_split, "test": self.test_split}.get(split, split)
            self._loaded[key] = load_video_dataset(
                self.dataset, name, num_frames=frames, frame_size=size, interval=self.interval,
                skip_corrupt=self.skip_corrupt, video_column=self.video_column, label_column=self.label_column,
                config=self.dataset_config, revision=self.dataset_revision, cache_size=self.cache_size,
                train=split == "train", **kwargs)
            self._loaded[key].sampler_options = self.sampler_options()  # how the distillers stream its clips
        return self._loaded[key]

    def load_splits(self, test: bool = True, **kwargs):
        """`(train, test)` (test `None` when not needed), their class lists checked to match, nothing decoded."""
        train = self.load("train", **kwargs)
        if not test:
            return train, None
        test_set = self.load("test", **kwargs)
        from .training import class_order

        if class_order(train.class_names, test_set.class_names, f"The train split of {self.dataset}") is not None:
            raise HfVddError(f"The train and test splits of {self.dataset} list their classes in different orders; "
                             f"rebuild the dataset with one ClassLabel for both splits.")
        return train, test_set

    def input_folders(self) -> list[Path]:
        """Local folders holding the source data: never written to."""
        folders = [shared_data_dir()]
        if Path(str(self.dataset)).expanduser().exists():
            folders.append(Path(str(self.dataset)).expanduser())
        return folders

    def skipped_videos(self) -> list[str]:
        """The videos `--skip_corrupt` left out, a local folder's relative to it (cards name no machine's folders)."""
        root = Path(str(self.dataset)).expanduser()
        return sorted({_relative(path, root) for ds in self._loaded.values() for path in ds.skipped})


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except (ValueError, OSError):
        return path


@dataclass
class OutputArgs:
    output_dir: str | None = field(default=None, metadata={"help": "Distilled-set folder (default "
                                                                   "outputs/<dataset>-ipc<k>-<method>)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --output_dir if it holds an earlier hf_vdd "
                                                             "output (a folder with distillation.json; nothing else "
                                                             "is ever replaced)."})
    push_to_hub: bool = field(default=False, metadata={"help": "Also upload the folder to the Hub."})
    hub_repo_id: str | None = field(default=None, metadata={"help": "Hub dataset repo id for --push_to_hub."})
    license: str | None = field(default=None, metadata={"help": "License of the distilled set (default: the "
                                                                "source dataset's, when it states one)."})
    eval_runs: int = field(default=0, metadata={"help": "Evaluate the result with this many runs (0 = skip)."})
    eval_steps: int = field(default=300, metadata={"help": "Student training steps per evaluation run."})
    protocol: str = field(default="fast", metadata={"help": "Evaluation protocol: fast, or a paper's preset (vdsd, "
                                                            "idtd, david, diffusion, realism)."})

    def prepare(self, data: DataArgs, method: str, ipc: int | str) -> str:
        """Checks before any work: flags, the Hub settings, the output folder and, with `--eval_runs`, the test
        split's classes. Fills in the default `output_dir` (`outputs/<dataset>-ipc<k>-<method>`) and returns it."""
        from .training import PROTOCOLS

        if self.eval_runs < 0 or self.eval_steps <= 0:
            raise HfVddError(f"--eval_runs must be >= 0 and --eval_steps > 0, got {self.eval_runs} and "
                             f"{self.eval_steps}.")
        if self.protocol not in PROTOCOLS:
            raise HfVddError(f"--protocol must be one of {sorted(PROTOCOLS)}, got '{self.protocol}'.")
        self.output_dir = self.output_dir or f"outputs/{Path(str(data.dataset)).name}-ipc{ipc}-{method}"
        check_push_settings(self.push_to_hub, self.hub_repo_id)
        self.check_folder(self.output_dir, data)
        if self.eval_runs:
            data.load_splits(test=True)
        return self.output_dir

    def check_folder(self, folder: str, data: DataArgs, marker: str = "distillation.json",
                     flag: str = "--output_dir") -> None:
        """A folder the recipe will write (e.g. `<output_dir>.distiller`, whose own file is `marker`): same rules
        as `--output_dir` (`hf_vdd.utils.check_output_dir`), `--overwrite` included."""
        check_output_dir(folder, overwrite=self.overwrite, marker=marker, protect=data.input_folders(), flag=flag)


def distil(distiller, data: DataArgs, out: OutputArgs, preload: bool | None = None, **call_kwargs):
    """The distillation step of a recipe, after `out.prepare(...)`: checkpoints default to
    `<output_dir>.checkpoints`, the distiller checks the train split (IPC, a resumed checkpoint) before anything is
    decoded, then the split is distilled under an `Accelerator`, decoding clips as they are sampled, or all of them
    first with `--preload` (`preload` overrides the flag). Returns `(output, accelerator)`."""
    from .training import make_accelerator

    if hasattr(distiller.config, "checkpoint_dir"):
        distiller.config.checkpoint_dir = distiller.config.checkpoint_dir or f"{out.output_dir}.checkpoints"
    train = data.load("train")
    distiller.check(train)
    accelerator = make_accelerator()
    if data.preload if preload is None else preload:
        train.preload(num_workers=data.dataloader_num_workers, show_progress=accelerator.is_local_main_process)
    return distiller(train, accelerator=accelerator, **call_kwargs), accelerator


def finish(output, data: DataArgs, out: OutputArgs, accelerator=None, evaluate=None, **train_options) -> str:
    """Optionally evaluate (`train_options` go to `TrainConfig`), then save (main process) and push.

    `evaluate(output, test_set, train_config, accelerator) -> EvalReport` replaces `evaluate_distilled` (diffusion:
    the report over several selections).

    `out.prepare(...)` must have run before the work. Returns the output folder."""
    from .training import evaluate_distilled, protocol_config

    if out.output_dir is None:
        raise RuntimeError("OutputArgs.prepare() must run before the work (it checks the output folder).")
    main_process = accelerator is None or accelerator.is_main_process
    output.license = out.license or output.license or data.load("train").license
    output.command = output.command or shlex.join(["python", *sys.argv])
    skipped = data.skipped_videos()
    if skipped:
        output.stats["skipped_videos"] = skipped
    name = Path(out.output_dir).name
    if out.eval_runs > 0:
        config = protocol_config(out.protocol, {"runs": out.eval_runs, "steps": out.eval_steps,
                                                "seed": output.seed or 0} | train_options)
        report = (evaluate or evaluate_distilled)(output, data.load_splits(test=True)[1], config,
                                                  accelerator=accelerator)
        output.eval_results = {"convnet3d": report.to_dict()}
        if main_process:
            print(f"{name}: {report.summary()} ({len(report.runs)} runs)")
    if main_process:
        output.save(out.output_dir, repo_id=out.hub_repo_id, overwrite=out.overwrite)
        print(f"wrote {out.output_dir} ({len(output.labels)} videos; load with load_dataset('{out.output_dir}'))")
        if skipped:
            print(f"skipped {len(skipped)} unreadable video(s) (also listed in the card): {', '.join(skipped)}")
        if out.push_to_hub:
            try:
                print(f"pushed: {push_folder(out.output_dir, out.hub_repo_id)}")
            except HfVddError as err:
                raise HfVddError(f"{err} The distilled set is saved in {out.output_dir}; upload it later with "
                                 f"`hf upload {out.hub_repo_id} {out.output_dir} --repo-type dataset`.") from err
    return out.output_dir


def dump_json(obj, path: str | None) -> None:
    text = json.dumps(obj, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
