"""Evaluate a distilled set (or the full real train split) with the shared protocol.

    python recipes/evaluate.py --dataset toy-actions --distilled outputs/toy-actions-ipc5-random --runs 3
    python recipes/evaluate.py --dataset ucf12 --frame_size 64 --num_frames 8 --runs 3     # full-data upper bound
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        recipes/evaluate.py --dataset toy-actions --runs 1
"""

from dataclasses import dataclass, field

from hf_vdd import TrainConfig, evaluate_distilled, load_distilled
from hf_vdd.cli import DataArgs, dump_json, given_flags, parse_args, run_main
from hf_vdd.training import class_order, make_accelerator, protocol_config


@dataclass
class EvaluateArgs:
    distilled: str | None = field(default=None, metadata={"help": "Distilled-set folder or Hub id; omit = full."})
    static: bool = field(default=False, metadata={"help": "Train and test on one frame repeated."})
    output_json: str | None = field(default=None, metadata={"help": "Write the report here."})
    protocol: str = field(default="fast", metadata={
        "help": "fast (the flags as given) or a paper's preset: vdsd, idtd, david, diffusion, realism (flags given "
                "explicitly still win)."})


def main():
    data, args, train = parse_args(DataArgs, EvaluateArgs, TrainConfig)
    train = protocol_config(args.protocol, {k: getattr(train, k) for k in given_flags() if hasattr(train, k)}, train)
    # before any decoding: the distilled set (or the train split) must have the test split's classes
    distilled = load_distilled(args.distilled) if args.distilled else None
    if distilled is not None:  # the student sees the distilled set's frame size and length
        data.frame_size = distilled.frame_size if data.frame_size is None else data.frame_size
        data.num_frames = distilled.num_frames if data.num_frames is None else data.num_frames
        test = data.load("test", static=args.static)
        class_order(distilled.class_names, test.class_names, f"The distilled set {args.distilled}")
    else:
        test = data.load_splits(static=args.static)[1]
    accelerator = make_accelerator()
    train_data = distilled if distilled else data.load("train", static=args.static)
    report = evaluate_distilled(train_data, test, train, accelerator=accelerator,
                                extra_config={"dataset": data.dataset, "distilled": args.distilled,
                                              "static": args.static})
    if accelerator.is_main_process:
        what = args.distilled or "full real train split"
        print(f"{data.dataset} | {what}{' | static' if args.static else ''} | {train.student}: "
              f"top-1 {report.top1['mean']:.2f} ± {report.top1['std']:.2f}, top-5 {report.top5['mean']:.2f}, "
              f"AUC {report.auc['mean']:.2f}, F1 {report.f1['mean']:.2f} ({train.runs} runs, "
              f"{report.train_seconds:.1f} s training)")
        dump_json(report.to_dict(), args.output_json)


if __name__ == "__main__":
    run_main(main)
