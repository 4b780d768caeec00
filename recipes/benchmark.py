"""Benchmark: full clips vs single frame (upper bounds) and every requested distiller at every IPC.

    python recipes/benchmark.py --datasets toy-actions --output_dir outputs/benchmark-toy --readme README.md
    python recipes/benchmark.py --datasets toy-actions --methods dm idtd idtd@A --output_dir outputs/bench-idtd \
        --overrides '{"dm": {"iterations": 200}, "idtd": {"iterations": 200}, "idtd@A": {"ablation": "A"}}'
    python recipes/benchmark.py --datasets ucf12 --frame_size 32 --num_frames 8 --batch_size 16 --steps 300 \
        --full_steps 1000 --output_dir outputs/benchmark-ucf12 --readme README.md

Writes `results.json` (one record per cell; cells already there are skipped, `--force` recomputes) and
`results.md` (the leaderboard).
"""

import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from hf_vdd import TrainConfig, __version__, evaluate_distilled, get_distiller
from hf_vdd.cli import default_video_shape, parse_args, run_main
from hf_vdd.data import load_video_dataset


@dataclass
class BenchmarkArgs:
    datasets: list[str] = field(default_factory=lambda: ["toy-actions"], metadata={"help": "Sources."})
    methods: list[str] = field(default_factory=lambda: ["full", "static", "random", "herding", "kcenter"],
                               metadata={"help": "full / static (upper bounds) and registered distillers; "
                                                 "`name@tag` is a variant whose --overrides key is `name@tag`."})
    ipc: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": "IPCs."})
    runs: int = field(default=3, metadata={"help": "Evaluation runs per cell."})
    steps: int = field(default=300, metadata={"help": "Student steps per run on a distilled set."})
    full_steps: int = field(default=500, metadata={"help": "Student steps per run on the full train split."})
    frame_size: int | None = field(default=None, metadata={"help": "Frame side (default 32 toy, 112 else)."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames (default 8 toy, 16 else)."})
    batch_size: int = field(default=32, metadata={"help": "Student batch size."})
    seed: int = field(default=0, metadata={"help": "Seed for distillation and evaluation."})
    output_dir: str = field(default="outputs/benchmark", metadata={"help": "Where results go."})
    overrides: str = field(default="{}", metadata={
        "help": 'JSON of per-method config fields, e.g. \'{"dm": {"iterations": 200}}\'.'})
    force: bool = field(default=False, metadata={"help": "Recompute cells already in results.json."})
    readme: str | None = field(default=None, metadata={"help": "Also write the table into this README between "
                                                             "`<!-- results:<output_dir name>:start/end -->`."})


def _fmt(m):
    return f"{m['mean']:.1f} ± {m['std']:.1f}"


def write_markdown(records: list[dict], path: Path) -> None:
    lines = ["| dataset | method | IPC | top-1 | top-5 | AUC | F1 | distil s | train s/run | setting |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['dataset']} | {r['method']} | {r['ipc'] or 'all'} | {_fmt(r['top1'])} | {_fmt(r['top5'])} "
                     f"| {_fmt(r['auc'])} | {_fmt(r['f1'])} | {r['distill_seconds']:.1f} | "
                     f"{r['train_seconds'] / len(r['runs']):.1f} | {r['setting']} |")
    path.write_text("\n".join(lines) + "\n")


def main():
    (args,) = parse_args(BenchmarkArgs)
    overrides = json.loads(args.overrides)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    records = json.loads(results_file.read_text()) if results_file.exists() and not args.force else []
    done = {(r["dataset"], r["method"], r["ipc"]) for r in records}
    for dataset in args.datasets:
        size, frames = default_video_shape(dataset, args.frame_size, args.num_frames)
        setting = (f"{frames}x{size}x{size}, {args.runs} runs, {args.steps}/{args.full_steps} steps, "
                   f"bs {args.batch_size}")
        cells = [(m, None) for m in args.methods if m in ("full", "static")]
        cells += [(m, k) for m in args.methods if m not in ("full", "static") for k in args.ipc]
        todo = [c for c in cells if (dataset, *c) not in done]
        if not todo:
            continue
        full_train = load_video_dataset(dataset, "train", num_frames=frames, frame_size=size).preload()
        full_test = load_video_dataset(dataset, "test", num_frames=frames, frame_size=size).preload()
        for method, ipc in todo:
            static = method == "static"
            train, test = full_train.with_options(static=static), full_test.with_options(static=static)
            start = time.perf_counter()
            kwargs = overrides.get(method, {})
            distiller = None if ipc is None else get_distiller(method.split("@")[0])(ipc=ipc, seed=args.seed, **kwargs)
            data = train if distiller is None else distiller(train)
            distill_seconds = time.perf_counter() - start
            steps = args.full_steps if ipc is None else args.steps
            report = evaluate_distilled(data, test, TrainConfig(runs=args.runs, steps=steps, seed=args.seed,
                                                                batch_size=args.batch_size, show_progress=False))
            rec = report.to_dict() | {"dataset": dataset, "method": method, "ipc": ipc, "setting": setting,
                                      "class_names": test.class_names, "distill_seconds": distill_seconds,
                                      "distiller_overrides": kwargs if ipc is not None else {},
                                      "stored_bytes": data.storage_bytes() if distiller else None,
                                      "distill_stats": {k: v for k, v in data.stats.items() if k not in
                                                        ("loss_curve", "rewards", "q_tables")} if distiller else {},
                                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                      "hf_vdd_version": __version__}
            records.append(rec)
            results_file.write_text(json.dumps(records, indent=2))
            write_markdown(records, out / "results.md")
            print(f"{dataset} {method} ipc={ipc}: {report.summary()} "
                  f"(per class {[round(p) for p in report.per_class]})", flush=True)
    write_markdown(records, out / "results.md")
    if args.readme:
        update_readme(Path(args.readme), out.name, (out / "results.md").read_text())
    print((out / "results.md").read_text())


def update_readme(readme: Path, key: str, table: str) -> None:
    """Replace the block between `<!-- results:<key>:start -->` and `<!-- results:<key>:end -->`."""
    text = readme.read_text()
    start, end = f"<!-- results:{key}:start -->", f"<!-- results:{key}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block; add one where the table should go.")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + table + rest[rest.index(end):])


if __name__ == "__main__":
    run_main(main)
