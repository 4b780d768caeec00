"""Compare methods over distillation seeds: one benchmark cell per seed (`recipes/benchmark.py --seed S`), read
back from the results folders, tabulated per seed with each method's mean over seeds and its *paired* difference
to reference methods (the same seed: the same initial real clips for DM and IDTD, the same student seeds).

At IPC 5 one draw of real clips moves a set by several points, so a single seed cannot separate methods that are
2 points apart (README, sessions 21 and 22)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .benchmark import load_records


def load_seed_records(paths: list[str | Path]) -> list[dict]:
    """The records of benchmark results: each path is an output folder, its `results` folder or a `results.json`."""
    records = []
    for p in map(Path, paths):
        found = json.loads(p.read_text()) if p.suffix == ".json" and p.is_file() else load_records(p)
        if not found:
            raise FileNotFoundError(f"No benchmark results at {p}: pass a recipes/benchmark.py --output_dir, its "
                                    f"results folder or a results.json.")
        records += found
    return records


def _mean_sd(values: list[float], sign: str = "") -> str:
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{sign}.1f} ± {sd:.1f}"


def seed_groups(records: list[dict]) -> dict[tuple, dict[str, dict[int, dict]]]:
    """`{(dataset, ipc, student): {method: {seed: record}}}`; two records of one cell and seed are refused (their
    settings differ, or a folder was passed twice)."""
    groups: dict[tuple, dict[str, dict[int, dict]]] = {}
    for r in records:
        if r.get("ipc") is None:  # full data and one static frame do not distil
            continue
        key = (r["dataset"], r["ipc"], r.get("student", "convnet3d"))
        seed = int(r.get("settings", {}).get("seed", 0))
        cell = groups.setdefault(key, {}).setdefault(r["method"], {})
        if seed in cell:
            raise ValueError(f"Two results for {r['method']} ({key[0]}, IPC {key[1]}, {key[2]}) at seed {seed}: "
                             f"pass each benchmark output folder once, one seed per folder or cell.")
        cell[seed] = r
    return groups


def seeds_table(records: list[dict], references: tuple[str, ...] = ("dm", "herding")) -> str:
    """Markdown: per (dataset, IPC, student) a row per method with its top-1 at each seed, the mean ± sd of its
    seed means, and for each reference method present its paired difference (mean ± sd over the seeds both have,
    and on how many of them the method is ahead)."""
    out = []
    for (dataset, ipc, student), methods in sorted(seed_groups(records).items(), key=lambda kv: str(kv[0])):
        seeds = sorted({s for cells in methods.values() for s in cells})
        refs = [m for m in references if m in methods]
        out.append(f"**{dataset}, IPC {ipc}, {student}** (top-1 %, mean of each seed's student runs)\n")
        out.append("| " + " | ".join(["method", *(f"seed {s}" for s in seeds), "mean over seeds",
                                      *(f"paired − {m}" for m in refs)]) + " |")
        out.append("|---|" + "---|" * (len(seeds) + 1 + len(refs)))
        top1 = {m: {s: r["top1"]["mean"] for s, r in cells.items()} for m, cells in methods.items()}
        for method, means in top1.items():
            row = [f"{means[s]:.1f}" if s in means else "–" for s in seeds] + [_mean_sd(list(means.values()))]
            for ref in refs:
                diffs = [means[s] - top1[ref][s] for s in sorted(means) if s in top1[ref]]
                row.append("–" if method == ref or not diffs else
                           f"{_mean_sd(diffs, '+')} (ahead {sum(d > 0 for d in diffs)}/{len(diffs)})")
            out.append(f"| {method} | " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)
