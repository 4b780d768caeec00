"""The benchmark's pieces: per-cell cost tracking, the leaderboard, plots, and the results dataset repo folder.

`recipes/benchmark.py` runs the cells; everything it writes is built here. One record per cell
(dataset, method, IPC, student) holds the evaluation report (top-1/top-5/AUC/F1 mean ± std, per-class accuracy),
distillation wall time, peak RSS, peak CUDA memory (GPU only), stored bytes and the ratio to full-data accuracy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from dataclasses import fields
from pathlib import Path

import torch
from datasets import Dataset
from huggingface_hub import DatasetCardData

from . import benchmark_partial as partial
from .benchmark_plots import plot_results
from .data.loading import default_video_shape, load_video_dataset
from .data.sources import shareable, shareable_command
from .diffusion import load_pool
from .diffusion.select import student_shaped
from .distillers import Distiller, get_distiller
from .hub import check_models, render_dataset_card
from .training import TrainConfig, evaluate_distilled, protocol_config
from .utils import atomic_folder, precision_key
from .version import __version__


class PeakMemory:
    """Peak resident memory (MB) of this process while the block runs (sampled every 50 ms), and peak CUDA memory."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_rss_mb, self.peak_cuda_mb = interval, 0.0, None
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):  # not Linux: lifetime peak instead
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "peak_rss_mb": self.peak_rss_mb, "peak_cuda_mb": self.peak_cuda_mb}

    @classmethod
    def restored(cls, measured: dict) -> PeakMemory:
        """The costs `to_dict` kept of a block measured in an earlier process."""
        cost = cls()
        cost.seconds, cost.peak_rss_mb, cost.peak_cuda_mb = (measured.get(k) for k in ("seconds", "peak_rss_mb",
                                                                                      "peak_cuda_mb"))
        return cost

    def __enter__(self):
        self.peak_rss_mb = self.rss_mb()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self._stop.set()
        self._thread.join()
        self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())
        if torch.cuda.is_available():
            self.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
        return False


def cell_key(r: dict) -> tuple:
    return r["dataset"], r["method"], r["ipc"], r.get("student", "convnet3d")


def settings_key(settings: dict) -> str:
    """A short hash of everything that changes a cell's numbers (a stored cell is reused only if it matches)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fmt(m: dict) -> str:
    return f"{m['mean']:.1f} ± {m['std']:.1f}"


def add_full_ratios(records: list[dict]) -> None:
    """`ratio_to_full`: a cell's mean top-1 over the full-data cell's (same dataset and student)."""
    full = {(r["dataset"], r.get("student", "convnet3d")): r["top1"]["mean"] for r in records if r["method"] == "full"}
    for r in records:
        ref = full.get((r["dataset"], r.get("student", "convnet3d")))
        r["ratio_to_full"] = r["top1"]["mean"] / ref if ref else None


def overrides_text(record: dict) -> str:
    """A cell's `--overrides` (distiller fields, then `train.` fields) as `key=value` pairs; `defaults` if none."""
    pairs = [f"{k}={json.dumps(v)}" for k, v in sorted(record.get("distiller_overrides", {}).items())]
    pairs += [f"train.{k}={json.dumps(v)}" for k, v in sorted(record.get("train_overrides", {}).items())]
    return ", ".join(pairs) or "defaults"


def _seconds(record: dict) -> str:
    """Distillation seconds, with DAViD's policy search as a share of its final distillation."""
    share = record.get("distill_stats", {}).get("policy_fraction")
    return f"{record['distill_seconds']:.1f}" + (f" (search {share:.0%} of final)" if share else "")


