"""DAViD's temporal policy (Alg. 1, Eq. 2-3): the paper's epsilon-greedy Q-learning over temporal resolutions
(`policy="qlearning"`) and the grid search (`policy="grid"`, the default). A mixin of `DAViDDistiller` (david.py,
which runs the DM stages it scores); it reads `policy`, `policy_steps`, `epsilon_start`, `epsilon_end`, `q_lr` and
`gamma` from `self.config`.

*Why grid.* The paper states neither its number of RL steps, nor p of Eq. 3, nor the initial Q-values. At its
budget (`beta` 0.02 per step, search at 10 % of the final DM: 5 steps) a zero-initialised |A| x |A| table with
positive rewards and alpha 0.1 ranks actions by how often they were taken, not by their reward: the first action
exploited from a state earns `alpha * R` again and again (and a self-loop bootstraps itself through
`gamma * max Q`). Measured on toy-actions (16 frames, IPC 1, 20 steps instead of 5): slide-left took 2 frames 11
times (rewards 0.13-0.14) and ended with Q(2, 2) = 0.104, while 4 frames, tried once, earned 0.206 and kept
Q(16, 4) = 0.021; it was stored at 2 frames. With 5 steps the benchmark's Q-learning sets are below DM (IPC 1: 21.0 vs
26.5; IPC 5: 37.5 vs 40.8) and the grid's are not (26.5 at 63 % of DM's bytes; 42.8 at 74 %; over three
distillation seeds at IPC 1, 26.0 vs DM's 25.7 at 60 %). The grid spends the same budget trying each resolution once.

*Epsilon schedule.* The paper takes the greedy action with a fixed probability `p` and does not state it. Here
epsilon = 1 - p decays linearly over the RL steps from `epsilon_start` (1.0: the first step is uniform) to
`epsilon_end` (0.1): explore first, exploit at the end. *Budget.* Each step costs `beta` of the final DM, so
`qlearning`'s default `policy_steps=5` (and grid's one step for each of 5 resolutions) at the paper's
`beta=0.02` keeps the search at 10 % of the final distillation (`stats["policy_fraction"]` reports the measured
wall-clock ratio).

*Grid init.* Measured on toy-actions (T=8, IPC 1), grid's policy steps from noise left the reward flat across
resolutions after 10 iterations (differences < 0.01); from real clips sub-sampled to `A_t` frames it separated the
classes (motion classes 0.10-0.15 at A=1 to 0.27-0.54 at A=8, appearance classes flat), hence `policy_init="real"`
(grid only; the paper's is noise).
"""

from __future__ import annotations

import math

import torch


class TemporalPolicy:
    """The Q-table operations of DAViD: exploration schedule, action choice, update and final argmax."""

    def num_policy_steps(self, num_actions: int) -> int:
        cfg = self.config
        if cfg.policy_steps is not None:
            return cfg.policy_steps
        return 5 if cfg.policy == "qlearning" else num_actions

    def epsilon(self, step: int, steps: int) -> float:
        """Exploration probability of RL step `step` of `steps`: `qlearning` decays it linearly from `epsilon_start`
        to `epsilon_end`; `grid` is greedy (0)."""
        cfg = self.config
        if cfg.policy == "grid":
            return 0.0
        return cfg.epsilon_start + (cfg.epsilon_end - cfg.epsilon_start) * step / max(1, steps - 1)

    @staticmethod
    def take_action(q: torch.Tensor, state: int, g: torch.Generator, epsilon: float = 0.0) -> int:
        """Eq. 3 with p = 1 - epsilon: the greedy action of row `state` of `q` (ties broken at random) if a uniform
        draw is >= `epsilon`, else a uniform random action."""
        row = q[state]
        if float(torch.rand(1, generator=g)) >= epsilon:
            best = (row == row.max()).nonzero().flatten()
            return int(best[torch.randint(len(best), (1,), generator=g)])
        return int(torch.randint(len(row), (1,), generator=g))

    def q_update(self, q: torch.Tensor, state: int, action: int, reward: float) -> int:
        """Eq. 2 in place: `Q(S, A) += alpha * (R + gamma * max_a Q(S', a) - Q(S, A))`; returns `S'` (the action
        taken for `qlearning`, the one state 0 for `grid`)."""
        if not math.isfinite(reward):  # a NaN would poison the Q-table and leave no greedy action
            raise FloatingPointError(f"DAViD's teacher reward is {reward}: the teacher's features are not finite "
                                     f"(did the teacher diverge? see its accuracy in the card), or the early-stage "
                                     f"videos diverged (lower --lr_img).")
        nxt = action if self.config.policy == "qlearning" else 0
        q[state, action] += self.config.q_lr * (reward + self.config.gamma * q[nxt].max() - q[state, action])
        return nxt

    @staticmethod
    def best_action(q: torch.Tensor, visits: torch.Tensor, state: int, pooled: bool = False) -> int:
        """`argmax_a Q(S_T, a)` over the actions visited from `S_T`; if no step started from `S_T` (or `pooled`),
        the argmax of each action's mean Q over its visited cells (Eq. 2's target does not depend on the state).
        Unvisited actions: never."""
        if visits[state].sum() > 0 and not pooled:
            row = q[state].masked_fill(visits[state] == 0, float("-inf"))
        else:
            seen = visits > 0
            row = (q * seen).sum(0) / seen.sum(0).clamp(min=1)
            row = row.masked_fill(seen.sum(0) == 0, float("-inf"))
        return int(row.argmax())
