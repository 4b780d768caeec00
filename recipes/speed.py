"""Seconds per distillation iteration of hf_vdd's DM and IDTD against a classic DM loop; peak memory of recipes/dm.py.

    python recipes/speed.py                                   # 3 shapes x 1, 2 threads on the CPU -> outputs/speed/
    python recipes/speed.py --device cuda --threads 1         # the same on the GPU (peak CUDA memory)
    python recipes/speed.py --quick                           # smoke test: 2 classes 48x48x4, 2 timed iterations
    python recipes/speed.py --memory                          # peak RSS of 20 DM iterations: ucf12 and ucf12 doubled
    python recipes/speed.py --kernels                         # GFLOP/s of each embedder's forward, format, precision

Each (shape, threads, device, implementation) runs in its own Python (`--isolate`), so its peak RSS is its own.
Implementations: `reference` (VDSD's DM loop in plain torch, `hf_vdd.speed`), hf_vdd DM with augmentation off (the
like-for-like row: VDSD's DM uses none) and on (its default), hf_vdd IDTD (default settings). Columns and choices
are explained in docs/performance.md; results go to `--output_dir` as speed / memory / kernels .{json,md}.
"""

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hf_vdd.cli import given_flags, parse_args, run_main
from hf_vdd.speed import (
    IMPLS,
    RESULT_MARKERS,
    Case,
    add_speedups,
    embedder_facts,
    embedder_table,
    embedding_dim,
    environment,
    run_case,
    run_isolated,
    speed_table,
    write_results,
)
from hf_vdd.speed_kernels import kernel_rows, kernel_table
from hf_vdd.speed_memory import dm_memory_rows, memory_table
from hf_vdd.utils import HfVddError, check_output_dir, shared_data_dir

QUICK = {"configs": ["2x48x4"], "threads": [1], "iterations": 2, "warmup": 1}


@dataclass
class SpeedArgs:
    device: str = field(default="cpu", metadata={"choices": ("cpu", "cuda", "all"),
                                                 "help": "cpu, cuda, or all (cpu, plus cuda when available)."})
    threads: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "torch.set_num_threads values."})
    configs: list[str] = field(default_factory=lambda: ["5x64x8", "5x112x16", "50x64x8"], metadata={
        "help": "Shapes <classes>x<frame size>x<frames>, e.g. 5x112x16 (5 classes of 112x112 clips, 16 frames)."})
    impls: list[str] = field(default_factory=lambda: list(IMPLS), metadata={"help": f"Subset of {list(IMPLS)}."})
    iterations: int = field(default=5, metadata={"help": "Timed iterations per case (after the warm-up)."})
    warmup: int = field(default=1, metadata={"help": "Untimed first iterations per case."})
    real_per_class: int = field(default=8, metadata={"help": "Real clips per class (= batch_real); IPC is 1."})
    embed_widths: list[int] = field(default_factory=lambda: [64, 128, 128], metadata={
        "help": "Embedder widths of both sides (VDSD's ConvNet3D of width 128 is 64, 128, 128)."})
    isolate: bool = field(default=True, metadata={"help": "One Python per case (own peak RSS); false: in-process."})
    case_timeout: int = field(default=3600, metadata={"help": "Seconds before an isolated case is given up."})
    quick: bool = field(default=False, metadata={"help": f"Smoke test: {QUICK} unless given."})
    memory: bool = field(default=False, metadata={"help": "Memory mode: peak RSS of recipes/dm.py on ucf12 and on "
                                                          "a doubled ucf12 (symlinks in a temporary folder)."})
    kernels: bool = field(default=False, metadata={"help": "Kernels mode: seconds, GFLOP/s of one embedder forward of "
                          "real_per_class clips per embedder, memory format and precision."})
    memory_iterations: int = field(default=20, metadata={"help": "Memory mode: DM iterations."})
    memory_frame_size: int = field(default=112, metadata={"help": "Memory mode: frame size."})
    memory_num_frames: int = field(default=16, metadata={"help": "Memory mode: frames per clip."})
    output_dir: str = field(default="outputs/speed", metadata={"help": "Results folder (speed/memory .json, .md)."})
    seed: int = field(default=0, metadata={"help": "Seed of the random clips and of the runs."})

    def __post_init__(self):
        if self.quick:
            given = given_flags()
            for name, value in QUICK.items():
                setattr(self, name, getattr(self, name) if name in given else value)
        bad = [c for c in self.configs if not re.fullmatch(r"[1-9]\d*x[1-9]\d*x[1-9]\d*", c)]
        if self.kernels and self.memory:
            raise HfVddError("--kernels and --memory are two modes: give one of them.")
        if self.device not in ("cpu", "cuda", "all"):
            raise HfVddError(f"--device must be cpu, cuda or all, got '{self.device}'.")
        if bad:
            raise HfVddError(f"--configs {bad}: write each shape as <classes>x<frame size>x<frames>, e.g. 5x112x16.")
        if set(self.impls) - set(IMPLS) or not self.impls:
            raise HfVddError(f"--impls {self.impls}: choose from {list(IMPLS)}.")
        if min(self.threads, default=0) < 1 or self.iterations < 1 or self.warmup < 0 or self.real_per_class < 1:
            raise HfVddError(f"--threads must be >= 1 (got {self.threads}), --iterations >= 1 ({self.iterations}), "
                             f"--warmup >= 0 ({self.warmup}), --real_per_class >= 1 ({self.real_per_class}).")
        if min(self.embed_widths, default=0) < 1 or min(self.memory_iterations, self.memory_frame_size,
                                                        self.memory_num_frames) < 1:
            raise HfVddError("--embed_widths and the --memory_* sizes must be positive.")
        for c in self.configs:
            _, size, frames = map(int, c.split("x"))
            if not embedding_dim(size, frames, self.embed_widths):
                raise HfVddError(f"--configs {c}: too small for the reference ConvNet3D (its pooling leaves an empty "
                                 f"feature map); use frames of at least 48x48 pixels and at least 4 frames.")

    def devices(self) -> list[str]:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise HfVddError("--device cuda, but torch.cuda.is_available() is False on this machine.")
        if self.device == "all" and not torch.cuda.is_available():
            print("cuda skipped: torch.cuda.is_available() is False")
        return {"cpu": ["cpu"], "cuda": ["cuda"], "all": ["cpu", "cuda"][:1 + torch.cuda.is_available()]}[self.device]


