"""IDTD: Information Diversification and Temporal Densification (Feature Pool, K Selectors, Temporal Fusor).

    python recipes/idtd.py --dataset toy-actions --ipc 1 --iterations 200 --eval_runs 3
    python recipes/idtd.py --dataset toy-actions --ipc 1 --iterations 200 --ablation C      # Tab. 3 ablations A/B/C
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/idtd.py --dataset toy-actions --ipc 1 --iterations 200 --checkpointing_steps 50
"""

from dataclasses import dataclass, field

from hf_vdd.cli import DataArgs, OutputArgs, finish, parse_args, run_main
from hf_vdd.distillers import IDTDConfig, IDTDDistiller
from hf_vdd.training import make_accelerator


@dataclass
class IDTDArgs:
    save_distiller: str | None = field(default=None, metadata={
        "help": "Also save the learned pool/selectors/fusor here (default <output_dir>.distiller)."})


def main():
    data, out, args, config = parse_args(DataArgs, OutputArgs, IDTDArgs, IDTDConfig)
    accelerator = make_accelerator()
    suffix = "idtd" if config.ablation == "full" else f"idtd-{config.ablation}"
    out.output_dir = out.output_dir or f"outputs/{data.dataset}-ipc{config.ipc}-{suffix}"
    config.checkpoint_dir = config.checkpoint_dir or f"{out.output_dir}.checkpoints"
    train = data.load("train").preload(show_progress=accelerator.is_local_main_process)
    distiller = IDTDDistiller(config)
    output = distiller(train, accelerator=accelerator)
    finish(output, data, out, accelerator)
    if accelerator.is_main_process:
        distiller.save_pretrained(args.save_distiller or f"{out.output_dir}.distiller")


if __name__ == "__main__":
    run_main(main)
