"""`make demo`: distil toy-actions with Herding (seconds), evaluate against the full-data upper bound.

    python recipes/demo.py                       # writes outputs/toy-actions-ipc5-<method>/ and prints a table
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from hf_vdd import TrainConfig, evaluate_distilled, get_distiller
from hf_vdd.cli import DataArgs, parse_args, run_main
from hf_vdd.training import make_accelerator
from hf_vdd.utils import check_output_dir


@dataclass
class DemoArgs:
    method: str = field(default="herding", metadata={
        "help": "Distiller (Herding: the best that runs in seconds; README, 'Which method should I use?')."})
    ipc: int = field(default=5, metadata={"help": "Instances per class."})
    runs: int = field(default=2, metadata={"help": "Evaluation runs of the distilled set."})
    full_runs: int = field(default=1, metadata={"help": "Evaluation runs of the full-data upper bound."})
    steps: int = field(default=150, metadata={"help": "Student training steps per run on the distilled set."})
    full_steps: int = field(default=400, metadata={"help": "Student training steps per run on the full set."})
    seed: int = field(default=0, metadata={"help": "Seed."})
    output_dir: str | None = field(default=None, metadata={"help": "Default outputs/<dataset>-ipc<k>-<method>."})
    overwrite: bool = field(default=True, metadata={"help": "Replace an earlier demo output (only a folder hf_vdd "
                                                            "wrote, with distillation.json, is ever replaced)."})


def main():
    data, args = parse_args(DataArgs, DemoArgs)
    start = time.perf_counter()
    distiller = get_distiller(args.method)(ipc=args.ipc, seed=args.seed)
    output_dir = args.output_dir or f"outputs/{Path(str(data.dataset)).name}-ipc{args.ipc}-{args.method}"
    check_output_dir(output_dir, overwrite=args.overwrite, protect=data.input_folders())  # before any work
    train, test = data.load_splits()
    distiller.check(train)
    accelerator = make_accelerator()
    output = distiller(train, accelerator=accelerator)
    rows = {}
    for name, source, runs, steps in ((f"{args.method} IPC {args.ipc}", output, args.runs, args.steps),
                                      ("full real train split", train, args.full_runs, args.full_steps)):
        report = evaluate_distilled(source, test, TrainConfig(runs=runs, steps=steps, seed=args.seed), accelerator)
        rows[name] = report
    output.eval_results = {"convnet3d": rows[f"{args.method} IPC {args.ipc}"].to_dict(),
                           "convnet3d full data (upper bound)": rows["full real train split"].to_dict()}
    if not accelerator.is_main_process:
        return
    output.save(output_dir, overwrite=args.overwrite)
    print(f"\n{data.dataset}, ConvNet3D student, {test.num_frames}x{test.frame_size}x{test.frame_size}, "
          f"{args.steps} (distilled) / {args.full_steps} (full) training steps per run\n")
    print("| training set | videos | top-1 (%) | top-5 (%) | AUC (%) | F1 (%) | runs |")
    print("|---|---|---|---|---|---|---|")
    for name, rep in rows.items():
        n = len(output.labels) if "IPC" in name else len(train)
        print(f"| {name} | {n} | {rep.top1['mean']:.1f} ± {rep.top1['std']:.1f} | {rep.top5['mean']:.1f} | "
              f"{rep.auc['mean']:.1f} | {rep.f1['mean']:.1f} | {len(rep.runs)} |")
    print(f"\nwrote {output_dir}  (from datasets import load_dataset; load_dataset('{output_dir}'))")
    print(f"demo took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run_main(main)
