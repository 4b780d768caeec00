"""Speed and memory of one distillation iteration: hf_vdd's DM and IDTD against a classic DM loop (what
`recipes/speed.py` runs; see docs/performance.md).

The classic loop is VDSD's DM baseline (`yuz1wan/video_distillation`, `distill_baseline.py --method DM` with
`--model ConvNet3D`), written here in plain torch: every iteration a freshly initialised ConvNet3D; per class
`embed(real).detach()`, `embed(syn)`, the squared distance of the two mean embeddings, summed over classes; one
backward and SGD (momentum 0.5) on the synthetic pixels. No augmentation (VDSD's DM branch calls no DiffAugment).

A case is one (shape, threads, device, implementation). `run_case(case)` times it in this process;
`run_isolated(case)` runs it in a fresh Python (`python -m hf_vdd.speed '<case json>'`) so that its peak RSS
(`ru_maxrss`, a process-wide maximum) belongs to that case alone.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch import nn

from .data.decoding import normalize
from .utils import atomic_folder, keep_freed_memory

IMPLS = {"reference": "reference (classic DM loop)", "dm-noaug": "hf_vdd DM, augment 0",
         "dm-cl": "hf_vdd DM, augment 0, channels_last", "dm-bf16": "hf_vdd DM, augment 0, channels_last, bf16",
         "dm-classes": "hf_vdd DM, augment 0, all classes per forward", "dm": "hf_vdd DM, augment 1 (default)",
         "idtd": "hf_vdd IDTD (default)"}
RESULT_PREFIX = "HF_VDD_SPEED_RESULT "
RESULT_MARKERS = ("speed.json", "memory.json", "kernels.json")  # hf_vdd wrote a results folder holding one
REPO = Path(__file__).resolve().parents[1]
KEPT = None  # whether a case ran with `keep_freed_memory()` (the recipes' allocator settings); None in-process


def config_name(num_classes: int, frame_size: int, num_frames: int) -> str:
    """How the tables name a shape: `5 classes, 64x64x8`."""
    return f"{num_classes} classes, {frame_size}x{frame_size}x{num_frames}"


@dataclass
class Case:
    """One timed measurement: `impl` on `num_classes` classes of `real_per_class` random clips
    `(num_frames, 3, frame_size, frame_size)`, IPC 1, `batch_real = real_per_class`."""

    impl: str
    num_classes: int
    frame_size: int
    num_frames: int
    threads: int = 1
    device: str = "cpu"
    iterations: int = 5
    warmup: int = 1
    real_per_class: int = 8
    widths: tuple[int, ...] = (64, 128, 128)
    seed: int = 0

    @property
    def config(self) -> str:
        return config_name(self.num_classes, self.frame_size, self.num_frames)


class ClassicConvNet3D(nn.Module):
    """VDSD's ConvNet3D (`networks.py`, built by `get_network("ConvNet3D")` with net_width 128, net_depth 3,
    no normalisation, max pooling): per block Conv3d kernel (3, 7, 7), stride (1, 2, 2), padding (1, 3, 3), ReLU,
    then MaxPool3d (1, 2, 2) after the first block and 2 (time too) after the others; the first block is 64 wide
    whatever net_width, hence `widths=(64, 128, 128)`; a 1x1x1 logit conv. `embed`: the flattened feature map.

    Input `(N, T, C, H, W)` float in normalised space; `embed` → `(N, D)`.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 128)):
        super().__init__()
        layers, c = [], 3
        for i, w in enumerate(widths):
            layers += [nn.Conv3d(c, w, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)), nn.ReLU(inplace=True),
                       nn.MaxPool3d((1, 2, 2) if i == 0 else 2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.logit = nn.Conv3d(c, num_classes, kernel_size=1)  # in the parameter count, unused by `embed`

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.transpose(1, 2)).flatten(1)


