"""The memory mode of `recipes/speed.py` (`--memory`): peak RSS of a whole `recipes/dm.py` run on ucf12 and on a
copy of ucf12 twice its size (symbolic links), each in its own process (see docs/performance.md)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .speed import REPO, child_env
from .utils import HfVddError, shared_data_dir


def doubled_videofolder(source: Path, target: Path) -> int:
    """Under `target/videos/<split>/<label>/`, two symbolic links to every video of `source` (a videofolder
    `<split>/<label>/<file>`): `<stem><ext>` and `<stem>-copy2<ext>`. Nothing is written under `source`.
    Returns the number of links."""
    count = 0
    for video in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in (".mp4", ".avi")):
        folder = target / "videos" / video.parent.relative_to(source)
        folder.mkdir(parents=True, exist_ok=True)
        for name in (video.name, f"{video.stem}-copy2{video.suffix}"):
            (folder / name).symlink_to(video.resolve())
            count += 1
    return count


def measure_recipe(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run `cmd` and return its exit code, wall seconds and peak RSS (`wait4`'s rusage of
    that child alone); stdout and stderr go to `log`."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"returncode": proc.returncode, "wall_s": time.perf_counter() - start,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def dm_memory_rows(dm_script: Path, iterations: int, frame_size: int, num_frames: int, threads: int,
                   seed: int = 0) -> tuple[list[dict], dict[str, bytes]]:
    """Peak RSS of `dm_script` (recipes/dm.py, IPC 1) on ucf12 and on a doubled ucf12 (`doubled_videofolder` in a
    temporary folder outside the repository and the data, removed afterwards). Returns a row per run and the logs
    `{memory-<name>.log: bytes}`."""
    source = shared_data_dir() / "ucf12" / "videos"
    if not source.is_dir():
        raise FileNotFoundError(f"--memory needs ucf12 at {source}; set HF_VDD_SHARED_DATA.")
    tmp = Path(tempfile.mkdtemp(prefix="hf_vdd-speed-memory-")).resolve()
    if REPO in tmp.parents or source in tmp.parents:
        shutil.rmtree(tmp)
        raise HfVddError(f"The temporary folder {tmp} lies inside {REPO} or the data; point TMPDIR elsewhere.")
    rows, logs = [], {}
    try:
        doubled_videofolder(source, tmp / "ucf12x2")
        env = child_env(threads) | {"HF_VDD_SHARED_DATA": str(shared_data_dir()),
                                    "HF_DATASETS_CACHE": str(tmp / "datasets-cache")}
        for name, dataset, videos in (("ucf12", "ucf12", source),
                                      ("ucf12x2", str(tmp / "ucf12x2"), tmp / "ucf12x2" / "videos")):
            out = tmp / f"out-{name}"
            cmd = [sys.executable, str(dm_script), "--dataset", dataset, "--ipc", "1", "--iterations", str(iterations),
                   "--frame_size", str(frame_size), "--num_frames", str(num_frames), "--seed", str(seed),
                   "--output_dir", str(out)]
            print(f"memory: recipes/dm.py on {name} ...", flush=True)
            row = measure_recipe(cmd, env, tmp / f"{name}.log")
            meta = json.loads((out / "distillation.json").read_text()) if (out / "distillation.json").is_file() else {}
            seconds = meta.get("stats", {}).get("iteration_seconds", [])[1:]  # the first is the warm-up
            rows.append(row | {"dataset": "ucf12" if name == "ucf12" else "ucf12 doubled (symlinks)",
                               "train_videos": sum(1 for p in (videos / "train").rglob("*") if p.is_file()),
                               "clip": f"{frame_size}x{frame_size}x{num_frames}", "iterations": iterations,
                               "command": shlex.join(cmd),
                               "median_iteration_s": statistics.median(seconds) if seconds else None})
            logs[f"memory-{name}.log"] = (tmp / f"{name}.log").read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # links and outputs only: links are removed, never followed
    return rows, logs


def memory_table(rows: list[dict]) -> str:
    lines = ["| dataset | train videos | clip | DM iterations | peak RSS (MiB) | wall s | median s/iteration |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        median = f"{r['median_iteration_s']:.3f}" if r.get("median_iteration_s") else "-"
        peak = f"{r['peak_rss_mb']:.0f}" if not r["returncode"] else f"failed (exit {r['returncode']})"
        lines.append(f"| {r['dataset']} | {r['train_videos']} | {r['clip']} | {r['iterations']} | {peak} | "
                     f"{r['wall_s']:.0f} | {median} |")
    return "\n".join(lines)
