"""How `train_gps` chooses `best/`: by the policy's validation cost, or by paired wins against tuned Adam.

`select_best: cost` (the default) keeps the iteration with the lowest mean Li & Malik cost Σ f / |f₀|
on the validation instances. `select_best: wins_vs_adam` keeps the one that beats tuned Adam (tuned
at each horizon, `agents.hand_designed.tuning`) on the most instances by Σ_{t=1..T} f (the same
order as Σ (f − f*): f* is fixed per instance; ties count half), averaged over the selection
horizons, on `selection_instances` validation instances drawn from their own seed stream
(SELECTION_SEED_OFFSET + seed), so they are not the instances the benchmark's validation
comparison (seed 0) or the momentum tuning uses.
"""

from __future__ import annotations

import copy

import torch

from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.unroll import unroll
from l2o_gym.update_rule import UpdateRule

SELECTIONS = ("cost", "wins_vs_adam")
SELECTION_SEED_OFFSET = 7_919_113  # the selection instances' generator seed is this + options.seed


def step_costs(rule: UpdateRule, problem: Problem, horizon: int, history: int) -> torch.Tensor:
    """Σ_{t=1..τ} f(x_t) of `rule` on each instance for every τ = 1..horizon: [horizon, B] (a diverged
    instance's cost is +inf from its divergence on, NaN read as +inf)."""
    curves = unroll(rule, copy.deepcopy(problem), horizon, history=history)
    f = curves.objectives[1:].double().nan_to_num(nan=float("inf"))
    f = f.masked_fill(_after(curves.diverged_at, horizon), float("inf"))
    return f.cumsum(0)


def _after(diverged_at: torch.Tensor, horizon: int) -> torch.Tensor:
    """[horizon, B] True at steps t ≥ the instance's divergence step (none where it never diverged)."""
    steps = torch.arange(1, horizon + 1).unsqueeze(1)
    return (diverged_at.unsqueeze(0) >= 0) & (steps >= diverged_at.unsqueeze(0))


def paired_win_rate(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Share of instances [B] where `ours` is lower (ties half)."""
    return float(((ours < theirs).double() + 0.5 * (ours == theirs).double()).mean())


class WinsAgainstAdam:
    """Scores a rule by its mean win rate against tuned Adam over `horizons` on the selection instances
    (higher is better). Adam's costs are computed once, here."""

    def __init__(
        self,
        env_id: str,
        family: TaskFamily,
        instances: int,
        horizons: tuple[int, ...],
        seed: int,
        history: int,
        family_kwargs: dict | None = None,
    ):
        from agents.hand_designed.tuning import tuned_optimizer

        self.horizons = tuple(sorted(set(horizons)))
        self.history = history
        generator = torch.Generator().manual_seed(SELECTION_SEED_OFFSET + seed)
        self.problem = family.sample(instances, generator, "validation")
        adam = {h: tuned_optimizer("adam", env_id, h, family_kwargs=family_kwargs or None) for h in self.horizons}
        self.adam = [step_costs(adam[h], self.problem, h, history)[h - 1] for h in self.horizons]

    def score(self, rule: UpdateRule) -> float:
        """Mean over the horizons of the rule's paired win rate against tuned Adam (one unroll of the
        longest horizon; shorter ones are its prefixes)."""
        costs = step_costs(rule, self.problem, self.horizons[-1], self.history)
        wins = [paired_win_rate(costs[h - 1], adam) for h, adam in zip(self.horizons, self.adam, strict=True)]
        return sum(wins) / len(wins)