def embedder_facts(num_classes: int, frame_size: int, num_frames: int, widths) -> dict[str, dict[str, int]]:
    """Parameters, embedding length and convolution multiply-adds per clip of the reference embedder and of
    hf_vdd's (`ConvNet3D(widths=...)`, what DM and IDTD sample), for `(num_frames, 3, frame_size, frame_size)` clips.
    Equal widths give equal parameters; hf_vdd pools only space, so its later blocks see every frame."""
    from .models import ConvNet3D

    facts = {}
    with torch.device("meta"):
        for name, net in (("reference", ClassicConvNet3D(num_classes, tuple(widths))),
                          ("hf_vdd", ConvNet3D(num_classes=num_classes, widths=tuple(widths)))):
            macs = []

            def count(module, inputs, output, macs=macs):
                macs.append(output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size))

            hooks = [m.register_forward_hook(count) for m in net.features if isinstance(m, nn.Conv3d)]
            dim = net.embed(torch.empty(1, num_frames, 3, frame_size, frame_size)).shape[1]
            for h in hooks:
                h.remove()
            facts[name] = {"parameters": sum(p.numel() for p in net.parameters()), "embedding_dim": int(dim),
                           "conv_macs_per_clip": int(sum(macs))}
    return facts


def embedding_dim(frame_size: int, num_frames: int, widths) -> int:
    """Length of the reference embedding for this shape (0 when the clip is too small for its pooling)."""
    try:
        with torch.device("meta"):
            return int(ClassicConvNet3D(1, tuple(widths)).embed(
                torch.empty(1, num_frames, 3, frame_size, frame_size)).shape[1])
    except RuntimeError:
        return 0


