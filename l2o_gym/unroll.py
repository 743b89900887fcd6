"""Run an update rule on a problem for a horizon, through the one transition, and keep the curve."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from l2o_gym.problem import Problem, check_positive_int
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, DEFAULT_HISTORY, OptimizationState
from l2o_gym.update_rule import UpdateRule


@dataclass
class Curves:
    """objectives [T + 1, B] (f(x_0) .. f(x_T); a diverged instance keeps its last finite value),
    diverged [B] bool, diverged_at [B] (step of divergence, -1 if never), f_star [B] or None,
    metrics: task metrics at x_T, each [B], evaluations [T + 1, B] long or None (unknown).

    evaluations[t, i] counts the objective/gradient evaluations instance i used up to x_t: 1 at
    x_0 (f and ∇f), then per step the one at the new point plus the rule's own
    (`UpdateRule.extra_evaluations`, e.g. line-search trials); steps after divergence add none.
    A one-evaluation-per-step rule has evaluations[t] = t + 1."""

    objectives: Tensor
    diverged: Tensor
    diverged_at: Tensor
    f_star: Tensor | None
    metrics: dict[str, Tensor]
    evaluations: Tensor | None = None

    @property
    def final(self) -> Tensor:
        return self.objectives[-1]


@torch.no_grad()
def unroll(
    rule: UpdateRule,
    problem: Problem,
    horizon: int,
    *,
    history: int = DEFAULT_HISTORY,
    explode_ratio: float = DEFAULT_EXPLODE_RATIO,
    with_optimum: bool = False,
) -> Curves:
    """Run `rule` for `horizon` steps on all B instances of `problem` at once."""
    check_positive_int("horizon", horizon)
    state = OptimizationState.start(problem, history=history, explode_ratio=explode_ratio)
    rule.reset(state)
    objectives = [state.f.clone()]
    diverged_at = torch.full_like(state.t, -1)
    evaluations = [torch.ones_like(state.t)]
    for t in range(horizon):
        active = ~state.diverged
        step = rule.step(state)
        extra = rule.extra_evaluations()
        spent = 1 if extra is None else 1 + extra.to(evaluations[-1])
        evaluations.append(evaluations[-1] + active.long() * spent)
        diverged_now = state.advance(step)
        diverged_at = torch.where(diverged_now, torch.full_like(diverged_at, t + 1), diverged_at)
        objectives.append(state.f.clone())
    f_star = problem.optimum() if with_optimum else problem.f_star
    return Curves(
        objectives=torch.stack(objectives),
        diverged=state.diverged.clone(),
        diverged_at=diverged_at,
        f_star=f_star,
        metrics=problem.metrics(state.x),
        evaluations=torch.stack(evaluations),
    )
