"""Benchmark of the diffusion + selection methods on one pool: Random, MAE-Score, CSTA, DM-MMD, TAC-DT, VST-UNet at
several VPC, plus the full synthetic pool, as many real clips per class as the pool holds (the pool's real
counterpart) and the full real train split; and the pool's recognisability: a student trained on the real train split
labels the generated videos (top-1 overall and per class, in `--output_json`).

    python recipes/diffusion_benchmark.py --vpcs 1 5 10 --selection_runs 5 --runs 1 --steps 100 --full_steps 200 \
        --output_json outputs/diffusion-benchmark.json

Uses (or builds) the same pool, generator and encoder as `recipes/diffusion_select.py` with the same flags (the pool
at `--pool_frame_size` / `--pool_num_frames`, resized to the student's shape). As in the paper, each method selects
`--selection_runs` times (seeds seed..seed+R-1, paper: 5) and each selection trains `--runs` students; the row is mean
± std over all of them. A deterministic selector (TAC-DT, MAE-Score) selects once and trains R x `--runs` students,
so its spread is the students' only. The upper bounds train `--runs` students (`--upper_bounds false` skips
them and the labelling).
"""

import time
from dataclasses import dataclass, field

from hf_vdd import TrainConfig, evaluate_distilled
from hf_vdd.cli import DataArgs, dump_json, parse_args, run_main
from hf_vdd.data.distilled import TensorVideoSet
from hf_vdd.diffusion import fit_videos
from hf_vdd.diffusion.quality import pool_recognisability, real_like_pool
from hf_vdd.diffusion.select import (
    NEEDS_ENCODER,
    SELECTORS,
    DiffusionSelectArgs,
    build_pool,
    check_generation,
    default_encoder,
    evaluate_selections,
    select_runs,
)
from hf_vdd.training import make_accelerator


@dataclass
class BenchArgs:
    methods: list[str] = field(default_factory=lambda: ["random", "maescore", "csta", "dm-mmd", "tacdt", "vstunet"],
                               metadata={"help": "Selectors to compare."})
    vpcs: list[int] = field(default_factory=lambda: [1, 5, 10], metadata={"help": "Videos per class."})
    runs: int = field(default=1, metadata={"help": "Student runs per selection (paper: 1 per selection)."})
    steps: int = field(default=100, metadata={"help": "Student steps on selections."})
    full_steps: int = field(default=200, metadata={"help": "Student steps on the full pool / full real split."})
    upper_bounds: bool = field(default=True, metadata={
        "help": "Also train the whole-pool, as-many-real-clips and full-real students and label the pool (false: the "
                "selectors' rows only, e.g. to compare selectors or encoders on one pool)."})
    output_json: str | None = field(default=None, metadata={"help": "Write all results here."})

    def __post_init__(self):  # while parsing flags: before the pool, the VAE or the encoder is made
        unknown = [m for m in self.methods if m not in SELECTORS]
        if unknown or not self.methods:
            raise ValueError(f"--methods {unknown or '(none)'}: choose from {sorted(SELECTORS)}.")
        if not self.vpcs or min(self.vpcs) < 1:
            raise ValueError(f"--vpcs must be one or more numbers >= 1, got {self.vpcs}.")


def main():
    data, sel, bench = parse_args(DataArgs, DiffusionSelectArgs, BenchArgs)
    sel.vpc = max(bench.vpcs)
    check_generation(data, sel)
    accelerator = make_accelerator()
    train, test = data.load("train"), data.load("test")
    pool = build_pool(data, sel, accelerator, train)
    needs_encoder = any(m in NEEDS_ENCODER for m in bench.methods)
    encoder = sel.encoder or (default_encoder(train, sel, accelerator) if needs_encoder else None)
    rows, results = [], {"pool": pool.path, "generation": pool.manifest.get("generation_stats"), "entries": []}

    def record(name, vpc, report, selections, seconds, steps):
        entry = {"method": name, "vpc": vpc, "selections": selections, "selection_seconds": seconds,
                 "steps": steps} | report.to_dict()
        results["entries"].append(entry)
        rows.append(f"| {name} | {vpc} | {selections} | {len(report.runs)} | {report.top1['mean']:.1f} ± "
                    f"{report.top1['std']:.1f} | {report.f1['mean']:.1f} ± {report.f1['std']:.1f} | {seconds:.1f} |")
        print(rows[-1], flush=True)

    config = TrainConfig(runs=bench.runs, steps=bench.steps, seed=sel.seed, show_progress=False)
    for method in bench.methods:
        for vpc in bench.vpcs:
            sel.selector, sel.vpc = method, vpc
            start = time.perf_counter()
            outputs, _ = select_runs(sel, pool, encoder, accelerator, train, sel.selection_runs)
            seconds = (time.perf_counter() - start) / len(outputs)
            report = evaluate_selections(outputs, test, config, accelerator, runs=sel.selection_runs * bench.runs)
            record(method, vpc, report, len(outputs), seconds, bench.steps)
    n_c = int(min(pool.indices_per_class()[c].size for c in range(pool.num_classes)))
    if bench.upper_bounds:  # the whole pool, as many real clips as it holds per class, the full real split
        full_config = TrainConfig(runs=bench.runs, steps=bench.full_steps, seed=sel.seed, show_progress=False)
        whole = fit_videos(pool.videos, train.num_frames, train.frame_size).float() / 255.0
        whole_pool = evaluate_distilled(TensorVideoSet(whole, pool.labels), test, full_config, accelerator)
        record("full synthetic pool", n_c, whole_pool, 1, 0.0, bench.full_steps)
        real_like = evaluate_distilled(real_like_pool(train, n_c, sel.seed), test, full_config, accelerator)
        record("real, as many clips as the pool", n_c, real_like, 1, 0.0, bench.full_steps)
        # which classes the generator has learnt: the first full-real student (the upper bound's) labels the pool
        judges = []
        full_real = evaluate_distilled(train, test, full_config, accelerator,
                                       on_model=lambda run, model: judges.append(model) if run == 0 else None)
        record("full real", "all", full_real, 1, 0.0, bench.full_steps)
        results["recognisability"] = pool_recognisability(pool, judges[0], train.num_frames, train.frame_size,
                                                          full_config, accelerator, videos=whole)
        results["pool_to_real_ratio"] = whole_pool.top1["mean"] / max(real_like.top1["mean"], 1e-9)
    if accelerator.is_main_process:
        print(f"\n{data.dataset}, pool {pool.path} (N_c = {n_c}), ConvNet3D, {sel.selection_runs} selections x "
              f"{bench.runs} student(s), {bench.steps} / {bench.full_steps} steps\n\n"
              f"| method | VPC | selections | students | top-1 | F1 | selection s |\n|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        if bench.upper_bounds:
            rec = results["recognisability"]
            print(f"\nwhole pool / as many real clips: {results['pool_to_real_ratio']:.2f}; a real-data student "
                  f"labels the pool {rec['top1']:.1f} % right (chance {rec['chance']:.1f}): {rec['per_class']}")
        dump_json(results, bench.output_json)


if __name__ == "__main__":
    run_main(main)
