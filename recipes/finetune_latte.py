"""Fine-tune a Latte pipeline (or a tiny one built from a config) on a video set, class-conditioned by prompt.

    python recipes/finetune_latte.py --dataset toy-actions --output_dir outputs/latte-toy --steps 500 --vae_steps 300
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/finetune_latte.py --dataset toy-actions --output_dir outputs/latte-toy --checkpointing_steps 100
    python recipes/finetune_latte.py --output_dir outputs/latte-toy --resume_from_checkpoint latest
    accelerate launch recipes/finetune_latte.py --dataset ucf12 --pretrained maxin-cn/Latte-1 --frame_size 256 \
        --num_frames 16 --lr 1e-5 --push_to_hub --hub_repo_id org/latte-ucf12

Writes a `LattePipeline.save_pretrained` folder with a model card (and `class_prompt_embeds.safetensors` with
`--learn_class_embeddings`), loadable by `LattePipeline.from_pretrained` and `recipes/diffusion_select.py --generator`.
"""

from dataclasses import dataclass, field

from hf_vdd.cli import DataArgs, parse_args, run_main
from hf_vdd.diffusion import LatteFinetuneConfig, finetune_latte, load_latte, tiny_latte_pipeline
from hf_vdd.hub import check_push_settings, push_folder
from hf_vdd.training import make_accelerator
from hf_vdd.utils import check_output_dir


@dataclass
class LatteArgs:
    output_dir: str = field(default="outputs/latte-finetuned", metadata={"help": "Pipeline folder to write."})
    pretrained: str | None = field(default=None, metadata={
        "help": "LattePipeline folder or Hub id to start from; default: a tiny Latte built from a config."})
    tiny_width: int = field(default=64, metadata={"help": "Width of the tiny Latte built without --pretrained."})
    tiny_layers: int = field(default=2, metadata={"help": "Spatial+temporal blocks of that tiny Latte."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the folder to a Hub model repo."})
    hub_repo_id: str | None = field(default=None, metadata={"help": "Hub model repo id for --push_to_hub."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --output_dir if it holds an earlier "
                                                             "pipeline written by this recipe."})


def main():
    data, args, config = parse_args(DataArgs, LatteArgs, LatteFinetuneConfig)
    check_push_settings(args.push_to_hub, args.hub_repo_id)  # before any work: Hub settings and the output folder
    check_output_dir(args.output_dir, overwrite=args.overwrite or bool(config.resume_from_checkpoint),
                     marker="hf_vdd_latte.json", protect=data.input_folders())
    accelerator = make_accelerator()
    train = data.load("train").preload(show_progress=accelerator.is_local_main_process)
    if args.pretrained:
        pipe = load_latte(args.pretrained)
    else:
        pipe = tiny_latte_pipeline(train.class_names, train.num_frames, train.frame_size, seed=config.seed,
                                   prompt_template=config.prompt_template, width=args.tiny_width,
                                   layers=args.tiny_layers)
    stats = finetune_latte(pipe, train, config, output_dir=args.output_dir, accelerator=accelerator,
                           source=str(data.dataset))
    if accelerator.is_main_process:
        first, last = stats["loss_first"], stats["loss_last"]  # empty when a resumed run had no steps left
        losses = (f"loss {sum(first) / len(first):.3f} -> {sum(last) / len(last):.3f}" if first and last
                  else "no new steps")
        print(f"wrote {args.output_dir} ({losses} in {stats['seconds']:.0f} s)")
        if args.push_to_hub:
            print(f"pushed: {push_folder(args.output_dir, args.hub_repo_id, repo_type='model')}")


if __name__ == "__main__":
    run_main(main)
