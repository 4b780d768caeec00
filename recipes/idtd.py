"""IDTD: Information Diversification and Temporal Densification (Feature Pool, K Selectors, Temporal Fusor).

    python recipes/idtd.py --dataset toy-actions --ipc 1 --iterations 200 --eval_runs 3
    python recipes/idtd.py --dataset toy-actions --ipc 1 --iterations 200 --ablation C      # Tab. 3 ablations A/B/C
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/idtd.py --dataset toy-actions --ipc 1 --iterations 200 --checkpointing_steps 50
"""

from dataclasses import dataclass, field

from hf_vdd.cli import DataArgs, OutputArgs, distil, finish, parse_args, run_main
from hf_vdd.distillers import IDTDConfig, IDTDDistiller


@dataclass
class IDTDArgs:
    save_distiller: str | None = field(default=None, metadata={
        "help": "Also save the learned pool/selectors/fusor here (default <output_dir>.distiller)."})


def main():
    data, out, args, config = parse_args(DataArgs, OutputArgs, IDTDArgs, IDTDConfig)
    distiller = IDTDDistiller(config)
    out.prepare(data, "idtd" if config.ablation == "full" else f"idtd-{config.ablation}", config.ipc)
    distiller_dir = args.save_distiller or f"{out.output_dir}.distiller"
    out.check_folder(distiller_dir, data, marker="distiller.json", flag="--save_distiller")
    output, accelerator = distil(distiller, data, out)
    finish(output, data, out, accelerator)
    if accelerator.is_main_process:
        distiller.save_pretrained(distiller_dir)
        print(f"wrote {distiller_dir} (the learned pool, selectors and fusor)")


if __name__ == "__main__":
    run_main(main)
