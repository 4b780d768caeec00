"""DAViD — Dynamic-Aware Video Distillation (Alg. 1 of the paper): each class gets its own temporal resolution.

Two searches over the temporal resolutions `A` (default {1, 2, 4, 8, 16}, capped at T) share the paper's reward,
its early-stage DM and its Temporal Partitioning. `policy="grid"` is the default (see *Why grid* below);
`policy="qlearning"` is the paper's Alg. 1 as written.

1. **Temporal policy learning, `policy="qlearning"`** (Alg. 1). Each class has a Q-table `Q[S, A]`; the state is
   the last resolution taken (Sec. 3.3: "the state space ... is identical to the action space"), so the table is
   |A| x |A|, starts at zero, and the first state is the full resolution. One synthetic set `V_syn` per class is
   initialised once (`init`, `(ipc, T, C, S, S)`) and every RL step continues it, as Alg. 1 does: take an
   epsilon-greedy action `A_t` (Eq. 3), run early-stage DM (`N_early = round(beta * N)` iterations) on
   `P(V_syn, A_t)`, score it with the teacher in the loop `R = 1 / (1 + ||Phi_T(V_syn) - Phi_T(V_real)||_2)`
   (class-mean teacher features) and update `Q(S_t, A_t) += alpha * (R + gamma * max_a Q(A_t, a) - Q(S_t, A_t))`
   (Eq. 2, alpha 0.1, gamma 0.5), `S_t+1 = A_t`. `P(V, A)` (Temporal Partitioning) keeps the first frame of each of
   `A` uniform segments and interleave-repeats them back to T, so DM's gradient reaches only those `A` frames: a step
   at `A_t` updates the `A_t` frames it sees and leaves the others of `V_syn` as they were (momentum restarts at
   every step: each is its own early-stage DM run). The search is therefore the first stage of the distillation.
   **Synthesization.** DM continues on the same `V_syn` for `N` iterations at `A_T = argmax_a Q(S_T, a)` and each
   class is stored with its `A_T` frames. `S_T` is the last action; if its row was never visited (no step started
   from that state) the argmax reads, for each action, the mean Q over the visited cells of its column (Eq. 2's
   target does not depend on the state, so the visited cells are estimates of the same value); actions never taken
   are not chosen.
2. **`policy="grid"`** (default): the same Eq. 2 update on one state with optimistic initial Q-values
   `1 / (1 - gamma)`, greedy actions and one step per resolution (`policy_steps` default |A|), so every resolution
   is tried once, each from a fresh init (`policy_init`), and the final DM starts from `init` and keeps each class
   at its most rewarded resolution.

*Why grid*, the epsilon schedule, the budget and grid's init: `david_policy.py`.

Each class's videos are stored with their `A` frames (fewer bytes for static classes); `load_distilled` expands
them by interleave-repeat. The Q-tables, visit counts, epsilon schedule and resolutions are saved with
`save_pretrained` (`policy.json`) and listed in the card. Ablation B of the paper's Tab. 4 (partitioning without
semantic adaptation): `scope="shared"` (one Q-table and one action for all classes, rewarded by the mean over
classes) or `fixed_resolution=A` (no search).
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
from ..utils import HfVddError, seconds_since
from .base import DistillationOutput, register_distiller
from .david_policy import TemporalPolicy
from .dm import DMConfig, DMDistiller
from .engine import ClassParallelEngine
from .matching import ClassSampler, derived_generator

POLICY_STREAM = 1 << 24  # RNG stream of the epsilon-greedy draws and policy-step initialisations
SHARED = 1 << 16  # key of the shared Q-table (scope="shared")
POLICY_ITERATIONS = 1 << 22  # policy steps draw embedders/real batches from iterations >= this (final DM: 0..N-1)


@dataclass
class DAViDConfig(DMConfig):
    momentum: float = field(default=0.5, metadata={
        "help": "SGD momentum on pixels. DAViD's 0.95 diverged here (toy-actions, lr 10: loss 7 -> 3e28 in 100 "
                "iterations), so the DM paper's 0.5 is the default."})
    init: str = field(default="real", metadata={
        "choices": ("real", "noise"),
        "help": "Init of V_syn: `real` clips (as DMConfig), or `noise` (DAViD's). `qlearning` starts its search from "
                "it and continues it; `grid` starts the final DM from it."})
    policy: str = field(default="grid", metadata={
        "help": "Temporal policy search: `grid` (default: one state, optimistic Q-values, greedy: every resolution "
                "tried once from a fresh init) or `qlearning` (the paper's Alg. 1: last-resolution state, "
                "epsilon-greedy with decaying epsilon, V_syn continued across the RL steps and into "
                "synthesization). The paper states neither its RL steps nor its initial Q-values; at its budget "
                "(5 steps, a tenth of the final DM) the zero-initialised table ranks actions by visits (module "
                "docstring)."})
    scope: str = field(default="per_class", metadata={
        "choices": ("per_class", "shared"),
        "help": "`per_class` (DAViD) or `shared` (one Q-table for every class: Tab. 4 case B)."})
    policy_init: str = field(default="real", metadata={
        "choices": ("real", "noise"),
        "help": "`grid` only: init of each policy step's early-stage DM, sub-sampled `real` clips or `noise` "
                "(rewards were flat after a few iterations from noise, see the module docstring). `qlearning` "
                "continues one V_syn made by `init`."})
    resolutions: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16], metadata={
        "help": "Action space: temporal resolutions (values above T are capped at T)."})
    policy_steps: int | None = field(default=None, metadata={
        "help": "RL steps of temporal policy learning, each N_early DM iterations. Default: 5 for `qlearning` "
                "(5 x beta 0.02 = a tenth of the final DM), one per resolution for `grid`."})
    beta: float = field(default=0.02, metadata={"help": "Early-stage DM fraction: N_early = round(beta * N)."})
    q_lr: float = field(default=0.1, metadata={"help": "Q-learning rate alpha (paper: 0.1)."})
    gamma: float = field(default=0.5, metadata={"help": "Discount factor gamma (paper: 0.5)."})
    epsilon_start: float = field(default=1.0, metadata={
        "help": "`qlearning`: exploration probability (1 - p of Eq. 3) at the first RL step; decays linearly to "
                "`epsilon_end` at the last (the paper states no schedule)."})
    epsilon_end: float = field(default=0.1, metadata={"help": "`qlearning`: exploration probability at the last "
                                                              "RL step."})
    final_action: str = field(default="state", metadata={"choices": ("state", "pooled"), "help": (
        "The synthesis resolution: `state` is the paper's argmax_a Q(S_T, a) over the actions visited from S_T; "
        "`pooled` is the argmax of each action's mean Q over all its visited cells (Eq. 2's target depends on "
        "the action only, so they estimate one value; after 5 steps S_T's row often holds one visited action).")})
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
    teacher_cache_dir: str | None = field(default=None, metadata={"help": "Teacher cache ($HF_VDD_CACHE/teachers)."})

    def __post_init__(self):
        if self.policy in ("per_class", "shared"):
            raise HfVddError(f"policy={self.policy!r} is now scope={self.policy!r}; `policy` chooses the search "
                             "('qlearning' or 'grid').")
        for name, allowed in (("policy", ("qlearning", "grid")), ("final_action", ("state", "pooled"))):
            if getattr(self, name) not in allowed:
                raise HfVddError(f"{name} must be {allowed[0]!r} or {allowed[1]!r}, got {getattr(self, name)!r}.")
        super().__post_init__()
        if not self.resolutions or min(self.resolutions) < 1:
            raise HfVddError(f"resolutions must be positive integers, got {self.resolutions}.")


def temporal_partition(videos: torch.Tensor, resolution: int, num_frames: int) -> torch.Tensor:
    """P(V, A): crop `(N, T', C, H, W)` uniformly into `resolution` segments (one frame each), interleave-repeat
    back to `num_frames`. A clip that already has `resolution` frames is only expanded."""
    if videos.shape[1] != resolution:
        videos = videos[:, DAViDDistiller._frames(videos.shape[1], resolution)]
    return interleave_repeat(videos, num_frames, dim=1)


@register_distiller
class DAViDDistiller(TemporalPolicy, DMDistiller):
    """`DAViDDistiller(DAViDConfig(ipc=1))(train_set, accelerator)` → per-class temporal resolution, float pixels."""

    name = "david"
    config_class = DAViDConfig
    # N_early = beta * iterations: the number of iterations shapes the policy phase, so it must match on resume
    resume_free_fields = tuple(f for f in DMDistiller.resume_free_fields if f != "iterations")

    def __init__(self, config=None, teacher: Teacher | None = None, **kwargs):
        if isinstance(teacher, (str, Path)):  # a folder or Hub id: the config's `teacher`, loaded when distilling
            kwargs, teacher = kwargs | {"teacher": str(teacher)}, None
        super().__init__(config, **kwargs)
        self.teacher = teacher
        self.q_tables: dict[int, list[list[float]]] = {}
        self.visits: dict[int, list[list[int]]] = {}
        self.chosen: dict[int, int] = {}
        self.rewards: list[dict] = []
        self.acts: list[int] = []  # (self.video_shape: Distiller's)

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
        search, qlearning = cfg.fixed_resolution is None, cfg.policy == "qlearning"
        policy_steps = self.num_policy_steps(len(acts))
        engine = ClassParallelEngine(self, train_set, accelerator, desc="DAViD",
                                     total=(policy_steps * n_early if search else 0) + cfg.iterations)
        classes, bar, show = engine.classes, engine.bar, engine.show
        if cfg.scope == "shared" and engine.world > 1 and search:
            raise ValueError("scope='shared' needs every class in one process; run it without --num_processes.")
        # Q-tables: one per class (or one shared), rows = state, columns = action. qlearning: the state is the last
        # action, from the full resolution, Q = 0; grid: one state with optimistic values 1 / (1 - gamma)
        keys = classes if cfg.scope == "per_class" else [SHARED]
        rows = len(acts) if qlearning else 1
        q = {k: torch.full((rows, len(acts)), 0.0 if qlearning else 1.0 / (1.0 - cfg.gamma)) for k in keys}
        visits = {k: torch.zeros(rows, len(acts), dtype=torch.long) for k in keys}
        state = {k: rows - 1 for k in keys}
        step0, phase, rewards = 0, "policy", []
        syn, momentum, master = {}, {}, {}
        # carried by checkpoints, so that a resumed run reports its whole search and final DM (None: a checkpoint of
        # an older hf_vdd, which did not record them)
        policy_seconds, final_before, teacher_info = 0.0, 0.0, None
        ckpt = engine.resume()
        if ckpt is not None:
            local = {c: ckpt["classes"][c] for c in classes}
            first = local[classes[0]]
            phase, step0, rewards = first["phase"], first["step"], first["rewards"]
            policy_seconds, teacher_info = first.get("policy_seconds"), first.get("teacher")
            final_before = first.get("final_seconds", 0.0 if phase == "policy" else None)
            owner = {k: first if cfg.scope == "shared" else local[k] for k in keys}
            q = {k: torch.tensor(owner[k]["q"][k]) for k in keys}
            visits = {k: torch.tensor(owner[k]["visits"][k]) for k in keys}
            state = {k: owner[k]["state"][k] for k in keys}
            if phase == "final":
                syn = {c: local[c]["syn"].clone().requires_grad_(True) for c in classes}
                momentum = {c: local[c]["momentum"] for c in classes}
            elif qlearning and search:
                master = {c: local[c]["master"].clone() for c in classes}
            bar.update(step0 * n_early if phase == "policy" else policy_steps * n_early * search + step0)
        # the real batches in the order the phases ask for them: early-stage DM of each policy step, then final DM
        plan = [(POLICY_ITERATIONS + step * n_early + it, c) for step in range(step0, policy_steps)
                for it in range(n_early) for c in classes] if search and phase == "policy" else []
        plan += [(it, c) for it in range(step0 if phase == "final" else 0, cfg.iterations) for c in classes]
        sampler = engine.real_batches(train_set, plan, cfg.batch_real)

        def snapshot(step: int, phase: str, searched: float | None, final: float | None = 0.0) -> dict:
            # checkpoint-<k> (policy step k), checkpoint-<1e6 + i> (final); seconds of search and final DM so far
            mine = {c: [k for k in keys if k in (c, SHARED)] for c in classes}
            return {c: {"phase": phase, "step": step, "rewards": rewards, "policy_seconds": searched,
                        "final_seconds": final, "teacher": teacher_info,
                        "q": {k: q[k].tolist() for k in mine[c]}, "visits": {k: visits[k].tolist() for k in mine[c]},
                        "state": {k: state[k] for k in mine[c]},
                        "master": master[c] if phase == "policy" and master else None,
                        "syn": syn[c].detach() if phase == "final" else None,
                        "momentum": momentum.get(c) if phase == "final" else None} for c in classes}

        teacher, real_mean = None, {}
        if search and phase == "policy":
            teacher = (self.teacher or load_teacher(cfg.teacher, train_set, TrainConfig(steps=cfg.teacher_steps),
                                                    cfg.teacher_cache_dir, accelerator=accelerator,
                                                    show_progress=show, teacher_head=cfg.teacher_head,
                                                    eval_set=eval_set)).on(accelerator)
            teacher_info = teacher.info()
            real_mean = self._real_features(train_set, teacher, classes)
            p0 = time.perf_counter()
            if qlearning and not master:  # V_syn of Alg. 1, initialised once: (ipc, T, C, S, S) per class
                master = {c: x.detach().clone() for c, x in self.init_synthetic(train_set, classes,
                                                                                 engine.device).items()}
            # 2. temporal policy learning: epsilon-greedy action, early-stage DM at A_t, teacher reward, Q update
            for step in range(step0, policy_steps):
                eps = self.epsilon(step, policy_steps)
                action = {k: self.take_action(q[k], state[k], derived_generator(cfg.seed, POLICY_STREAM, step, k),
                                              eps) for k in keys}
                res = {c: acts[action[c if cfg.scope == "per_class" else SHARED]] for c in classes}
                if qlearning:  # the A_t frames P(V_syn, A_t) reads: the only ones its gradient reaches
                    syn = {c: master[c][:, self._frames(t, res[c])].clone().requires_grad_(True) for c in classes}
                else:
                    syn = {c: self._init(train_set, sampler, c, res[c], step, cfg.policy_init, engine.device)
                           for c in classes}
                momentum = {}
                self._run_dm(train_set, sampler, syn, momentum, res, range(n_early),
                             POLICY_ITERATIONS + step * n_early, bar, engine)
                if qlearning:
                    for c in classes:
                        master[c][:, self._frames(t, res[c])] = syn[c].detach()
                r = {c: self.reward(teacher, syn[c], res[c], t, real_mean[c]) for c in classes}
                states = dict(state)
                for k in keys:
                    reward = r[k] if cfg.scope == "per_class" else sum(r.values()) / len(r)
                    visits[k][state[k], action[k]] += 1
                    state[k] = self.q_update(q[k], state[k], action[k], reward)
                name = {k: str(k) if k != SHARED else "shared" for k in keys}
                rewards.append({"step": step, "epsilon": round(eps, 5)}
                               | ({"state": {name[k]: acts[states[k]] for k in keys}} if qlearning else {})
                               | {"resolution": {str(c): res[c] for c in classes},
                                  "reward": {str(c): round(r[c], 5) for c in classes}})
                if cfg.checkpointing_steps:
                    engine.save(step + 1, snapshot(step + 1, "policy", seconds_since(policy_seconds, p0)))
            policy_seconds = seconds_since(policy_seconds, p0)
            phase, step0 = "final", 0
        # 3. synthesization: DM at argmax_a Q(S_T, a) of each class, on the same V_syn (qlearning) or from `init`
        if search:
            best = {k: self.best_action(q[k], visits[k], state[k], cfg.final_action == "pooled") for k in keys}
            res = {c: acts[best[c if cfg.scope == "per_class" else SHARED]] for c in classes}
        else:
            res = {c: cfg.fixed_resolution for c in classes}
        if not syn or step0 == 0:
            # grid / fixed: the same clips (or noise) and, below, the same iterations as DMDistiller: with every
            # class at T frames the result is DM's, so the comparison isolates the per-class resolution
            full = master if qlearning and search else self.init_synthetic(train_set, classes, engine.device)
            syn = {c: full[c].detach()[:, self._frames(t, res[c])].clone().requires_grad_(True) for c in classes}
            momentum = {}
        d0 = time.perf_counter()
        engine.loop(range(step0, cfg.iterations),
                    step=lambda it: self._run_dm(train_set, sampler, syn, momentum, res, range(it, it + 1), 0,
                                                 engine=engine),
                    state=lambda done: snapshot(done, "final", policy_seconds, seconds_since(final_before, d0)),
                    checkpoint_index=lambda done: 1_000_000 + done)
        final_seconds = seconds_since(final_before, d0)
        # 4. gather; each class keeps its own number of frames
        per_class = cfg.scope == "per_class" and search
        local = {c: (denormalize(syn[c].detach()), res[c], q[c].tolist() if per_class else None,
                     visits[c].tolist() if per_class else None) for c in classes}
        merged = engine.gather(local)
        shared = (q[SHARED].tolist(), visits[SHARED].tolist()) if cfg.scope == "shared" and search else (None, None)
        self.chosen = {c: merged[c][1] for c in range(train_set.num_classes)}
        self.q_tables = {c: merged[c][2] or shared[0] for c in range(train_set.num_classes)} if search else {}
        self.visits = {c: merged[c][3] or shared[1] for c in range(train_set.num_classes)} if search else {}
        self.rewards, self.acts = rewards, acts
        videos = [v for c in range(train_set.num_classes) for v in merged[c][0]]
        labels = torch.arange(train_set.num_classes).repeat_interleave(cfg.ipc)
        resolutions = {train_set.class_names[c]: r for c, r in self.chosen.items()}
        return DistillationOutput(
            videos=videos, labels=labels, class_names=train_set.class_names, method=self.name, ipc=cfg.ipc,
            source=train_set.name.split(":")[0], frame_size=train_set.frame_size, num_frames=t, seed=cfg.seed,
            config=cfg.to_dict() | {"resolutions_per_class": resolutions},
            stats=engine.stats() | {
                "teacher": teacher_info,
                "policy_seconds": policy_seconds, "final_dm_seconds": final_seconds,
                "policy_fraction": None if None in (policy_seconds, final_seconds)
                else policy_seconds / max(final_seconds, 1e-9), "early_iterations": n_early,
                "policy_steps": policy_steps if search else 0, "rewards": rewards,
                "resolutions_per_class": resolutions, "q_tables": self.q_tables, "visits": self.visits,
                "actions": acts, "policy": (cfg.policy if search else f"fixed_resolution={cfg.fixed_resolution}")})

    # ---- learned state on the Hub (Distiller is a ModelHubMixin) -----------------------------------------------
    @property
    def parts(self) -> str:
        names = self.class_names or [str(c) for c in self.chosen]
        table = "\n".join(f"| {names[c]} | {r} |" for c, r in self.chosen.items())
        return (f"Per-class Q-tables over temporal resolutions (`policy.json`, search: `{self.config.policy}`).\n\n"
                "| class | resolution |\n|---|---|\n" + table)

    def save_parts(self, folder: Path) -> None:
        """`policy.json`: the search (`policy`, `scope`), actions, the chosen resolution, Q-table and visit counts
        (rows: state, columns: action) of every class (by name), and the log of RL steps (epsilon, state, action,
        reward)."""
        if not self.chosen:
            raise ValueError("Nothing to save: run the distiller first.")
        names = self.class_names or [str(c) for c in self.chosen]
        policy = {"policy": self.config.policy, "scope": self.config.scope, "actions": self.acts,
                  "num_frames": self.video_shape[0], "frame_size": self.video_shape[1],
                  "resolutions": {names[c]: r for c, r in self.chosen.items()},
                  "q_tables": {names[c]: t for c, t in self.q_tables.items()},
                  "visits": {names[c]: t for c, t in self.visits.items()}, "rewards": self.rewards}
        (folder / "policy.json").write_text(json.dumps(policy, indent=2))

    def load_parts(self, folder: Path) -> None:
        """`chosen`, `q_tables` and `visits` are keyed by class index in saved order."""
        policy = json.loads((folder / "policy.json").read_text())
        self.chosen = {i: r for i, r in enumerate(policy["resolutions"].values())}
        self.q_tables = {i: t for i, t in enumerate(policy["q_tables"].values())}
        self.visits = {i: t for i, t in enumerate(policy.get("visits", {}).values())}
        self.rewards, self.acts = policy["rewards"], policy["actions"]
        self.video_shape = (policy["num_frames"], policy["frame_size"])
        self.class_names = list(policy["resolutions"])
