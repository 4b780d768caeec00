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
A killed benchmark resumes inside its open cell too: `partial/` keeps its distilled set and finished student runs.
"""

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hf_vdd import DISTILLERS
from hf_vdd.benchmark import (
    add_full_ratios,
    cells_table,
    check_overrides,
    leaderboard,
    load_records,
    run_cells,
    save_results_repo,
    update_readme,
)
from hf_vdd.benchmark_partial import MARKER
from hf_vdd.cli import DataArgs, parse_args, run_main
from hf_vdd.data import load_video_dataset
from hf_vdd.diffusion.select import check_pool_dir
from hf_vdd.hub import check_push_settings, push_folder
from hf_vdd.training import make_accelerator, protocol_config
from hf_vdd.utils import check_output_dir


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
    num_frames: int | None = field(default=None, metadata={
        "help": "Frames (default 16: the papers' clip length, so that IDTD's 8 selectors get 2-frame segments)."})
    batch_size: int = field(default=32, metadata={"help": "Student batch size."})
    seed: int = field(default=0, metadata={"help": "Seed for distillation and evaluation."})
    output_dir: str = field(default="outputs/benchmark", metadata={"help": "Where the repo folders go."})
    overrides: str = field(default="{}", metadata={
        "help": 'JSON of per-method config fields, e.g. \'{"dm": {"iterations": 200}}\'; a method\'s "train" '
                'key holds TrainConfig fields for its students, e.g. \'{"realism@hard": {"train": '
                '{"label_mode": "hard"}}}\'.'})
    protocol: str = field(default="fast", metadata={
        "help": "Student protocol: fast (this project's CPU budget: --steps/--batch_size) or a paper's preset "
                "(vdsd, idtd, david, diffusion, realism; see README 'Evaluation protocols')."})
    force: bool = field(default=False, metadata={"help": "Recompute cells already in results.json."})
    checkpointing_steps: int = field(default=0, metadata={
        "help": "DM, IDTD and DAViD save a checkpoint every N iterations under <output_dir>/partial/<set>/, and a "
                "rerun of a killed benchmark resumes the distillation from the newest (0 = off; no result "
                "changes)."})
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
    protocol_config(args.protocol)  # an unknown --protocol fails here, not after the first cell
    pooled = [m for m in args.methods if getattr(DISTILLERS.get(m.split("@")[0]), "needs_pool", False)]
    if pooled and not args.pool_dir:
        raise ValueError(f"{pooled} select from a generation pool: pass --pool_dir (made by "
                         f"recipes/diffusion_select.py --pool_dir <folder>).")
    check_push_settings(args.push_to_hub, args.hub_repo_id)
    # the output folder is reused across runs: new, empty, or an earlier benchmark's (it holds results/)
    check_output_dir(args.output_dir, overwrite=True, marker=("results/results.json", "results.json", MARKER),
                     protect=[folder for d in args.datasets for folder in DataArgs(dataset=d).input_folders()])
    if args.pool_dir:
        for dataset in args.datasets:
            check_pool_dir(args.pool_dir, load_video_dataset(dataset, "train").class_names)
    accelerator = make_accelerator()
    main_proc = accelerator.is_main_process
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = load_records(out, args.force)
    command = "python recipes/benchmark.py " + shlex.join(sys.argv[1:])
    records = run_cells(args, overrides, records, out, accelerator, command)
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
