"""Temporal-redundancy analysis (DAViD Eq. 6 / Fig. 3, IDTD Sec. 4.5): JSON + PNG for each task.

    python recipes/temporal_redundancy.py --task delta --dataset toy-actions --output_dir outputs/analysis
    python recipes/temporal_redundancy.py --task tr_subset --dataset toy-actions --k 5 --output_dir outputs/analysis
    python recipes/temporal_redundancy.py --task redundancy --dataset toy-actions --output_dir outputs/analysis
    python recipes/temporal_redundancy.py --task groups --dataset toy-actions --results outputs/bench/results.json \
        --output_dir outputs/analysis

`delta` trains a full-clip and a single-frame student (the shared protocol) and writes `deltas.json`/`deltas.png`;
`tr_subset` writes the top-k classes by Delta as a dataset folder (`tr-subset/`, loadable by `--dataset`);
`redundancy` writes `redundancy.json`/`.png` (R_t, R_IC per class, from a teacher); `groups` reads per-class
accuracies from a benchmark `results.json` and writes `groups.json`/`groups.png`.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from hf_vdd import analysis
from hf_vdd.cli import DataArgs, dump_json, parse_args, run_main
from hf_vdd.data.sources import shareable
from hf_vdd.teacher import load_teacher
from hf_vdd.training import TrainConfig, make_accelerator
from hf_vdd.utils import atomic_folder, check_output_dir

TASKS = ("delta", "tr_subset", "redundancy", "groups")
OUTPUTS = ("deltas.json", "redundancy.json", "groups.json", "tr-subset")  # a folder holding one was written here


@dataclass
class AnalysisArgs:
    task: str = field(default="delta", metadata={"help": f"One of {TASKS}."})
    output_dir: str = field(default="outputs/analysis", metadata={"help": "Where JSON and PNG files go."})
    k: int = field(default=5, metadata={"help": "tr_subset: number of most temporal classes to keep."})
    steps: int = field(default=500, metadata={"help": "delta: student steps per run."})
    runs: int = field(default=1, metadata={"help": "delta: seeded runs (per-class accuracies are averaged)."})
    teacher: str | None = field(default=None, metadata={"help": "redundancy: teacher folder/id (default: trained "
                                                                 "and cached)."})
    results: str | None = field(default=None, metadata={"help": "groups: a benchmark results.json."})
    num_groups: int = field(default=11, metadata={"help": "groups: number of Delta groups (paper: 11)."})


def main():
    data, args = parse_args(DataArgs, AnalysisArgs)
    if args.task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got '{args.task}'.")
    if args.task == "groups" and not args.results:
        raise ValueError("--task groups needs --results <benchmark results.json>.")
    # the folder is shared by the tasks (tr_subset and groups read deltas.json): new, empty, or one of ours
    check_output_dir(args.output_dir, overwrite=True, marker=OUTPUTS, protect=data.input_folders())
    out, accelerator = Path(args.output_dir), make_accelerator()
    deltas_file = out / "deltas.json"
    if args.task == "delta" or (args.task in ("tr_subset", "groups") and not deltas_file.exists()):
        deltas = analysis.class_deltas(data.load("train").preload(), data.load("test"),
                                       TrainConfig(steps=args.steps, runs=args.runs), accelerator)
    if args.task == "redundancy":
        train = data.load("train").preload()
        metrics = analysis.redundancy_metrics(train, load_teacher(args.teacher, train, accelerator=accelerator).model)
    if not accelerator.is_main_process:  # the work above is shared; only the main process writes
        return
    out.mkdir(parents=True, exist_ok=True)
    if args.task == "delta" or (args.task in ("tr_subset", "groups") and not deltas_file.exists()):
        dump_json(deltas, deltas_file)
        analysis.plot_deltas(deltas, out / "deltas.png")
        print(f"Delta per class: {dict(zip(deltas['class_names'], [round(d, 1) for d in deltas['delta']]))}")
    if args.task == "tr_subset":
        train = data.load("train")
        subset = analysis.temporal_redundant_subset(train, data.load("test"), json.loads(deltas_file.read_text()),
                                                    args.k)
        with atomic_folder(out / "tr-subset", marker="data") as tmp:
            for split, ds in subset.items():
                ds.to_parquet(str(tmp / "data" / f"{split}-00000-of-00001.parquet"))
        print(f"wrote {out / 'tr-subset'}: classes {subset['train'].features[train.label_column].names}")
    elif args.task == "redundancy":
        dump_json(metrics, out / "redundancy.json")
        analysis.plot_redundancy(metrics, out / "redundancy.png")
        print(json.dumps(metrics))
    elif args.task == "groups":
        deltas = json.loads(deltas_file.read_text())
        records = json.loads(Path(args.results).read_text())
        per_class = {f"{r['method']} ipc{r['ipc'] or '-'}": r["per_class"] for r in records
                     if r["dataset"] in (str(data.dataset), shareable(str(data.dataset)))
                     and len(r["per_class"]) == len(deltas["class_names"])}
        if not per_class:
            raise ValueError(f"{args.results} has no per-class results for {data.dataset}.")
        groups = analysis.delta_groups(deltas, per_class, args.num_groups)
        dump_json(groups, out / "groups.json")
        analysis.plot_delta_groups(groups, out / "groups.png")
    print(f"wrote {out}")


if __name__ == "__main__":
    run_main(main)
