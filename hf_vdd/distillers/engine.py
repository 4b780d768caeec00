"""The one class-parallel loop of the optimising distillers (DM, IDTD, DAViD).

A method supplies its per-iteration step (`step(it) -> summed loss of this process's classes`) and its per-class
state (`state(done) -> {class: ...}` for checkpoints); the engine does the rest, once:

1. split the classes over the processes (`engine.classes`; every random draw of a step is derived from
   `(seed, iteration, class)`, so N processes give the 1-process result);
2. run the iterations with a progress bar on the local main process, reduce and record the loss every `log_every`;
3. checkpoint every `checkpointing_steps` (the state of every class gathered, written atomically by the main
   process with the run it belongs to; the newest `checkpoints_total_limit` kept) and resume from one, refusing a
   checkpoint of another run (`resume()`);
4. call evaluation hooks; gather the classes of every process at the end (`gather`, back on the CPU).

Device and precision live here too: `engine.device` is `accelerator.device` (CPU without an accelerator), where the
methods put their embedders, teachers, real batches and synthetic tensors; `engine.autocast()` is the accelerator's
mixed-precision context (`--mixed_precision bf16|fp16`), entered around embeddings only, so synthetic pixels,
losses and optimiser state stay fp32 (with `no`, the default, it does nothing: results are byte-identical).
Random draws stay on CPU generators derived from `(seed, iteration, class)` and only their results move, so a
CUDA run draws the same numbers as a CPU run.

Checkpoints are `accelerator.save_state` folders (`hf_vdd/checkpoints.py`): the classes' states are gathered into
one `ClassStates` object registered with `register_for_checkpointing` on a dedicated checkpointing `Accelerator`
(built at the first save or resume), written atomically, pruned among the folders hf_vdd wrote, and resumed with
`load_state` after the run is checked to be the same.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable

import torch
from accelerate.utils import recursively_apply, send_to_device

from ..checkpoints import Checkpointer
from ..data.streaming import PrefetchingClassSampler
from ..utils import HfVddError, get_logger, precision_key, progress, runtime, seconds_since
from .matching import fresh_embedder, gather_classes, process_classes

logger = get_logger(__name__)


class ClassParallelEngine:
    """`engine = ClassParallelEngine(distiller, train_set, accelerator, desc)`; `engine.loop(range, step, state)`."""

    def __init__(self, distiller, train_set, accelerator=None, desc: str = "distil", total: int | None = None):
        self.config, self.accelerator, self.desc = distiller.config, accelerator, desc
        self.num_classes = train_set.num_classes
        self.classes, self.world = process_classes(self.num_classes, accelerator)
        self.run = distiller.run_fingerprint(train_set)
        self.show = accelerator is None or accelerator.is_local_main_process
        self.device, self._autocast = runtime(accelerator)
        self._net = None  # the compiled embedder, when compiling
        self._sampler = None  # the real-batch sampler (closed by `stats`)
        self._checkpointer = None  # built at the first save or resume
        self.losses: list[tuple[int, float]] = []
        self.iteration_seconds: list[float] = []  # with a resumed run's earlier iterations (from its checkpoint)
        self.start_time = time.perf_counter()
        self.seconds_before = 0.0  # distillation seconds of the runs a resumed run continues (checkpoints carry it)
        self.bar = progress(total=total if total is not None else self.config.iterations, desc=desc,
                            disable=not self.show)

    def autocast(self):
        """The accelerator's mixed-precision autocast (a no-op with `mixed_precision="no"` or no accelerator)."""
        return self._autocast()

    def embedder(self, seed: int, iteration: int, num_classes: int, widths) -> torch.nn.Module:
        """The frozen random ConvNet3D of `iteration` (`matching.fresh_embedder`: the same weights in every process)
        on `self.device`, in the channels_last_3d memory format when the config asks (`channels_last`). When the
        accelerator has a dynamo backend (`--compile`, or `accelerate launch --dynamo_backend`), one module is
        kept, its `embed` compiled once, and each iteration's weights copied in; if compiling fails (no compiler),
        a warning is logged and the eager module is used."""
        fresh = fresh_embedder(seed, iteration, num_classes, widths, self.device,
                               embedding=getattr(self.config, "embedding", "pooled"))
        if getattr(self.config, "channels_last", False):
            fresh = fresh.to(memory_format=torch.channels_last_3d)
        backend = self.dynamo_backend
        if backend is None:
            return fresh.to(self.device)
        if self._net is None:
            self._net = fresh.to(self.device)
            self._net.embed = _compiled_or_eager(self._net.embed, backend)
        else:
            self._net.load_state_dict(fresh.state_dict())
        return self._net

    def real_batches(self, train_set, keys, n: int) -> PrefetchingClassSampler:
        """The sampler of the real batches the method will request, in that order: `keys` = its `(iteration,
        class)` plan, `n` clips each. Workers decode ahead when the set says so (`train_set.sampler_options`, set by
        the recipes from `--dataloader_num_workers`; default: inline, no worker); a preloaded set is sampled inline.
        Any plan gives the same batches (`ClassSampler.batch`'s), on `self.device`: clips travel as uint8 (page-locked
        for a GPU) and become float there. The engine stops the workers in `stats()`."""
        options = getattr(train_set, "sampler_options", None) or {"num_workers": 0}
        self._sampler = PrefetchingClassSampler(train_set, self.config.seed, keys, n, device=self.device, **options)
        return self._sampler

    @property
    def dynamo_backend(self) -> str | None:
        plugin = getattr(getattr(self.accelerator, "state", None), "dynamo_plugin", None)
        backend = getattr(getattr(plugin, "backend", None), "value", "NO")
        return None if backend == "NO" else backend.lower()

    def to_device(self, tree):
        """`tree` (tensors in dicts, lists and tuples) on `self.device`; other leaves unchanged."""
        return send_to_device(tree, self.device)

    # ---- resume / checkpoint ---------------------------------------------------------------------------------
    def resume(self) -> dict | None:
        """The state saved by the checkpoint `--resume_from_checkpoint` names (checked to belong to this run), or
        `None` when not resuming. Restores the loss curve and the timings (`elapsed()` continues the checkpoint's;
        a checkpoint of an older hf_vdd, without them, counts from the resume)."""
        if not self.config.resume_from_checkpoint:
            return None
        state = self.checkpointer.load(self.config.resume_from_checkpoint, self.config.checkpoint_dir, self.run)
        self.losses = list(state["losses"])
        self.seconds_before = float(state.get("elapsed_seconds", 0.0))
        self.iteration_seconds = list(state.get("iteration_seconds", []))
        return state | {"classes": self.to_device(state["classes"])}

    def save(self, index: int, local_state: dict) -> None:
        """Gather every class's state and write `checkpoint-<index>` (collective: every process calls it)."""
        merged = gather_classes(to_cpu(local_state), self.accelerator)
        self.checkpointer.save(self.config.checkpoint_dir, index,
                               {"iteration": index, "classes": merged, "losses": list(self.losses),
                                "elapsed_seconds": self.elapsed(), "iteration_seconds": list(self.iteration_seconds)},
                               self.run, self.config.checkpoints_total_limit)

    def elapsed(self) -> float:
        """Seconds of distillation so far, a resumed run's earlier ones included (not the time between runs)."""
        return seconds_since(self.seconds_before, self.start_time)

    @property
    def checkpointer(self) -> Checkpointer:
        if self._checkpointer is None:
            self._checkpointer = Checkpointer()
        return self._checkpointer

    # ---- the loop --------------------------------------------------------------------------------------------
    def loop(self, iterations: range, step: Callable[[int], torch.Tensor | float],
             state: Callable[[int], dict] | None = None, checkpoint_index: Callable[[int], int] = lambda done: done,
             hooks: tuple[Callable[[int], None], ...] = ()) -> None:
        """Run `step(it)` for each iteration: the loss reduced over processes and recorded every `log_every` (and at
        the last iteration); `state(done)` checkpointed every `checkpointing_steps` as
        `checkpoint-<checkpoint_index(done)>`; then each hook called with the number of iterations done."""
        cfg = self.config
        for it in iterations:
            t0 = time.perf_counter()
            total = torch.as_tensor(step(it), dtype=torch.float32, device=self.device).detach()
            self.iteration_seconds.append(time.perf_counter() - t0)
            if self.accelerator is not None and self.world > 1:
                total = self.accelerator.reduce(total, reduction="sum")
            if it % cfg.log_every == 0 or it == cfg.iterations - 1:
                self.losses.append((it, float(total) / self.num_classes))  # the only host sync of a step
                if not math.isfinite(self.losses[-1][1]):  # NaN pixels would be saved and train students to chance
                    self.stats()  # closes the progress bar and the sampler's workers
                    raise HfVddError(f"{self.desc}: the loss is {self.losses[-1][1]} at iteration {it}: the "
                                     f"distillation diverged and nothing was saved. Lower the learning rate "
                                     f"(DM, DAViD: --lr_img; IDTD: --lr, --module_lr, --pool_lr) and run again.")
                self.bar.set_postfix(loss=f"{self.losses[-1][1]:.4f}", refresh=False)
            self.bar.update(1)
            done = it + 1
            if state is not None and cfg.checkpointing_steps and done % cfg.checkpointing_steps == 0:
                self.save(checkpoint_index(done), state(done))
            for hook in hooks:
                hook(done)

    def gather(self, local: dict) -> dict:
        """`{class: value}` of every process, on every process, tensors on the CPU."""
        return gather_classes(to_cpu(local), self.accelerator)

    def stats(self) -> dict:
        """Timings and the loss curve for `DistillationOutput.stats`; stops the sampler's workers."""
        self.bar.close()
        sampler_stats = {}
        if self._sampler is not None:
            self._sampler.close()
            sampler_stats = {"real_batches": dict(self._sampler.stats)}
        resumed = {"resumed_seconds": self.seconds_before} if self.seconds_before else {}  # the earlier runs'
        return {"distill_seconds": self.elapsed(), "loss_curve": self.losses,
                "seconds_per_iteration": sum(self.iteration_seconds) / max(1, len(self.iteration_seconds)),
                "iteration_seconds": [round(s, 6) for s in self.iteration_seconds],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "num_processes": self.world} | sampler_stats | resumed | precision_key(self.accelerator)  # in the card


def to_cpu(tree):
    """`tree` (tensors in dicts, lists and tuples) with every tensor detached on the CPU (to gather and save)."""
    return recursively_apply(lambda t: t.detach().cpu(), tree)


def _compiled_or_eager(fn: Callable, backend: str) -> Callable:
    """`torch.compile(fn, backend=backend)`, falling back to `fn` with a warning when compiling fails (e.g. no C++
    compiler for inductor); the fallback is decided once, at the first call."""
    compiled = torch.compile(fn, backend=backend)
    state = {"use": compiled}

    def run(*args, **kwargs):
        if state["use"] is compiled:
            try:
                return compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any backend failure: run eagerly instead
                logger.warning(f"torch.compile (backend {backend}) failed, running eagerly: "
                               f"{str(err).splitlines()[0][:200] if str(err) else type(err).__name__}")
                state["use"] = fn
        return state["use"](*args, **kwargs)

    return run