def main():
    (args,) = parse_args(SpeedArgs)
    folder = check_output_dir(args.output_dir, overwrite=True, marker=RESULT_MARKERS, protect=[shared_data_dir()])
    command = shlex.join(["python", "recipes/speed.py", *sys.argv[1:]])
    if args.memory:
        rows, logs = dm_memory_rows(Path(__file__).with_name("dm.py"), args.memory_iterations, args.memory_frame_size,
                                    args.memory_num_frames, max(args.threads), args.seed)
        markdown = f"# recipes/speed.py --memory\n\n`{command}`\n\n{memory_table(rows)}\n"
        print(markdown)
        write_results(folder, "memory", {"command": command, "rows": rows}, markdown, logs)
        print(f"wrote {folder}/memory.json, memory.md and the logs of the two runs")
        return
    shapes, devices = [tuple(map(int, c.split("x"))) for c in args.configs], args.devices()
    env = environment(devices)
    if args.kernels:
        rows = [r for device in devices for shape in shapes for threads in args.threads for r in kernel_rows(
            *shape, args.embed_widths, args.real_per_class, threads, device, args.iterations, args.warmup, args.seed)]
        markdown = f"# recipes/speed.py --kernels\n\n`{command}`\n\nEnvironment: {env}.\n\n{kernel_table(rows)}\n"
        print(markdown)
        return write_results(folder, "kernels", {"command": command, "environment": env, "rows": rows}, markdown)
    cases = [Case(impl, k, size, frames, threads, device, args.iterations, args.warmup, args.real_per_class,
                  tuple(args.embed_widths), args.seed)
             for device in devices for k, size, frames in shapes for threads in args.threads
             for impl in args.impls]
    embedders = {c: embedder_facts(*shape, args.embed_widths) for c, shape in zip(args.configs, shapes)}
    print(embedder_table(embedders))
    rows = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.config}, {case.threads} thread(s), {case.device}: {IMPLS[case.impl]}",
              flush=True)
        rows.append(run_isolated(case, args.case_timeout) if args.isolate else run_case(case))
    table = speed_table(add_speedups(rows))
    markdown = (f"# recipes/speed.py\n\n`{command}`\n\nEnvironment: {env}.\n\n{embedder_table(embedders)}\n\n"
                f"{table}\n")
    print(table)
    write_results(folder, "speed", {"command": command, "environment": env, "embedders": embedders,
                                    "rows": rows}, markdown)
    print(f"wrote {folder}/speed.json and speed.md")
    failed = [r for r in rows if "error" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} case(s) failed: {[(r['config'], r['impl'], r['error']) for r in failed]}")


if __name__ == "__main__":
    run_main(main)
