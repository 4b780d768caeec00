"""Distribution Matching on video pixels.

    python recipes/dm.py --dataset toy-actions --ipc 1 --iterations 300 --eval_runs 3
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/dm.py --dataset toy-actions --ipc 1 --iterations 300 --checkpointing_steps 100
    python recipes/dm.py --dataset toy-actions --ipc 1 --iterations 300 --resume_from_checkpoint latest
"""

from hf_vdd.cli import DataArgs, OutputArgs, distil, finish, parse_args, run_main
from hf_vdd.distillers import DMConfig, DMDistiller


def main():
    data, out, config = parse_args(DataArgs, OutputArgs, DMConfig)
    distiller = DMDistiller(config)
    out.prepare(data, "dm", config.ipc)  # output folder, Hub settings, class lists: before any decoding
    test = data.load_splits(test=bool(config.eval_every))[1]
    output, accelerator = distil(distiller, data, out, eval_set=test)
    finish(output, data, out, accelerator)


if __name__ == "__main__":
    run_main(main)
