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
    accelerator = make_accelerator()
    out.output_dir = out.output_dir or f"outputs/{data.dataset}-ipc{config.ipc}-dm"
    config.checkpoint_dir = config.checkpoint_dir or f"{out.output_dir}.checkpoints"
    train = data.load("train").preload(show_progress=accelerator.is_local_main_process)
    eval_set = data.load("test") if config.eval_every else None
    output = DMDistiller(config)(train, accelerator=accelerator, eval_set=eval_set)
    finish(output, data, out, accelerator)


if __name__ == "__main__":
    run_main(main)
