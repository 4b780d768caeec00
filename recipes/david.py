"""DAViD: per-class temporal resolution chosen over the early stage of the distillation (teacher-in-the-loop
reward; default: one try per resolution, `--policy qlearning`: the paper's epsilon-greedy Q-learning), then DM
continues at that resolution.

    python recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --eval_runs 3
    python recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --policy qlearning   # the paper's Alg. 1
    python recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --fixed_resolution 4   # Tab. 4 case B
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/david.py --dataset toy-actions --ipc 1 --iterations 200 --checkpointing_steps 50

The teacher (`--teacher`, default: a ConvNet3D trained on the train split, cached) scores each resolution.
The distilled set goes to `--output_dir`; the Q-tables and chosen resolutions to `<output_dir>.distiller`.
"""

from dataclasses import dataclass, field

from hf_vdd.cli import DataArgs, OutputArgs, distil, finish, parse_args, run_main
from hf_vdd.distillers import DAViDConfig, DAViDDistiller


@dataclass
class DAViDArgs:
    save_distiller: str | None = field(default=None, metadata={
        "help": "Also save the Q-tables and resolutions here (default <output_dir>.distiller)."})


def main():
    data, out, args, config = parse_args(DataArgs, OutputArgs, DAViDArgs, DAViDConfig)
    distiller = DAViDDistiller(config)
    suffix = "david" if config.fixed_resolution is None else f"david-fixed{config.fixed_resolution}"
    out.prepare(data, suffix, config.ipc)  # output folder, Hub settings, class lists: before any decoding
    distiller_dir = args.save_distiller or f"{out.output_dir}.distiller"
    if config.fixed_resolution is None:
        out.check_folder(distiller_dir, data, marker="distiller.json", flag="--save_distiller")
    output, accelerator = distil(distiller, data, out)
    if accelerator.is_main_process:
        print("temporal resolution per class:", output.stats["resolutions_per_class"])
        stats = output.stats
        if stats["policy_fraction"] is not None:  # None: resumed from a checkpoint that did not record the search
            print(f"{config.policy} search {stats['policy_seconds']:.1f} s = {100 * stats['policy_fraction']:.1f}% "
                  f"of the final DM ({stats['final_dm_seconds']:.1f} s)")
    finish(output, data, out, accelerator)
    if accelerator.is_main_process and config.fixed_resolution is None:
        distiller.save_pretrained(distiller_dir)
        print(f"wrote {distiller_dir} (Q-tables and chosen resolutions)")


if __name__ == "__main__":
    run_main(main)
