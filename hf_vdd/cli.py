"""What every recipe shares: dataclass flags (+ `--config file.yaml`), data loading, distil → save → push."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .data.loading import load_video_dataset
from .utils import configure_threads

USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError, TypeError)


def parse_args(*dataclass_types, argv: list[str] | None = None):
    """Parse dataclasses from the command line; `--config file.yaml` supplies defaults that flags override."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            parser.error("--config needs a YAML file")
        path = Path(argv[i + 1])
        if not path.is_file():
            parser.error(f"--config file {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"unknown keys in {path}: {unknown}")
        parser.set_defaults(**values)
        del argv[i:i + 2]
    return parser.parse_args_into_dataclasses(args=argv)


def run_main(main) -> None:
    """Run `main()`; user errors exit with status 2 and a one-line message instead of a traceback."""
    configure_threads()
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def default_video_shape(dataset: str, frame_size: int | None, num_frames: int | None) -> tuple[int, int]:
    """toy-actions defaults to 32×32×8 (its native size), everything else to VDSD's 112×112×16."""
    toy = str(dataset) in ("toy-actions", "toy_actions")
    return (32 if toy else 112) if frame_size is None else frame_size, (8 if toy else 16) if num_frames is None \
        else num_frames


@dataclass
class DataArgs:
    dataset: str = field(default="toy-actions", metadata={"help": "Source: Hub id, folder, toy-actions, ucf12."})
    frame_size: int | None = field(default=None, metadata={"help": "Frame side (default 32 toy, 112 else)."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames per clip (default 8 toy, 16 else)."})
    interval: int = field(default=4, metadata={"help": "Temporal sampling interval."})
    skip_corrupt: bool = field(default=False, metadata={"help": "Skip (and count) unreadable videos."})

    def load(self, split: str, **kwargs):
        size, frames = default_video_shape(self.dataset, self.frame_size, self.num_frames)
        return load_video_dataset(self.dataset, split, num_frames=frames, frame_size=size, interval=self.interval,
                                  skip_corrupt=self.skip_corrupt, **kwargs)


@dataclass
class OutputArgs:
    output_dir: str | None = field(default=None, metadata={"help": "Distilled-set folder (default outputs/<name>)."})
    push_to_hub: bool = field(default=False, metadata={"help": "Also upload the folder to the Hub."})
    hub_repo_id: str | None = field(default=None, metadata={"help": "Hub dataset repo id for --push_to_hub."})
    eval_runs: int = field(default=0, metadata={"help": "Evaluate the result with this many runs (0 = skip)."})
    eval_steps: int = field(default=300, metadata={"help": "Student training steps per evaluation run."})


def finish(output, data: DataArgs, out: OutputArgs, accelerator=None, **train_options) -> str:
    """Optionally evaluate (`train_options` go to `TrainConfig`), then save (main process) and push.

    Returns the output folder."""
    from .training import TrainConfig, evaluate_distilled

    name = f"{Path(str(data.dataset)).name}-ipc{output.ipc}-{output.method}"
    output_dir = out.output_dir or f"outputs/{name}"
    if out.push_to_hub and not out.hub_repo_id:
        raise ValueError("--push_to_hub needs --hub_repo_id <org>/<name>.")
    if out.eval_runs > 0:
        test = data.load("test")
        report = evaluate_distilled(output, test, TrainConfig(runs=out.eval_runs, steps=out.eval_steps,
                                                              seed=output.seed or 0, **train_options),
                                    accelerator=accelerator)
        output.eval_results = {"convnet3d": report.to_dict()}
        print(f"{name}: {report.summary()} ({out.eval_runs} runs)")
    if accelerator is None or accelerator.is_main_process:
        output.save(output_dir, repo_id=out.hub_repo_id)
        print(f"wrote {output_dir} ({len(output.labels)} videos; load with load_dataset('{output_dir}'))")
        if out.push_to_hub:
            print(f"pushed: {output.push_to_hub(out.hub_repo_id)}")
    return output_dir


def dump_json(obj, path: str | None) -> None:
    text = json.dumps(obj, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
