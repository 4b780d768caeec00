"""The kernels mode of `recipes/speed.py` (`--kernels`): how fast each embedder's forward runs on a real batch, per
memory format and precision, apart from the loops around it (see docs/performance.md).

Both loops of the speed table spend most of an iteration in the same convolutions (the classic loop's ConvNet3D and
hf_vdd's have the same parameters; hf_vdd's third block sees every frame, 4-6 % more multiply-adds). So the kernel
rate (GFLOP/s) each reaches bounds how much faster one loop can be than the other at equal work: this mode measures
that rate for the classic embedder and hf_vdd's, in the contiguous and channels_last_3d formats, fp32 and bf16
autocast, on `real_per_class` clips under `torch.inference_mode` (the real side of a DM iteration).
"""

from __future__ import annotations

import statistics
import time

import torch

from .models import ConvNet3D
from .speed import ClassicConvNet3D, config_name, embedder_facts, sync

FORMATS = ("contiguous", "channels_last")
PRECISIONS = ("fp32", "bf16")


def median_seconds(fn, iterations: int, warmup: int, device: str) -> float:
    """Median wall seconds of `iterations` calls of `fn` after `warmup` untimed ones (synchronised on CUDA)."""
    seconds = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def kernel_rows(num_classes: int, frame_size: int, num_frames: int, widths, batch: int, threads: int, device: str,
                iterations: int, warmup: int, seed: int = 0) -> list[dict]:
    """One row per (embedder, format, precision): median seconds of one forward of `batch` clips, the convolutions'
    multiply-adds and GFLOP/s, and `speedup` against the classic embedder's contiguous fp32 forward."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        facts = embedder_facts(num_classes, frame_size, num_frames, widths)
        generator = torch.Generator(device).manual_seed(seed)
        clips = torch.randn(batch, num_frames, 3, frame_size, frame_size, generator=generator, device=device)
        config = config_name(num_classes, frame_size, num_frames)
        rows = []
        for name in ("reference", "hf_vdd"):
            torch.manual_seed(seed)
            net = (ClassicConvNet3D(num_classes, tuple(widths)) if name == "reference"
                   else ConvNet3D(num_classes=num_classes, widths=tuple(widths)))
            net = net.to(device).eval().requires_grad_(False)
            for fmt in FORMATS:
                memory_format = torch.channels_last_3d if fmt == "channels_last" else torch.contiguous_format
                net = net.to(memory_format=memory_format)
                for precision in PRECISIONS:
                    def forward(net=net, precision=precision):
                        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16,
                                                                    enabled=precision == "bf16"):
                            net.embed(clips)

                    seconds = median_seconds(forward, iterations, warmup, device)
                    gmac = batch * facts[name]["conv_macs_per_clip"] / 1e9
                    rows.append({"config": config, "threads": threads, "device": device, "embedder": name,
                                 "format": fmt, "precision": precision, "batch": batch, "median_s": seconds,
                                 "gmac": gmac, "gflops": 2 * gmac / seconds})
    finally:
        torch.set_num_threads(previous)
    base = rows[0]["median_s"]  # the classic embedder, contiguous, fp32: what the classic loop runs
    for r in rows:
        r["speedup"] = base / r["median_s"]
    return rows


def kernel_table(rows: list[dict]) -> str:
    """Markdown table of `kernel_rows` results."""
    lines = ["| config | threads | device | embedder | format | precision | median s/forward | conv GMAC | GFLOP/s | "
             "forward speed-up vs classic |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['threads']} | {r['device']} | {r['embedder']} | {r['format']} | "
                     f"{r['precision']} | {r['median_s']:.4f} | {r['gmac']:.2f} | {r['gflops']:.1f} | "
                     f"{r['speedup']:.2f}x |")
    return "\n".join(lines)
