"""Tabulate benchmark cells run at several distillation seeds, with paired differences to reference methods.

    for s in 0 1 2; do
      python recipes/benchmark.py --datasets toy-actions --ipc 5 --seed $s --output_dir outputs/seeds-$s \
          --methods idtd dm herding --overrides '{"idtd": {"iterations": 200}, "dm": {"iterations": 200}}'
    done
    python recipes/seeds_table.py --results outputs/seeds-0 outputs/seeds-1 outputs/seeds-2 --references dm herding

At a seed DM and IDTD start from the same real clips and every set's students share their seeds, so the paired
difference is the comparison; one seed cannot separate methods a couple of points apart.
"""

from dataclasses import dataclass, field

from hf_vdd.benchmark_seeds import load_seed_records, seeds_table
from hf_vdd.cli import parse_args, run_main


@dataclass
class SeedsArgs:
    results: list[str] = field(metadata={"help": "Benchmark output folders (or their results folders or "
                                                 "results.json), one seed each."})
    references: list[str] = field(default_factory=lambda: ["dm", "herding"], metadata={
        "help": "Methods every other method is compared with, seed by seed."})
    output_md: str | None = field(default=None, metadata={"help": "Also write the table to this Markdown file."})


def main():
    (args,) = parse_args(SeedsArgs, runtime=False)
    table = seeds_table(load_seed_records(args.results), tuple(args.references))
    print(table)
    if args.output_md:
        with open(args.output_md, "w") as f:
            f.write(table)


if __name__ == "__main__":
    run_main(main)
