"""Benchmark every method on the same protocol: a leaderboard, costs, cross-architecture, plots, results on the Hub.

    python recipes/benchmark.py --datasets toy-actions --methods full static random herding kcenter dm \
        --ipc 1 5 --runs 3 --output_dir outputs/benchmark-toy --readme README.md
    python recipes/benchmark.py --datasets toy-actions --methods dm idtd idtd@A --output_dir outputs/bench-idtd \
        --overrides '{"dm": {"iterations": 200}, "idtd": {"iterations": 200}, "idtd@A": {"ablation": "A"}}'
    python recipes/benchmark.py --datasets toy-actions --methods random herding --students convnet3d videomae

`--methods` takes `full` / `static` (upper bounds) and any registered distiller (`hf_vdd.DISTILLERS`);
`name@tag` is a variant configured by the `--overrides` key `name@tag`. `--output_dir` ends up holding exactly
the repo folders `--push_to_hub` uploads: `results/` (the results dataset: card with the leaderboard, one parquet
row per cell, `results.json`, `results.md`, PNG plots) and one `<dataset>-ipc<k>-<method>/` per distilled set.
Cells already in `results/results.json` with the same settings (every flag and override that changes their
numbers, and the hf_vdd version) are skipped; a changed setting re-runs the cell (`--force` recomputes all).
"""

import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hf_vdd import DISTILLERS, TrainConfig, __version__, evaluate_distilled, get_distiller
from hf_vdd.benchmark import (
    PeakMemory,
    add_full_ratios,
    cell_key,
    cell_settings,
    cells_table,
    check_overrides,
    leaderboard,
    load_records,
    save_results_repo,
    settings_key,
    update_readme,
)
from hf_vdd.cli import default_video_shape, parse_args, run_main
from hf_vdd.data import load_video_dataset
from hf_vdd.diffusion import load_pool
from hf_vdd.diffusion.select import check_pool_dir
from hf_vdd.hub import check_push_settings, push_folder
from hf_vdd.training import make_accelerator
from hf_vdd.utils import check_output_dir, shared_data_dir