def cells_table(records: list[dict]) -> str:
    """Every cell, one row each."""
    lines = ["| dataset | student | method | IPC | top-1 | top-5 | AUC | F1 | ratio to full | distil s | peak RSS MB "
             "| stored MB | setting | overrides |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ratio = f"{r['ratio_to_full']:.2f}" if r.get("ratio_to_full") is not None else "–"
        stored = f"{r['stored_bytes'] / 2**20:.2f}" if r.get("stored_bytes") else "–"
        rss = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "–"
        lines.append(f"| {r['dataset']} | {r.get('student', 'convnet3d')} | {r['method']} | {r['ipc'] or 'all'} | "
                     f"{_fmt(r['top1'])} | {_fmt(r['top5'])} | {_fmt(r['auc'])} | {_fmt(r['f1'])} | {ratio} | "
                     f"{_seconds(r)} | {rss} | {stored} | {r['setting']} | {overrides_text(r)} |")
    return "\n".join(lines) + "\n"


def leaderboard(records: list[dict], student: str = "convnet3d") -> str:
    """The papers' Table 1: one row per method, one column per (dataset, IPC), top-1 mean ± std; best in bold."""
    recs = [r for r in records if r.get("student", "convnet3d") == student]
    cols = sorted({(r["dataset"], r["ipc"]) for r in recs if r["ipc"] is not None}, key=lambda c: (c[0], c[1]))
    methods = list(dict.fromkeys(r["method"] for r in recs if r["ipc"] is not None))
    by = {(r["dataset"], r["method"], r["ipc"]): r for r in recs}
    best = {c: max((by[(c[0], m, c[1])]["top1"]["mean"] for m in methods if (c[0], m, c[1]) in by), default=None)
            for c in cols}
    if not cols:  # only the reference rows were run (full, static): one column per dataset
        cols = sorted({(r["dataset"], None) for r in recs if r["method"] in ("full", "static")}, key=str)
    head = "| method | " + " | ".join(f"{d} IPC {k}" if k else f"{d} (all clips)" for d, k in cols) + " |"
    lines = [head, "|---|" + "---|" * len(cols)]
    for ref in ("full", "static"):
        vals = [_fmt(by[(d, ref, None)]["top1"]) if (d, ref, None) in by else "–" for d, _ in cols]
        if any(v != "–" for v in vals):
            lines.append(f"| {ref} data | " + " | ".join(vals) + " |")
    for m in methods:
        cells = []
        for d, k in cols:
            r = by.get((d, m, k))
            text = _fmt(r["top1"]) if r else "–"
            cells.append(f"**{text}**" if r and r["top1"]["mean"] == best[(d, k)] else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    # what each row ran with: the student setting and every per-method override (none hidden)
    notes = dict.fromkeys(f"- `{r['method']}`: {overrides_text(r)}; student {r.get('setting', '–')}" for r in recs
                          if r["ipc"] is not None or r["method"] in ("full", "static"))
    return "\n".join(lines) + "\n\nSettings per row:\n\n" + "\n".join(notes) + "\n"


def save_results_repo(records: list[dict], folder: str | os.PathLike, repo_id: str = "<org>/hf_vdd-benchmark",
                      command: str = "") -> Path:
    """Write the results dataset repo folder: card, `data/train-*.parquet` (one row per cell), JSON, table, plots."""
    add_full_ratios(records)
    folder = Path(folder)
    with atomic_folder(folder, marker="results.json") as tmp:
        rows = [{"dataset": r["dataset"], "method": r["method"], "ipc": r["ipc"] or 0,
                 "student": r.get("student", "convnet3d"), "top1": r["top1"]["mean"], "top1_std": r["top1"]["std"],
                 "top5": r["top5"]["mean"], "auc": r["auc"]["mean"], "f1": r["f1"]["mean"],
                 "ratio_to_full": r.get("ratio_to_full"), "distill_seconds": r["distill_seconds"],
                 "peak_rss_mb": r.get("peak_rss_mb"), "stored_bytes": r.get("stored_bytes"),
                 "per_class": [float(x) for x in r["per_class"]], "setting": r["setting"]} for r in records]
        (tmp / "data").mkdir()
        Dataset.from_list(rows).to_parquet(str(tmp / "data" / "train-00000-of-00001.parquet"))
        (tmp / "results.json").write_text(json.dumps(records, indent=2, default=str))
        (tmp / "results.md").write_text(cells_table(records))
        plots = plot_results(records, tmp)
        board = leaderboard(records)
        card = render_dataset_card(
            DatasetCardData(pretty_name="hf_vdd benchmark results", tags=["hf_vdd", "dataset-distillation",
                                                                          "benchmark"]),
            template="results_card.md", version=__version__, board=board, repo_id=repo_id,
            command=shareable_command(command),
            images="\n".join(f"![{p.stem}]({p.name})" for p in plots))
        card.save(tmp / "README.md")
    return folder


def load_records(out: Path, force: bool = False) -> list[dict]:
    """The stored cells of a benchmark output folder (none with `force`)."""
    for path in (out / "results" / "results.json", out / "results.json"):  # the second: older layout
        if path.exists() and not force:
            return [r | {"command": shareable_command(r.get("command"))}  # older runs stored the machine's paths
                    for r in shareable(json.loads(path.read_text()))]
    return []


def check_overrides(overrides: dict, methods: list[str]) -> None:
    """Fail before any work on an override key that is not in --methods or a field its config does not have."""
    if not isinstance(overrides, dict):
        raise ValueError(f"--overrides must be a JSON object of methods, e.g. '{{\"dm\": {{\"iterations\": 200}}}}', "
                         f"got {json.dumps(overrides)[:80]}.")
    train_fields = {f.name for f in fields(TrainConfig)}
    for method, kwargs in overrides.items():
        if method not in methods:
            raise ValueError(f"--overrides has key '{method}', which is not in --methods {methods}; add it there "
                             f"or remove the override.")
        if not isinstance(kwargs, dict):
            raise ValueError(f"--overrides['{method}'] must be a JSON object of config fields, got {kwargs!r}.")
        config_fields = set() if method in ("full", "static") else {
            f.name for f in fields(get_distiller(method.split("@")[0]).config_class)}
        bad = sorted(set(kwargs) - config_fields - {"train"})
        bad += sorted(f"train.{k}" for k in set(kwargs.get("train", {})) - train_fields)
        if bad:
            raise ValueError(f"--overrides['{method}'] has unknown field(s) {bad}; the distiller config takes "
                             f"{sorted(config_fields)} and 'train' takes TrainConfig fields {sorted(train_fields)}.")
        check_models(kwargs, kwargs.get("train", {}))
        TrainConfig(**kwargs.get("train", {}))  # each value's kind and range, before any work (as the flags')
        if config_fields:
            get_distiller(method.split("@")[0]).config_class(**{k: v for k, v in kwargs.items() if k != "train"})


def effective(config) -> dict:
    """A distiller or student config's values, defaults included, less the fields that never change a cell's
    numbers: `Distiller.bookkeeping_fields` (where checkpoints go, how often the loss is logged) and progress bars."""
    skip = {*Distiller.bookkeeping_fields, "show_progress"}
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}


def student_config(args, ipc: int | None, student: str, train_kwargs: dict, show_progress: bool = False):
    """The `TrainConfig` a cell's students run with: the protocol's values, the fast protocol's budget flags, the
    cell's `"train"` overrides."""
    budget = ({"steps": args.full_steps if ipc is None else args.steps, "batch_size": args.batch_size}
              if args.protocol == "fast" else {})
    return protocol_config(args.protocol, budget | {"student": student, "runs": args.runs, "seed": args.seed,
                                                    "show_progress": show_progress} | train_kwargs)


def distiller_settings(method: str, ipc: int | None, seed: int, overrides: dict) -> dict:
    """The distiller config a cell runs with, defaults included (`{}` for the full-data and static cells)."""
    if ipc is None:
        return {}
    kwargs = {k: v for k, v in overrides.get(method, {}).items() if k != "train"}
    return effective(get_distiller(method.split("@")[0]).config_class(ipc=ipc, seed=seed, **kwargs))


def cell_settings(args, overrides: dict, frame_size: int, num_frames: int, method: str,
                  ipc: int | None, student: str, amp: dict | None = None) -> dict:
    """Everything that changes a cell's numbers: a stored cell is reused only when these are equal. `amp` is
    `{"mixed_precision": ...}` when the run autocasts (distillation and students), empty in fp32. The distiller's
    and the students' settings are their whole configs, defaults included, so a stored cell is run again when a
    default it used has changed since (an override that spells out a default is the same cell)."""
    train_kwargs = overrides.get(method, {}).get("train", {})
    return {"frame_size": frame_size, "num_frames": num_frames, "runs": args.runs, "batch_size": args.batch_size,
            "steps": args.full_steps if ipc is None else args.steps, "seed": args.seed, "student": student,
            "distiller": distiller_settings(method, ipc, args.seed, overrides),
            "train": effective(student_config(args, ipc, student, train_kwargs)),
            "pool_dir": args.pool_dir, "protocol": args.protocol, "hf_vdd_version": __version__} | (amp or {})


def update_readme(readme: Path, key: str, table: str) -> None:
    """Replace the block between `<!-- results:<key>:start -->` and `<!-- results:<key>:end -->`."""
    text = readme.read_text()
    start, end = f"<!-- results:{key}:start -->", f"<!-- results:{key}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block; add one where the table should go.")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + table + rest[rest.index(end):])


