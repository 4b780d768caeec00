"""Benchmark of the diffusion + selection methods on one pool: Random, MAE-Score, TAC-DT, VST-UNet at several VPC,
plus the full synthetic pool and the full real train split as upper bounds (mean ± std over `--runs` students).

    python recipes/diffusion_benchmark.py --vpcs 1 5 10 --runs 3 --steps 100 --full_steps 200 \
        --output_json outputs/diffusion-benchmark.json

Uses (or builds) the same pool, generator and encoder as `recipes/diffusion_select.py` with the same flags. Each
method selects once (seed `--seed`); the runs differ in the student's seed.
"""

import time
from dataclasses import dataclass, field

from hf_vdd import TrainConfig, evaluate_distilled
from hf_vdd.cli import DataArgs, dump_json, parse_args, run_main
from hf_vdd.data.distilled import TensorVideoSet
from hf_vdd.diffusion.select import DiffusionSelectArgs, build_pool, default_encoder, make_selector
from hf_vdd.training import make_accelerator


@dataclass
class BenchArgs:
    methods: list[str] = field(default_factory=lambda: ["random", "maescore", "tacdt", "vstunet"],
                               metadata={"help": "Selectors to compare."})
    vpcs: list[int] = field(default_factory=lambda: [1, 5, 10], metadata={"help": "Videos per class."})
    runs: int = field(default=3, metadata={"help": "Student runs per entry."})
    steps: int = field(default=100, metadata={"help": "Student steps on selections."})
    full_steps: int = field(default=200, metadata={"help": "Student steps on the full pool / full real split."})
    output_json: str | None = field(default=None, metadata={"help": "Write all results here."})


def main():
    data, sel, bench = parse_args(DataArgs, DiffusionSelectArgs, BenchArgs)
    accelerator = make_accelerator()
    train, test = data.load("train"), data.load("test")
    sel.vpc = max(bench.vpcs)
    pool = build_pool(data, sel, accelerator, train)
    encoder = sel.encoder or default_encoder(train, sel, accelerator)
    rows, results = [], {"pool": pool.path, "generation": pool.manifest.get("generation_stats"), "entries": []}

    def evaluate(name, vpc, train_data, steps, seconds):
        report = evaluate_distilled(train_data, test, TrainConfig(runs=bench.runs, steps=steps, seed=sel.seed,
                                                                  show_progress=False), accelerator)
        entry = {"method": name, "vpc": vpc, "selection_seconds": seconds, "steps": steps} | report.to_dict()
        results["entries"].append(entry)
        rows.append(f"| {name} | {vpc} | {report.top1['mean']:.1f} ± {report.top1['std']:.1f} | "
                    f"{report.f1['mean']:.1f} ± {report.f1['std']:.1f} | {seconds:.1f} |")
        print(rows[-1], flush=True)

    for method in bench.methods:
        for vpc in bench.vpcs:
            sel.selector, sel.vpc = method, vpc
            start = time.perf_counter()
            output = make_selector(sel, pool, encoder)(pool, accelerator=accelerator)
            evaluate(method, vpc, output, bench.steps, time.perf_counter() - start)
    n_c = int(min(pool.indices_per_class()[c].size for c in range(pool.num_classes)))
    evaluate("full synthetic pool", n_c, TensorVideoSet(pool.float_videos(), pool.labels), bench.full_steps, 0.0)
    evaluate("full real", "all", train, bench.full_steps, 0.0)
    if accelerator.is_main_process:
        print(f"\n{data.dataset}, pool {pool.path} (N_c = {n_c}), ConvNet3D, {bench.runs} runs, {bench.steps} / "
              f"{bench.full_steps} steps\n\n| method | VPC | top-1 | F1 | selection s |\n|---|---|---|---|---|")
        print("\n".join(rows))
        dump_json(results, bench.output_json)


if __name__ == "__main__":
    run_main(main)
