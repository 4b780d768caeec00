"""Coreset baselines (Random, Herding, K-Center): select `ipc` real clips per class.

    python recipes/coreset.py --dataset toy-actions --ipc 5 --method herding --output_dir outputs/toy-ipc5-herding
    python recipes/coreset.py --dataset ucf12 --frame_size 64 --num_frames 8 --ipc 1 --method kcenter --eval_runs 3
"""

from dataclasses import dataclass, field

from hf_vdd import get_distiller
from hf_vdd.cli import DataArgs, OutputArgs, distil, finish, parse_args, run_main
from hf_vdd.distillers import CoresetConfig


@dataclass
class CoresetArgs:
    method: str = field(default="random", metadata={"help": "random | herding | kcenter"})


def main():
    data, out, args, config = parse_args(DataArgs, OutputArgs, CoresetArgs, CoresetConfig)
    if args.method not in ("random", "herding", "kcenter"):
        raise ValueError(f"--method must be random, herding or kcenter, got '{args.method}'.")
    distiller = get_distiller(args.method)(config)
    out.prepare(data, args.method, config.ipc)  # output folder, Hub settings, class lists: before any decoding
    output, accelerator = distil(distiller, data, out)
    finish(output, data, out, accelerator)


if __name__ == "__main__":
    run_main(main)
