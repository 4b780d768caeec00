"""Distribution Matching on video pixels.

    python recipes/dm.py --dataset toy-actions --ipc 1 --iterations 300 --eval_runs 3
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/dm.py --dataset toy-actions --ipc 1 --iterations 300 --checkpointing_steps 100
    python recipes/dm.py --dataset toy-actions --ipc 1 --iterations 300 --resume_from_checkpoint latest
"""

from hf_vdd.cli import DataArgs, OutputArgs, finish, parse_args, run_main
from hf_vdd.distillers import DMConfig, DMDistiller
from hf_vdd.training import make_accelerator


def main():
    data, out, config = parse_args(DataArgs, OutputArgs, DMConfig)
    distiller = DMDistiller(config)
    out.prepare(data, "dm", config.ipc)  # output folder, Hub settings, class lists: before any decoding
    config.checkpoint_dir = config.checkpoint_dir or f"{out.output_dir}.checkpoints"
    train, test = data.load_splits(test=bool(config.eval_every))
    distiller.check(train)  # IPC, and a resumed checkpoint must come from this run
    accelerator = make_accelerator()
    train.preload(show_progress=accelerator.is_local_main_process)
    output = distiller(train, accelerator=accelerator, eval_set=test)
    finish(output, data, out, accelerator)


if __name__ == "__main__":
    run_main(main)
