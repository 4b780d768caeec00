"""DAViD: per-class temporal resolution by Q-learning (teacher-in-the-loop reward), then DM at that resolution.

    python recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --eval_runs 3
    python recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --fixed_resolution 4   # Tab. 4 case B
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --checkpointing_steps 50

The teacher (`--teacher`, default: a ConvNet3D trained on the train split, cached) scores each resolution.
The distilled set goes to `--output_dir`; the Q-tables and chosen resolutions to `<output_dir>.distiller`.
"""

from dataclasses import dataclass, field

from hf_vdd.cli import DataArgs, OutputArgs, finish, parse_args, run_main
from hf_vdd.distillers import DAViDConfig, DAViDDistiller
from hf_vdd.training import make_accelerator


@dataclass
class DAViDArgs:
    save_distiller: str | None = field(default=None, metadata={
        "help": "Also save the Q-tables and resolutions here (default <output_dir>.distiller)."})


def main():
    data, out, args, config = parse_args(DataArgs, OutputArgs, DAViDArgs, DAViDConfig)
    accelerator = make_accelerator()
    suffix = "david" if config.fixed_resolution is None else f"david-fixed{config.fixed_resolution}"
    out.output_dir = out.output_dir or f"outputs/{data.dataset}-ipc{config.ipc}-{suffix}"
    config.checkpoint_dir = config.checkpoint_dir or f"{out.output_dir}.checkpoints"
    train = data.load("train").preload(show_progress=accelerator.is_local_main_process)
    distiller = DAViDDistiller(config)
    output = distiller(train, accelerator=accelerator)
    if accelerator.is_main_process:
        print("temporal resolution per class:", output.stats["resolutions_per_class"])
        stats = output.stats
        print(f"policy search {stats['policy_seconds']:.1f} s = {100 * stats['policy_fraction']:.1f}% of the final "
              f"DM ({stats['final_dm_seconds']:.1f} s)")
    finish(output, data, out, accelerator)
    if accelerator.is_main_process and config.fixed_resolution is None:
        distiller.save_pretrained(args.save_distiller or f"{out.output_dir}.distiller", source=str(data.dataset),
                                  class_names=train.class_names)


if __name__ == "__main__":
    run_main(main)
