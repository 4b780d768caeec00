"""DAViD's temporal policy (Alg. 1, Eq. 2-3): the epsilon-greedy Q-learning over temporal resolutions, and the
earlier grid search (`policy="grid"`). A mixin of `DAViDDistiller` (david.py, which runs the DM stages it scores);
it reads `policy`, `policy_steps`, `epsilon_start`, `epsilon_end`, `q_lr` and `gamma` from `self.config`.
"""

from __future__ import annotations

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
