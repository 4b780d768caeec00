"""Diffusion + selection: generate (or reuse) a Latte pool, select VPC videos per class, save, evaluate, push.

    accelerate launch recipes/diffusion_select.py         # embedded default: toy-actions, tiny Latte + tiny VideoMAE
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/diffusion_select.py --selector vstunet --vpc 5 --eval_runs 1 --selection_runs 5
    python recipes/diffusion_select.py --config recipes/configs/diffusion_select_toy.yaml
    accelerate launch recipes/diffusion_select.py --dataset ucf12 --generator org/latte-ucf \
        --encoder MCG-NJU/videomae-base --pool_frame_size 256 --pool_num_frames 16 --frame_size 112 \
        --num_frames 16 --videos_per_class_pool 100 --vpc 5 --push_to_hub --hub_repo_id org/ucf12-vpc5-tacdt

With `--eval_runs`, `--selection_runs` selections (seeds seed..seed+R-1) are each evaluated and the card reports
mean ± std over all of them; the saved and pushed set is the first selection (seed `--seed`).
"""


from hf_vdd.cli import DataArgs, OutputArgs, finish, parse_args, run_main
from hf_vdd.diffusion.select import (
    SELECTORS,
    DiffusionSelectArgs,
    check_generation,
    check_pool_dir,
    evaluate_selections,
    pool_config,
    run_diffusion_select,
)
from hf_vdd.training import make_accelerator


def main():
    data, out, args = parse_args(DataArgs, OutputArgs, DiffusionSelectArgs)
    # before any work: output folders, Hub settings, the pool's shape against Latte, the pool folder and its classes
    pool = pool_config(data, args)
    full = args.selector == "full"
    out.prepare(data, "full-pool" if full else SELECTORS[args.selector], pool.videos_per_class if full else args.vpc)
    selector_dir = f"{out.output_dir}-vstunet"
    if args.selector == "vstunet" and args.save_selector:
        out.check_folder(selector_dir, data, marker="distiller.json", flag="the selector folder")
    check_generation(data, args)
    check_pool_dir(args.pool_dir, data.load("train").class_names)
    accelerator = make_accelerator()
    outputs, selector = run_diffusion_select(data, args, accelerator, args.selection_runs if out.eval_runs else 1)
    output = outputs[0]

    def evaluate(first, test, config, accelerator):  # every selection; R x eval_runs students in all
        return evaluate_selections(outputs, test, config, accelerator, runs=args.selection_runs * config.runs)

    finish(output, data, out, accelerator, evaluate=evaluate)
    if accelerator.is_main_process:
        print(f"selection ({output.method}, VPC {output.ipc}, {len(outputs)} selection(s)) took "
              f"{output.stats['selection_seconds']:.1f} s (the first)")
        if output.method == "vstunet" and args.save_selector:
            folder = selector.save_pretrained(selector_dir)
            print(f"wrote the VST-UNet selector to {folder}")


if __name__ == "__main__":
    run_main(main)
