"""Diffusion + selection: generate (or reuse) a Latte pool, select VPC videos per class, save, evaluate, push.

    accelerate launch recipes/diffusion_select.py         # embedded default: toy-actions, tiny Latte + tiny VideoMAE
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/diffusion_select.py --selector vstunet --vpc 5 --eval_runs 3
    python recipes/diffusion_select.py --config recipes/configs/diffusion_select_toy.yaml
    accelerate launch recipes/diffusion_select.py --dataset ucf12 --generator org/latte-ucf \
        --encoder MCG-NJU/videomae-base --frame_size 256 --num_frames 16 --videos_per_class_pool 100 --vpc 5 \
        --push_to_hub --hub_repo_id org/ucf12-vpc5-tacdt
"""


from hf_vdd.cli import DataArgs, OutputArgs, finish, parse_args, run_main
from hf_vdd.diffusion.select import (
    SELECTORS,
    DiffusionSelectArgs,
    check_pool_dir,
    pool_config,
    run_diffusion_select,
)
from hf_vdd.training import make_accelerator


def main():
    data, out, args = parse_args(DataArgs, OutputArgs, DiffusionSelectArgs)
    # before any work: output folders, Hub settings, the pool folder and its classes
    pool = pool_config(data, args)
    full = args.selector == "full"
    out.prepare(data, "full-pool" if full else SELECTORS[args.selector], pool.videos_per_class if full else args.vpc)
    selector_dir = f"{out.output_dir}-vstunet"
    if args.selector == "vstunet" and args.save_selector:
        out.check_folder(selector_dir, data, marker="distiller.json", flag="the selector folder")
    check_pool_dir(args.pool_dir, data.load("train").class_names)
    accelerator = make_accelerator()
    output, selector = run_diffusion_select(data, args, accelerator)
    finish(output, data, out, accelerator)
    if accelerator.is_main_process:
        print(f"selection ({output.method}, VPC {output.ipc}) took {output.stats['selection_seconds']:.1f} s")
        if output.method == "vstunet" and args.save_selector:
            folder = selector.save_pretrained(selector_dir)
            print(f"wrote the VST-UNet selector to {folder}")


if __name__ == "__main__":
    run_main(main)