def random_videos(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """`(N, T, H, W, 3)` uint8 noise clips and their `(N,)` labels, `real_per_class` per class (seeded)."""
    rng = np.random.default_rng(case.seed)
    n = case.num_classes * case.real_per_class
    videos = rng.integers(0, 256, (n, case.num_frames, case.frame_size, case.frame_size, 3), dtype=np.uint8)
    return videos, np.repeat(np.arange(case.num_classes), case.real_per_class)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reference_seconds(case: Case, videos: np.ndarray, labels: np.ndarray) -> tuple[list[float], str]:
    """Seconds of each iteration of the classic loop (warm-up included), and the device it computed on."""
    device = case.device
    real = normalize(torch.from_numpy(videos).permute(0, 1, 4, 2, 3).float() / 255)  # preloaded, as VDSD --preload
    by_class = [np.flatnonzero(labels == c) for c in range(case.num_classes)]
    syn = torch.cat([real[idx[:1]] for idx in by_class]).to(device).requires_grad_(True)  # init real, IPC 1
    optimizer = torch.optim.SGD([syn], lr=10.0, momentum=0.5)
    rng, seconds = np.random.default_rng(case.seed), []
    for _ in range(case.warmup + case.iterations):
        start = time.perf_counter()
        net = ClassicConvNet3D(case.num_classes, tuple(case.widths)).to(device)  # a fresh random embedder
        for p in net.parameters():
            p.requires_grad_(False)
        loss = torch.zeros((), device=device)
        for c in range(case.num_classes):
            img_real = real[rng.permutation(by_class[c])[:case.real_per_class]].to(device)
            output_real = net.embed(img_real).detach()
            output_syn = net.embed(syn[c:c + 1])
            loss = loss + ((output_real.mean(0) - output_syn.mean(0)) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds, syn.device.type


def hf_vdd_train_set(videos: np.ndarray, labels: np.ndarray, case: Case):
    """The clips as a `datasets.Dataset` (`Array4D` video column, `ClassLabel`) loaded and preloaded by hf_vdd."""
    from datasets import Array4D, ClassLabel, Dataset, Features

    from .data.loading import load_video_dataset

    features = Features({"video": Array4D(shape=videos.shape[1:], dtype="uint8"),
                         "label": ClassLabel(names=[f"class{c}" for c in range(case.num_classes)])})
    ds = Dataset.from_dict({"video": videos, "label": labels}, features=features)
    train = load_video_dataset(ds, split=None, num_frames=case.num_frames, frame_size=case.frame_size)
    return train.preload(show_progress=False)


def hf_vdd_seconds(case: Case, train_set) -> tuple[list[float], str]:
    """Seconds of each iteration (`output.stats["iteration_seconds"]`) of hf_vdd's DM or IDTD, and the device it
    computed on (`cuda` when the call allocated CUDA memory: the result itself is gathered back on the CPU)."""
    from .distillers import DMConfig, DMDistiller, IDTDConfig, IDTDDistiller

    total = case.warmup + case.iterations
    common = {"ipc": 1, "iterations": total, "batch_real": case.real_per_class, "embed_widths": list(case.widths),
              "log_every": total, "seed": case.seed}
    if case.impl == "idtd":
        distiller = IDTDDistiller(IDTDConfig(**common))
    else:
        distiller = DMDistiller(DMConfig(**common, augment_strength=0.0 if case.impl != "dm" else 1.0,
                                         channels_last=case.impl in ("dm-cl", "dm-bf16"),
                                         class_batch=case.num_classes if case.impl == "dm-classes" else 1))
    from .training import make_accelerator

    bf16 = case.impl == "dm-bf16"
    if bf16:  # a bf16 Accelerator needs a fresh state in a process that made another (--isolate false)
        AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(cpu=case.device == "cpu", mixed_precision="bf16") if bf16 else \
        make_accelerator() if case.device == "cuda" else None  # the Accelerator the recipes make
    try:
        output = distiller(train_set, accelerator=accelerator)
    finally:
        if bf16:
            AcceleratorState._reset_state(reset_partial_state=True)
    sync(case.device)
    used_cuda = case.device == "cuda" and torch.cuda.max_memory_allocated() > 0
    return list(output.stats["iteration_seconds"]), "cuda" if used_cuda else "cpu"


def run_case(case: Case) -> dict:
    """Time `case` in this process; returns its row (seconds, median, spread, memory, compute device)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(case.threads)
    try:
        videos, labels = random_videos(case)
        data = hf_vdd_train_set(videos, labels, case) if case.impl != "reference" else None
        if case.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 - MiB (KiB on Linux)
        rss_before, start, cpu = rss(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        if data is None:
            seconds, compute = reference_seconds(case, videos, labels)
        else:
            seconds, compute = hf_vdd_seconds(case, data)
        row = summarise(case, seconds[case.warmup:])  # `call_s`: the whole call, set-up included, synchronised
        end = resource.getrusage(resource.RUSAGE_SELF)  # user vs kernel CPU: page faults show as kernel time
        row |= {"cpu_user_s": end.ru_utime - cpu.ru_utime, "cpu_sys_s": end.ru_stime - cpu.ru_stime,
                "minor_faults": end.ru_minflt - cpu.ru_minflt, "malloc_kept": KEPT, "compute_device": compute,
                "call_s": time.perf_counter() - start, "peak_rss_mb": round(rss(), 1),
                "rss_before_mb": round(rss_before, 1),
                "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if case.device == "cuda" else None}
        return row
    finally:
        torch.set_num_threads(previous)


def summarise(case: Case, seconds: list[float]) -> dict:
    q = statistics.quantiles(seconds, n=4, method="inclusive") if len(seconds) > 1 else [seconds[0]] * 3
    return asdict(case) | {"config": case.config, "impl_name": IMPLS[case.impl], "seconds": seconds,
                           "median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
                           "q1_s": q[0], "q3_s": q[2], "isolated": False}


def child_env(threads: int | None = None) -> dict[str, str]:
    """Environment of a child Python: this checkout's hf_vdd first on the path, `threads` OpenMP threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_isolated(case: Case, timeout: float | None = None) -> dict:
    """`run_case` in a fresh Python, so that `peak_rss_mb` is this case's own. A crash gives a row with `error`."""
    cmd = [sys.executable, "-m", "hf_vdd.speed", json.dumps(asdict(case))]
    try:
        proc = subprocess.run(cmd, env=child_env(case.threads), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return asdict(case) | {"config": case.config, "impl_name": IMPLS[case.impl], "error": f"timeout {timeout}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return asdict(case) | {"config": case.config, "impl_name": IMPLS[case.impl],
                               "error": f"exit {proc.returncode}: {tail}", "stderr_tail": proc.stderr[-3000:]}
    return json.loads(lines[-1][len(RESULT_PREFIX):]) | {"isolated": True}


def environment(devices) -> dict:
    """Library versions, the CPU's model name (from /proc/cpuinfo where there is one) and core count, the GPU."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name() if "cuda" in devices else None}


def add_speedups(rows: list[dict]) -> list[dict]:
    """`speedup` = reference median / row median, matched on (config, threads, device)."""
    ref = {(r["config"], r["threads"], r["device"]): r["median_s"] for r in rows
           if r["impl"] == "reference" and "median_s" in r}
    for r in rows:
        base = ref.get((r["config"], r["threads"], r["device"]))
        r["speedup"] = base / r["median_s"] if base and r.get("median_s") else None
    return rows


def embedder_table(embedders: dict[str, dict]) -> str:
    """Markdown table of `{config: embedder_facts(...)}`."""
    lines = ["| config | embedder | parameters | conv GMAC per clip | embedding length |", "|---|---|---|---|---|"]
    for config, facts in embedders.items():
        for name, f in facts.items():
            lines.append(f"| {config} | {name} | {f['parameters']:,} | {f['conv_macs_per_clip'] / 1e9:.3f} | "
                         f"{f['embedding_dim']} |")
    return "\n".join(lines)


def _memory_cell(r: dict) -> str:
    if r.get("peak_cuda_mb") is not None:
        return f"{r['peak_cuda_mb']:.0f} MiB CUDA, {r['peak_rss_mb']:.0f} MiB RSS"
    grew = f" (+{r['peak_rss_mb'] - r['rss_before_mb']:.0f})" if r.get("isolated") else " (process max)"
    return f"{r['peak_rss_mb']:.0f} MiB RSS{grew}"


def speed_table(rows: list[dict]) -> str:
    """Markdown table, one line per row (see docs/performance.md for the columns)."""
    lines = ["| config | threads | device | impl | median s/iteration | spread (min-max) | speed-up vs reference "
             "| peak memory |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        impl = r["impl_name"]
        if r.get("compute_device") and r["compute_device"].split(":")[0] != r["device"]:
            impl += f" [computed on {r['compute_device']}]"
        if "error" in r:
            lines.append(f"| {r['config']} | {r['threads']} | {r['device']} | {impl} | failed: {r['error']} | | | |")
            continue
        speedup = f"{r['speedup']:.2f}x" if r.get("speedup") else "-"
        lines.append(f"| {r['config']} | {r['threads']} | {r['device']} | {impl} | {r['median_s']:.4f} | "
                     f"{r['min_s']:.4f}-{r['max_s']:.4f} | {speedup} | {_memory_cell(r)} |")
    return "\n".join(lines)


def write_results(folder: Path, name: str, payload: dict, markdown: str, extra: dict | None = None) -> None:
    """Replace `<name>*` files (`name`.json/.md and `extra`) in `folder` atomically, keeping the other mode's files
    of an earlier run. `folder` must hold one of `RESULT_MARKERS` if it holds anything."""
    keep = {p.name: p.read_bytes() for p in folder.glob("*") if p.is_file() and not p.name.startswith(name)} \
        if folder.is_dir() else {}
    with atomic_folder(folder, marker=RESULT_MARKERS) as tmp:
        for file_name, data in (keep | (extra or {})).items():
            (tmp / file_name).write_bytes(data)
        (tmp / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
        (tmp / f"{name}.md").write_text(markdown)


if __name__ == "__main__":  # the isolated child of `run_isolated`: the allocator settings every recipe runs with
    KEPT = keep_freed_memory()
    fields = json.loads(sys.argv[1])
    print(RESULT_PREFIX + json.dumps(run_case(Case(**fields | {"widths": tuple(fields["widths"])}))), flush=True)