def run_cells(args, overrides: dict, records: list[dict], out: Path, accelerator, command: str) -> list[dict]:
    """Compute every cell of `args` (datasets × methods × IPCs × students) that `records` lacks or holds with other
    settings; a distilled set is shared by variants that differ only in student training. The main process saves
    each distilled set and the results folder after every cell, and inside an open cell keeps the set and each
    finished student run under `partial/` (`benchmark_partial`): a killed run resumes where it stopped. Returns the
    records."""
    main_proc, amp = accelerator.is_main_process, precision_key(accelerator)
    done = {(cell_key(r), r.get("settings_key")) for r in records}
    shared_command = shareable_command(command)  # what records show: the command without the machine's folders
    distilled_sets = {}
    for dataset in args.datasets:
        label = shareable(str(dataset))  # how records and cards name it: never the machine's folders
        size, frames = default_video_shape(dataset, args.frame_size, args.num_frames, toy_frames=16)
        cells = [(m, None) for m in args.methods if m in ("full", "static")]
        cells += [(m, k) for m in args.methods if m not in ("full", "static") for k in args.ipc]
        todo = [c for c in cells if not all(
            ((label, *c, s), settings_key(cell_settings(args, overrides, size, frames, *c, s, amp))) in done
            for s in args.students)]
        if not todo:
            continue
        full_train = load_video_dataset(dataset, "train", num_frames=frames, frame_size=size).preload(
            show_progress=main_proc)
        full_test = load_video_dataset(dataset, "test", num_frames=frames, frame_size=size).preload(
            show_progress=main_proc)
        candidates = {}  # realism's tracked and scored candidates, reused by its next IPC (same other settings)
        for method, ipc in todo:
            static = method == "static"
            train, test = full_train.with_options(static=static), full_test.with_options(static=static)
            kwargs = dict(overrides.get(method, {}))
            train_kwargs = kwargs.pop("train", {})
            # variants that differ only in student training (e.g. realism@hard) reuse the distilled set
            memo_key = (dataset, method.split("@")[0], ipc, json.dumps(kwargs, sort_keys=True))
            name = f"{Path(str(dataset)).name}-ipc{ipc}-{method.replace('@', '-')}"
            folder = partial.partial_dir(out, name)  # the open cell's kept work
            set_key = settings_key({"dataset": str(dataset), "memo": memo_key, "seed": args.seed, "size": size,
                                    "distiller": distiller_settings(method, ipc, args.seed, overrides),
                                    "frames": frames, "pool_dir": args.pool_dir, "hf_vdd_version": __version__} | amp)
            kept = (None if ipc is None or memo_key in distilled_sets
                    else partial.load_partial_set(folder, set_key))
            if ipc is None:
                with PeakMemory() as cost:
                    data = train
            elif memo_key in distilled_sets:
                data, cost = distilled_sets[memo_key]
                data = dataclasses.replace(data, eval_results=None)
            elif kept is not None:
                data, cost = kept[0], PeakMemory.restored(kept[1])
                if main_proc:
                    print(f"{dataset} {method} ipc={ipc}: the distilled set an interrupted run kept in {folder}",
                          flush=True)
            else:
                with PeakMemory() as cost:
                    cls = get_distiller(method.split("@")[0])
                    source = (load_pool(args.pool_dir, class_names=train.class_names)
                              if getattr(cls, "needs_pool", False) else train)
                    extra = {"real": train} if getattr(cls, "needs_real", False) else {}  # DM-MMD
                    resume = partial.checkpoint_settings(cls, folder, set_key, args.checkpointing_steps, accelerator)
                    if getattr(cls, "reuses_candidates", False):
                        extra["candidate_cache"] = candidates
                    data = cls(ipc=ipc, seed=args.seed, **kwargs, **resume)(source, accelerator=accelerator, **extra)
                    if getattr(cls, "needs_pool", False):  # a pool of another shape: resized to the student's
                        data = student_shaped(data, frames, size)
                # a resumed cell: its earlier runs' time too (and realism's reused candidates: their tracking)
                cost.seconds += data.stats.get("resumed_seconds", 0.0)
            if ipc is not None:
                distilled_sets[memo_key] = (data, cost)
                if main_proc and kept is None:  # kept until the cell is recorded: a killed run does not distil again
                    partial.save_partial_set(data, folder, set_key, extra=cost.to_dict())
            for student in args.students:
                settings = cell_settings(args, overrides, size, frames, method, ipc, student, amp)
                if ((label, method, ipc, student), settings_key(settings)) in done:
                    continue
                stale = [r for r in records if cell_key(r) == (label, method, ipc, student)]
                if stale and main_proc:
                    print(f"{dataset} {method} ipc={ipc} [{student}]: settings changed since the stored result; "
                          f"running it again", flush=True)
                records = [r for r in records if cell_key(r) != (label, method, ipc, student)]
                train_config = student_config(args, ipc, student, train_kwargs, show_progress=main_proc)
                length = f"{train_config.epochs} epochs" if train_config.epochs else f"{train_config.steps} steps"
                setting = (f"{frames}x{size}x{size}, {train_config.runs} runs, {length}, bs {train_config.batch_size}"
                           + ("" if args.protocol == "fast" else f", {args.protocol}") + "".join(
                               f", {v}" for v in amp.values()))  # what the student ran
                key = settings_key(settings | {"set": set_key})
                kept_runs = partial.load_partial_runs(folder, student, key)
                if kept_runs and main_proc:
                    print(f"{dataset} {method} ipc={ipc} [{student}]: {len(kept_runs)} student run(s) kept from an "
                          f"interrupted run", flush=True)
                report = evaluate_distilled(data, test, train_config, accelerator=accelerator, done_runs=kept_runs,
                                            on_run=lambda runs, f=folder, s=student, k=key: main_proc and
                                            partial.save_partial_runs(f, s, k, runs))
                distilled = ipc is not None
                if distilled:
                    data.eval_results = (data.eval_results or {}) | {student: report.to_dict()}
                records.append(shareable(report.to_dict() | {
                    "dataset": label, "method": method, "ipc": ipc, "student": student, "setting": setting,
                    "class_names": test.class_names, "distill_seconds": cost.seconds if distilled else 0.0,
                    "peak_rss_mb": cost.peak_rss_mb, "peak_cuda_mb": cost.peak_cuda_mb,
                    "distiller_overrides": kwargs if distilled else {}, "train_overrides": train_kwargs,
                    "stored_bytes": data.storage_bytes() if distilled else None,
                    "distill_stats": {k: v for k, v in data.stats.items() if k not in
                                      ("loss_curve", "rewards", "q_tables")} if distilled else {},
                    "repo_folder": name if distilled else None, "hf_vdd_version": __version__,
                    "command": shared_command, "settings": settings,
                    "settings_key": settings_key(settings)}))
                done.add(((label, method, ipc, student), settings_key(settings)))
                if main_proc:
                    print(f"{dataset} {method} ipc={ipc} [{student}]: {report.summary()} "
                          f"(per class {[round(p) for p in report.per_class]})", flush=True)
            if ipc is not None and main_proc:
                data.command = data.command or command  # the card's Reproduce section: the run that made it
                data.save(out / name, repo_id=f"{args.hub_repo_id.split('/')[0]}/{name}" if args.hub_repo_id
                          else None, overwrite=True)
            if main_proc:
                save_results_repo(records, out / "results", args.hub_repo_id or "<org>/hf_vdd-benchmark", command)
                partial.remove_partial(folder)  # recorded: nothing left to resume
    return records