@dataclass
class BenchmarkArgs:
    datasets: list[str] = field(default_factory=lambda: ["toy-actions"], metadata={"help": "Sources."})
    methods: list[str] = field(default_factory=lambda: ["full", "static", "random", "herding", "kcenter"],
                               metadata={"help": "full / static (upper bounds) and registered distillers; "
                                                 "`name@tag` is a variant whose --overrides key is `name@tag`."})
    ipc: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": "IPCs."})
    runs: int = field(default=3, metadata={"help": "Evaluation runs per cell."})
    students: list[str] = field(default_factory=lambda: ["convnet3d"], metadata={
        "help": "Students to evaluate every set with (cross-architecture: convnet3d videomae)."})
    steps: int = field(default=300, metadata={"help": "Student steps per run on a distilled set."})
    full_steps: int = field(default=500, metadata={"help": "Student steps per run on the full train split."})
    frame_size: int | None = field(default=None, metadata={"help": "Frame side (default 32 toy, 112 else)."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames (default 8 toy, 16 else)."})
    batch_size: int = field(default=32, metadata={"help": "Student batch size."})
    seed: int = field(default=0, metadata={"help": "Seed for distillation and evaluation."})
    output_dir: str = field(default="outputs/benchmark", metadata={"help": "Where the repo folders go."})
    overrides: str = field(default="{}", metadata={
        "help": 'JSON of per-method config fields, e.g. \'{"dm": {"iterations": 200}}\'; a method\'s "train" '
                'key holds TrainConfig fields for its students, e.g. \'{"realism@hard": {"train": '
                '{"label_mode": "hard"}}}\'.'})
    force: bool = field(default=False, metadata={"help": "Recompute cells already in results.json."})
    readme: str | None = field(default=None, metadata={"help": "Also write the tables into this README between "
                                                             "`<!-- results:<output_dir name>:start/end -->`."})
    pool_dir: str | None = field(default=None, metadata={
        "help": "Generation pool for the pool selectors (tacdt, vstunet, maescore, pool-random), written by "
                "recipes/diffusion_select.py; its class names must match the dataset's."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload results/ and every distilled set."})
    hub_repo_id: str | None = field(default=None, metadata={
        "help": "Results dataset repo `<org>/<name>`; distilled sets go to `<org>/<dataset>-ipc<k>-<method>`."})


def main():
    (args,) = parse_args(BenchmarkArgs)
    overrides = json.loads(args.overrides)
    unknown = [m for m in args.methods if m not in ("full", "static") and m.split("@")[0] not in DISTILLERS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; choose from full, static, {sorted(DISTILLERS)} (or name@tag).")
    check_overrides(overrides, args.methods)
    pooled = [m for m in args.methods if getattr(DISTILLERS.get(m.split("@")[0]), "needs_pool", False)]
    if pooled and not args.pool_dir:
        raise ValueError(f"{pooled} select from a generation pool: pass --pool_dir (made by "
                         f"recipes/diffusion_select.py --pool_dir <folder>).")
    check_push_settings(args.push_to_hub, args.hub_repo_id)
    # the output folder is reused across runs: new, empty, or an earlier benchmark's (it holds results/)
    check_output_dir(args.output_dir, overwrite=True, marker=("results/results.json", "results.json"),
                     protect=[shared_data_dir(), *[d for d in args.datasets if Path(d).exists()]])
    if args.pool_dir:
        for dataset in args.datasets:
            check_pool_dir(args.pool_dir, load_video_dataset(dataset, "train").class_names)
    accelerator = make_accelerator()
    main_proc = accelerator.is_main_process
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = load_records(out, args.force)
    done = {(cell_key(r), r.get("settings_key")) for r in records}
    distilled_sets = {}
    command = "python recipes/benchmark.py " + shlex.join(sys.argv[1:])
    for dataset in args.datasets:
        size, frames = default_video_shape(dataset, args.frame_size, args.num_frames)
        setting = (f"{frames}x{size}x{size}, {args.runs} runs, {args.steps}/{args.full_steps} steps, "
                   f"bs {args.batch_size}")
        cells = [(m, None) for m in args.methods if m in ("full", "static")]
        cells += [(m, k) for m in args.methods if m not in ("full", "static") for k in args.ipc]
        todo = [c for c in cells if not all(
            ((dataset, *c, s), settings_key(cell_settings(args, overrides, size, frames, *c, s))) in done
            for s in args.students)]
        if not todo:
            continue
        full_train = load_video_dataset(dataset, "train", num_frames=frames, frame_size=size).preload(
            show_progress=main_proc)
        full_test = load_video_dataset(dataset, "test", num_frames=frames, frame_size=size).preload(
            show_progress=main_proc)
        for method, ipc in todo:
            static = method == "static"
            train, test = full_train.with_options(static=static), full_test.with_options(static=static)
            kwargs = dict(overrides.get(method, {}))
            train_kwargs = kwargs.pop("train", {})
            # variants that differ only in student training (e.g. realism@hard) reuse the distilled set
            memo_key = (dataset, method.split("@")[0], ipc, json.dumps(kwargs, sort_keys=True))
            if ipc is None:
                with PeakMemory() as cost:
                    data = train
            elif memo_key in distilled_sets:
                data, cost = distilled_sets[memo_key]
                data = dataclasses.replace(data, eval_results=None)
            else:
                with PeakMemory() as cost:
                    cls = get_distiller(method.split("@")[0])
                    source = (load_pool(args.pool_dir, class_names=train.class_names)
                              if getattr(cls, "needs_pool", False) else train)
                    data = cls(ipc=ipc, seed=args.seed, **kwargs)(source, accelerator=accelerator)
                distilled_sets[memo_key] = (data, cost)
            name = f"{Path(str(dataset)).name}-ipc{ipc}-{method.replace('@', '-')}"
            for student in args.students:
                settings = cell_settings(args, overrides, size, frames, method, ipc, student)
                if ((dataset, method, ipc, student), settings_key(settings)) in done:
                    continue
                stale = [r for r in records if cell_key(r) == (dataset, method, ipc, student)]
                if stale and main_proc:
                    print(f"{dataset} {method} ipc={ipc} [{student}]: settings changed since the stored result; "
                          f"running it again", flush=True)
                records = [r for r in records if cell_key(r) != (dataset, method, ipc, student)]
                steps = args.full_steps if ipc is None else args.steps
                train_config = {"student": student, "runs": args.runs, "steps": steps, "seed": args.seed,
                                "batch_size": args.batch_size, "show_progress": False} | train_kwargs
                report = evaluate_distilled(data, test, TrainConfig(**train_config), accelerator=accelerator)
                distilled = ipc is not None
                if distilled:
                    data.eval_results = (data.eval_results or {}) | {student: report.to_dict()}
                records.append(report.to_dict() | {
                    "dataset": dataset, "method": method, "ipc": ipc, "student": student, "setting": setting,
                    "class_names": test.class_names, "distill_seconds": cost.seconds if distilled else 0.0,
                    "peak_rss_mb": cost.peak_rss_mb, "peak_cuda_mb": cost.peak_cuda_mb,
                    "distiller_overrides": kwargs if distilled else {}, "train_overrides": train_kwargs,
                    "stored_bytes": data.storage_bytes() if distilled else None,
                    "distill_stats": {k: v for k, v in data.stats.items() if k not in
                                      ("loss_curve", "rewards", "q_tables")} if distilled else {},
                    "repo_folder": name if distilled else None, "hf_vdd_version": __version__, "command": command,
                    "settings": settings, "settings_key": settings_key(settings)})
                done.add(((dataset, method, ipc, student), settings_key(settings)))
                if main_proc:
                    print(f"{dataset} {method} ipc={ipc} [{student}]: {report.summary()} "
                          f"(per class {[round(p) for p in report.per_class]})", flush=True)
            if ipc is not None and main_proc:
                data.save(out / name, repo_id=f"{args.hub_repo_id.split('/')[0]}/{name}" if args.hub_repo_id
                          else None, overwrite=True)
            if main_proc:
                save_results_repo(records, out / "results", args.hub_repo_id or "<org>/hf_vdd-benchmark", command)
    if not main_proc:
        return
    add_full_ratios(records)
    save_results_repo(records, out / "results", args.hub_repo_id or "<org>/hf_vdd-benchmark", command)
    if args.readme:
        update_readme(Path(args.readme), out.name, leaderboard(records) + "\n" + cells_table(records))
    print(leaderboard(records))
    folders = {r["repo_folder"] for r in records if r.get("repo_folder") and (out / r["repo_folder"]).is_dir()}
    print(f"wrote {out / 'results'} (results dataset) and {len(folders)} distilled-set folders in {out}")
    if args.push_to_hub:
        org = args.hub_repo_id.split("/")[0]
        print(f"pushed: {push_folder(out / 'results', args.hub_repo_id)}")
        for folder in sorted({r["repo_folder"] for r in records if r.get("repo_folder")}):
            if (out / folder).is_dir():
                print(f"pushed: {push_folder(out / folder, f'{org}/{folder}')}")


if __name__ == "__main__":
    run_main(main)
