"""Run an update rule on a problem for a horizon, through the one transition, and keep the curve."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from l2o_gym.problem import Problem, check_positive_int
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, DEFAULT_HISTORY, OptimizationState
from l2o_gym.update_rule import UpdateRule


@dataclass
class Curves:
    """objectives [T + 1, B] (f(x_0) .. f(x_T); a diverged instance keeps its last finite value),
    diverged [B] bool, diverged_at [B] (step of divergence, -1 if never), f_star [B] or None,
    metrics: task metrics at x_T, each [B]; evaluations [T + 1, B] long or None (unknown); query:
    the held-out query loss [T + 1, B] where the problem has one (`Problem.has_query`), else None;
    metric_curves: the task metrics at x_0 .. x_T, each [T + 1, B], where the unroll was asked to
    record them (else empty).

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
    query: Tensor | None = None
    metric_curves: dict[str, Tensor] = field(default_factory=dict)

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
    metric_curves: bool = False,
) -> Curves:
    """Run `rule` for `horizon` steps on all B instances of `problem` at once.

    A rule with a learned starting point (`UpdateRule.start_points`) starts the instances there.
    The query loss is recorded at every step where the problem has one (one forward per step);
    with ``metric_curves=True`` the task metrics too (`Problem.metrics`, at every step).
    """
    check_positive_int("horizon", horizon)
    start = rule.start_points(problem)  # a learned initialisation, or None: the problem's own x0
    x0 = None if start is None else start.detach().to(problem.x0.dtype)
    state = OptimizationState.start(problem, x0, history=history, explode_ratio=explode_ratio)
    rule.reset(state)
    objectives = [state.f.clone()]
    query = [problem.query_loss(state.x)] if problem.has_query else []
    metrics = [problem.metrics(state.x)] if metric_curves else []
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
        if problem.has_query:
            query.append(problem.query_loss(state.x))
        if metric_curves:
            metrics.append(problem.metrics(state.x))
    f_star = problem.optimum() if with_optimum else problem.f_star
    return Curves(
        objectives=torch.stack(objectives),
        diverged=state.diverged.clone(),
        diverged_at=diverged_at,
        f_star=f_star,
        metrics=problem.metrics(state.x),
        evaluations=torch.stack(evaluations),
        query=torch.stack(query) if query else None,
        metric_curves={name: torch.stack([m[name] for m in metrics]) for name in metrics[0]} if metrics else {},
    )
