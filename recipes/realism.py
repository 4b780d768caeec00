"""Realism & diversity distillation (Jiang et al.): tracked real crops, scored by a teacher, tiled N×N per video.

    python recipes/realism.py --dataset toy-actions --ipc 5 --grid 2 --output_dir outputs/toy-ipc5-realism
    python recipes/realism.py --dataset ucf12 --frame_size 64 --num_frames 8 --ipc 1 --grid 2 --eval_runs 3 \\
        --detector motion --score own_class --label_mode soft   # --teacher <folder or id>; omitted: trained, cached
"""

from dataclasses import dataclass, field

from hf_vdd.cli import DataArgs, OutputArgs, distil, finish, parse_args, run_main
from hf_vdd.distillers import RealismConfig, RealismDistiller


@dataclass
class RealismEvalArgs:
    label_mode: str = field(default="soft", metadata={
        "help": "Evaluation with the region soft labels (soft) or the class labels (hard, the ablation)."})
    region_samples: int = field(default=1, metadata={
        "help": "Tiles per mosaic per step of Eq. 5 in evaluation (default 1: one forward per mosaic; 0 = all)."})
    mosaic_loss: bool = field(default=False, metadata={
        "help": "Also train each whole mosaic on the mean of its region labels (not in Eq. 5)."})


def main():
    data, out, args, config = parse_args(DataArgs, OutputArgs, RealismEvalArgs, RealismConfig)
    distiller = RealismDistiller(config)
    out.prepare(data, "realism", config.ipc)  # output folder, Hub settings, class lists: before any decoding
    output, accelerator = distil(distiller, data, out)
    if accelerator.is_main_process:
        print(f"realism: {output.stats['mosaics']} mosaics in {output.stats['distill_seconds']:.1f} s; fallbacks: "
              f"{output.stats['fallback_no_detection']} without detection, {output.stats['fallback_lost_track']} "
              f"lost tracks")
    finish(output, data, out, accelerator, label_mode=args.label_mode, region_samples=args.region_samples,
           mosaic_loss=args.mosaic_loss)


if __name__ == "__main__":
    run_main(main)
