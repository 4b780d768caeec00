"""DAViD — Dynamic-Aware Video Distillation (Alg. 1 of the paper): each class gets its own temporal resolution.

1. **Temporal policy learning.** Every class has a Q-table over the temporal resolutions `A` (default
   {1, 2, 4, 8, 16}, capped at T). At each RL step a class takes an epsilon-greedy action `A_t`, runs early-stage
   DM (`N_early = round(beta * N)` iterations) on videos of `A_t` free frames through Temporal Partitioning
   `P(V, A_t)` (uniform crop into `A_t` segments, interleave-repeat back to T), and is rewarded by the teacher
   in the loop `R = 1 / (1 + ||Phi_T(V_syn) - Phi_T(V_real)||_2)` on class-mean teacher features. Q update (Eq. 2):
   `Q(S, A) += alpha * (R + gamma * max_a Q(A, a) - Q(S, A))`.
2. **Synthesization.** Full DM (`N` iterations) at `argmax_a Q(S_T, a)` per class.

Two documented departures, both measured on toy-actions (T=8, IPC 1):
- *State.* The paper's state is the last action (a |A| x |A| table). The reward depends only on the action, and
  with the few RL steps the 10 % budget allows, most rows are never visited, so `argmax_a Q(S_T, a)` would read an
  empty row. The default is one state (`q_state="single"`) with optimistic initial values, so every resolution is
  tried once; `q_state="last_action"` keeps the paper's table.
- *Policy-step init.* From noise, 10 early DM iterations leave the teacher reward flat across resolutions
  (differences < 0.01: noise). From real clips sub-sampled to `A_t` frames it separates the classes: motion
  classes' reward rises from 0.10-0.15 at A=1 to 0.27-0.54 at A=8, appearance classes' stays flat. Default
  `policy_init="real"`; `"noise"` is the paper's.

Each class's videos are stored with their `A` frames (fewer bytes for static classes); `load_distilled` expands
them by interleave-repeat. The Q-tables and resolutions are saved with `save_pretrained` and listed in the card.
Ablation B of the paper's Tab. 4 (partitioning without semantic adaptation): `policy="shared"` (one Q-table for all
classes, rewarded by the mean over classes) or `fixed_resolution=A` (no search).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.decoding import denormalize, interleave_repeat, normalize
from ..teacher import Teacher, load_teacher
from ..training import TrainConfig
from .base import DistillationOutput, register_distiller
from .dm import DMConfig, DMDistiller
from .engine import ClassParallelEngine
from .matching import (
    ClassSampler,
    derived_generator,
)

POLICY_STREAM = 1 << 24  # RNG stream of the epsilon-greedy draws and policy-step initialisations
SHARED = 1 << 16  # key of the shared Q-table (policy="shared")
POLICY_ITERATIONS = 1 << 22  # policy steps draw embedders/real batches from iterations >= this (final DM: 0..N-1)


@dataclass
class DAViDConfig(DMConfig):
    momentum: float = field(default=0.5, metadata={
        "help": "SGD momentum on pixels. DAViD's 0.95 diverged here (toy-actions, lr 10: loss 7 -> 3e28 in 100 "
                "iterations), so the DM paper's 0.5 is the default."})
    init: str = field(default="real", metadata={
        "choices": ("real", "noise"),
        "help": "Synthesization init: `real` clips sub-sampled to the class's resolution (as DMConfig), or `noise` "
                "(DAViD's)."})
    policy_init: str = field(default="real", metadata={
        "choices": ("real", "noise"),
        "help": "Init of each policy step's early-stage DM: sub-sampled `real` clips, or `noise` (DAViD's; its "
                "rewards were flat after a few iterations here, see the module docstring)."})
    resolutions: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16], metadata={
        "help": "Action space: temporal resolutions (values above T are capped at T)."})
    policy_steps: int | None = field(default=None, metadata={
        "help": "RL iterations T of temporal policy learning (default: one per resolution)."})
    beta: float = field(default=0.02, metadata={"help": "Early-stage DM fraction: N_early = round(beta * N)."})
    q_lr: float = field(default=0.1, metadata={"help": "Q-learning rate alpha (paper: 0.1)."})
    gamma: float = field(default=0.5, metadata={"help": "Discount factor gamma (paper: 0.5)."})
    exploit_prob: float = field(default=1.0, metadata={
        "help": "p of Eq. 3: probability of the greedy action (else a uniform random one). With the optimistic "
                "initial Q-values the greedy agent already tries every resolution once, which is all the default "
                "one-step-per-resolution budget allows; lower it for longer searches."})
    q_state: str = field(default="single", metadata={
        "choices": ("single", "last_action"),
        "help": "`single`: one state (the reward depends only on the action, so Eq. 2 with S_t+1 = S_t); "
                "`last_action`: the state is the last resolution taken (a |A| x |A| table, needs many RL steps)."})
    q_init: float | None = field(default=None, metadata={
        "help": "Initial Q-values; default 1 / (1 - gamma), the largest return (rewards are <= 1), so the greedy "
                "agent tries every resolution once before exploiting."})
    policy: str = field(default="per_class", metadata={
        "choices": ("per_class", "shared"),
        "help": "`per_class` (DAViD) or `shared` (one Q-table for every class: Tab. 4 case B)."})
    fixed_resolution: int | None = field(default=None, metadata={
        "help": "Skip the search and use this resolution for every class (Tab. 4 case B without RL)."})
    teacher: str | None = field(default=None, metadata={
        "help": "Teacher folder/Hub id (ConvNet3D or VideoMAE classifier); default: train a ConvNet3D on the real "
                "train split and cache it."})
    teacher_head: str = field(default="probe", metadata={
        "choices": ("probe", "error"),
        "help": "A VideoMAE --teacher whose labels are not the data's classes: 'probe' fits a linear probe on its "
                "frozen features of the real train split (accuracy in the card), 'error' stops."})
    teacher_steps: int = field(default=500, metadata={"help": "Training steps of the default teacher."})
    teacher_cache_dir: str | None = field(default=None, metadata={"help": "Teacher cache (default "
                                                                          "$HF_VDD_CACHE/teachers)."})


def temporal_partition(videos: torch.Tensor, resolution: int, num_frames: int) -> torch.Tensor:
    """P(V, A): crop `(N, T', C, H, W)` uniformly into `resolution` segments (one frame each), interleave-repeat
    back to `num_frames`. A clip that already has `resolution` frames is only expanded."""
    if videos.shape[1] != resolution:
        videos = videos[:, DAViDDistiller._frames(videos.shape[1], resolution)]
    return interleave_repeat(videos, num_frames, dim=1)


@register_distiller
class DAViDDistiller(DMDistiller):
    """`DAViDDistiller(DAViDConfig(ipc=1))(train_set, accelerator)` → per-class temporal resolution, float pixels."""

    name = "david"
    config_class = DAViDConfig
    # N_early = beta * iterations: the number of iterations shapes the policy phase, so it must match on resume
    resume_free_fields = tuple(f for f in DMDistiller.resume_free_fields if f != "iterations")

    def __init__(self, config=None, teacher: Teacher | None = None, **kwargs):
        super().__init__(config, **kwargs)
        cfg = self.config
        if cfg.policy not in ("per_class", "shared"):
            raise ValueError(f"policy must be 'per_class' or 'shared', got '{cfg.policy}'.")
        if not cfg.resolutions or min(cfg.resolutions) < 1:
            raise ValueError(f"resolutions must be positive integers, got {cfg.resolutions}.")
        if cfg.q_state not in ("single", "last_action"):
            raise ValueError(f"q_state must be 'single' or 'last_action', got '{cfg.q_state}'.")
        if not 0 < cfg.beta <= 1:
            raise ValueError(f"beta must be in (0, 1], got {cfg.beta}.")
        self.teacher = teacher
        self.q_tables: dict[int, list[list[float]]] = {}
        self.chosen: dict[int, int] = {}
        self.rewards: list[dict] = []
        self.acts: list[int] = []
        self.video_shape: tuple[int, int] = (0, 0)

    def actions(self, num_frames: int) -> list[int]:
        return sorted({min(a, num_frames) for a in self.config.resolutions})

    @staticmethod
    def _frames(num_frames: int, resolution: int) -> torch.Tensor:
        """Indices of the first frame of each of `resolution` uniform segments of a `num_frames` clip."""
        return torch.div(torch.arange(resolution) * num_frames, resolution, rounding_mode="floor")

    # ---- pieces --------------------------------------------------------------------------------------------------
    def _init(self, train_set, sampler: ClassSampler, c: int, resolution: int, key: int, init: str,
              device=None) -> torch.Tensor:
        """`(ipc, resolution, C, S, S)` leaf in normalised space on `device`, from noise or sub-sampled real clips
        (drawn on the CPU)."""
        g = derived_generator(self.config.seed, POLICY_STREAM, key, c)
        s = train_set.frame_size
        if init == "noise":
            x = torch.randn(self.config.ipc, resolution, 3, s, s, generator=g)
        elif init == "real":
            idx = sampler.by_class[c]
            pick = idx[torch.randperm(len(idx), generator=g)[: self.config.ipc].numpy()]
            clips = normalize(train_set.stack(pick, train=False))
            x = clips[:, self._frames(clips.shape[1], resolution)]
        else:
            raise ValueError(f"init must be 'real' or 'noise', got '{init}'.")
        return (x if device is None else x.to(device)).clone().requires_grad_(True)

    def _real_features(self, train_set, teacher: Teacher, classes: list[int]) -> dict[int, torch.Tensor]:
        """Class-mean teacher features of every real training clip (centred window)."""
        out = {}
        for c in classes:
            idx = train_set.indices_per_class()[c]
            out[c] = teacher.features(train_set.stack(idx, train=False)).mean(0)
        return out

    def reward(self, teacher: Teacher, syn: torch.Tensor, resolution: int, num_frames: int,
               real_mean: torch.Tensor) -> float:
        """R = 1 / (1 + ||mean Phi_T(P(V_syn)) - mean Phi_T(V_real)||_2) of one class."""
        videos = temporal_partition(denormalize(syn.detach()), resolution, num_frames)
        return float(1.0 / (1.0 + (teacher.features(videos).mean(0) - real_mean).norm()))

    def take_action(self, q: torch.Tensor, state: int, g: torch.Generator) -> int:
        """Eq. 3: greedy with probability `exploit_prob` (ties broken at random), else uniform."""
        row = q[state]
        if float(torch.rand(1, generator=g)) < self.config.exploit_prob:
            best = (row == row.max()).nonzero().flatten()
            return int(best[torch.randint(len(best), (1,), generator=g)])
        return int(torch.randint(len(row), (1,), generator=g))

    def _run_dm(self, train_set, sampler, syn, momentum, res, iterations: range, offset: int, bar=None,
                engine=None) -> float:
        t = train_set.num_frames

        def expand(c: int, x: torch.Tensor) -> torch.Tensor:
            # a stored frame is repeated T/A times, so its gradient is a sum of T/A frame gradients; scaling it by
            # A/T keeps the SGD step per pixel the same at every resolution (unscaled, lr 10 diverged at A=1)
            y = temporal_partition(x, res[c], t)
            return y.detach() + (y - y.detach()) * (res[c] / t)

        total = torch.zeros(())
        for it in iterations:
            total = self.step(sampler, offset + it, syn, momentum, train_set.num_classes, expand=expand,
                              engine=engine)
            if bar is not None:
                bar.update(1)
        return float(total)

    # ---- main ------------------------------------------------------------------------------------------------
    def __call__(self, train_set, accelerator=None, eval_set=None) -> DistillationOutput:
        cfg = self.config
        # 1. check the request; split classes; teacher and its real class means
        self.check(train_set)
        self.remember(train_set)
        t, acts = train_set.num_frames, self.actions(train_set.num_frames)
        if cfg.fixed_resolution is not None and cfg.fixed_resolution not in acts:
            raise ValueError(f"fixed_resolution {cfg.fixed_resolution} is not one of the resolutions {acts}.")
        n_early = max(1, round(cfg.beta * cfg.iterations))
        search = cfg.fixed_resolution is None
        policy_steps = cfg.policy_steps if cfg.policy_steps is not None else len(acts)
        engine = ClassParallelEngine(self, train_set, accelerator, desc="DAViD",
                                     total=(policy_steps * n_early if search else 0) + cfg.iterations)
        classes, bar, show = engine.classes, engine.bar, engine.show
        if cfg.policy == "shared" and engine.world > 1 and search:
            raise ValueError("policy='shared' needs every class in one process; run it without --num_processes.")
        # Q-tables: one per class (or one shared), rows = state (last action), columns = action
        keys = classes if cfg.policy == "per_class" else [SHARED]
        q0 = cfg.q_init if cfg.q_init is not None else 1.0 / (1.0 - cfg.gamma)
        rows = len(acts) if cfg.q_state == "last_action" else 1
        q = {k: torch.full((rows, len(acts)), q0) for k in keys}
        state = {k: rows - 1 for k in keys}  # start from the full resolution
        step0, phase, rewards = 0, "policy", []
        syn, momentum = {}, {}
        ckpt = engine.resume()
        if ckpt is not None:
            local = {c: ckpt["classes"][c] for c in classes}
            first = local[classes[0]]
            phase, step0, rewards = first["phase"], first["step"], first["rewards"]
            q = {k: torch.tensor(first["q"][k]) if cfg.policy == "shared" else torch.tensor(local[k]["q"][k])
                 for k in keys}
            state = {k: (first if cfg.policy == "shared" else local[k])["state"][k] for k in keys}
            if phase == "final":
                syn = {c: local[c]["syn"].clone().requires_grad_(True) for c in classes}
                momentum = {c: local[c]["momentum"] for c in classes}
            bar.update(step0 * n_early if phase == "policy" else policy_steps * n_early * search + step0)
        # the real batches in the order the phases ask for them: early-stage DM of each policy step, then final DM
        plan = [(POLICY_ITERATIONS + step * n_early + it, c) for step in range(step0, policy_steps)
                for it in range(n_early) for c in classes] if search and phase == "policy" else []
        plan += [(it, c) for it in range(step0 if phase == "final" else 0, cfg.iterations) for c in classes]
        sampler = engine.real_batches(train_set, plan, cfg.batch_real)

        def snapshot(step: int, phase: str) -> dict:  # checkpoint-<k> (policy step k), checkpoint-<1e6 + i> (final)
            return {c: {"phase": phase, "step": step, "rewards": rewards, "q": {k: q[k].tolist() for k in keys
                                                                                if k in (c, SHARED)},
                        "state": {k: state[k] for k in keys if k in (c, SHARED)},
                        "syn": syn[c].detach() if phase == "final" else None,
                        "momentum": momentum.get(c) if phase == "final" else None} for c in classes}

        teacher, real_mean = None, {}
        policy_seconds = 0.0
        if search and phase == "policy":
            teacher = (self.teacher or load_teacher(cfg.teacher, train_set, TrainConfig(steps=cfg.teacher_steps),
                                                    cfg.teacher_cache_dir, accelerator=accelerator,
                                                    show_progress=show, teacher_head=cfg.teacher_head,
                                                    eval_set=eval_set)).on(accelerator)
            real_mean = self._real_features(train_set, teacher, classes)
            p0 = time.perf_counter()
            # 2. temporal policy learning: epsilon-greedy action, early-stage DM from noise, teacher reward, Q update
            for step in range(step0, policy_steps):
                action = {k: self.take_action(q[k], state[k], derived_generator(cfg.seed, POLICY_STREAM, step, k))
                          for k in keys}
                res = {c: acts[action[c if cfg.policy == "per_class" else SHARED]] for c in classes}
                syn = {c: self._init(train_set, sampler, c, res[c], step, cfg.policy_init, engine.device)
                       for c in classes}
                momentum = {}
                self._run_dm(train_set, sampler, syn, momentum, res, range(n_early),
                             POLICY_ITERATIONS + step * n_early, bar, engine)
                r = {c: self.reward(teacher, syn[c], res[c], t, real_mean[c]) for c in classes}
                for k in keys:
                    reward = r[k] if cfg.policy == "per_class" else sum(r.values()) / len(r)
                    a, s = action[k], state[k]
                    nxt = a if cfg.q_state == "last_action" else 0
                    q[k][s, a] += cfg.q_lr * (reward + cfg.gamma * q[k][nxt].max() - q[k][s, a])
                    state[k] = nxt
                rewards.append({"step": step, "resolution": {str(c): res[c] for c in classes},
                                "reward": {str(c): round(r[c], 5) for c in classes}})
                if cfg.checkpointing_steps:
                    engine.save(step + 1, snapshot(step + 1, "policy"))
            policy_seconds = time.perf_counter() - p0
            phase, step0 = "final", 0
        # 3. synthesization: full DM at argmax_a Q(S_T, a) of each class
        if search:
            best = {k: int(q[k][state[k]].argmax()) for k in keys}
            res = {c: acts[best[c if cfg.policy == "per_class" else SHARED]] for c in classes}
        else:
            res = {c: cfg.fixed_resolution for c in classes}
        if not syn or step0 == 0:
            # the same clips (or noise) and, below, the same iterations as DMDistiller: with every class at T
            # frames the result is DM's, so the comparison isolates the per-class resolution
            full = self.init_synthetic(train_set, classes, engine.device)
            syn = {c: full[c].detach()[:, self._frames(t, res[c])].clone().requires_grad_(True) for c in classes}
            momentum = {}
        d0 = time.perf_counter()
        engine.loop(range(step0, cfg.iterations),
                    step=lambda it: self._run_dm(train_set, sampler, syn, momentum, res, range(it, it + 1), 0,
                                                 engine=engine),
                    state=lambda done: snapshot(done, "final"), checkpoint_index=lambda done: 1_000_000 + done)
        final_seconds = time.perf_counter() - d0
        # 4. gather; each class keeps its own number of frames
        local = {c: (denormalize(syn[c].detach()), res[c], [row.tolist() for row in q[c]]
                     if cfg.policy == "per_class" and search else None) for c in classes}
        merged = engine.gather(local)
        shared_q = q[SHARED].tolist() if cfg.policy == "shared" and search else None
        self.chosen = {c: merged[c][1] for c in range(train_set.num_classes)}
        self.q_tables = {c: merged[c][2] or shared_q for c in range(train_set.num_classes)} if search else {}
        self.rewards, self.acts = rewards, acts
        videos = [v for c in range(train_set.num_classes) for v in merged[c][0]]
        labels = torch.arange(train_set.num_classes).repeat_interleave(cfg.ipc)
        resolutions = {train_set.class_names[c]: r for c, r in self.chosen.items()}
        return DistillationOutput(
            videos=videos, labels=labels, class_names=train_set.class_names, method=self.name, ipc=cfg.ipc,
            source=train_set.name.split(":")[0], frame_size=train_set.frame_size, num_frames=t, seed=cfg.seed,
            config=cfg.to_dict() | {"resolutions_per_class": resolutions},
            stats=engine.stats() | {
                "teacher": teacher.info() if teacher is not None else None,
                "policy_seconds": policy_seconds, "final_dm_seconds": final_seconds,
                "policy_fraction": policy_seconds / max(final_seconds, 1e-9), "early_iterations": n_early,
                "rewards": rewards, "resolutions_per_class": resolutions, "q_tables": self.q_tables, "actions": acts})

    # ---- learned state on the Hub (Distiller is a ModelHubMixin) -----------------------------------------------
    @property
    def parts(self) -> str:
        names = self.class_names or [str(c) for c in self.chosen]
        table = "\n".join(f"| {names[c]} | {r} |" for c, r in self.chosen.items())
        return ("Per-class Q-tables over temporal resolutions (`policy.json`).\n\n| class | resolution |\n|---|---|\n"
                + table)

    def save_parts(self, folder: Path) -> None:
        """`policy.json`: actions, the chosen resolution and Q-table of every class (by name), the reward log."""
        if not self.chosen:
            raise ValueError("Nothing to save: run the distiller first.")
        names = self.class_names or [str(c) for c in self.chosen]
        policy = {"actions": self.acts, "num_frames": self.video_shape[0], "frame_size": self.video_shape[1],
                  "resolutions": {names[c]: r for c, r in self.chosen.items()},
                  "q_tables": {names[c]: t for c, t in self.q_tables.items()}, "rewards": self.rewards}
        (folder / "policy.json").write_text(json.dumps(policy, indent=2))

    def load_parts(self, folder: Path) -> None:
        """`chosen` and `q_tables` are keyed by class index in saved order."""
        policy = json.loads((folder / "policy.json").read_text())
        self.chosen = {i: r for i, r in enumerate(policy["resolutions"].values())}
        self.q_tables = {i: t for i, t in enumerate(policy["q_tables"].values())}
        self.rewards, self.acts = policy["rewards"], policy["actions"]
        self.video_shape = (policy["num_frames"], policy["frame_size"])
        self.class_names = list(policy["resolutions"])
