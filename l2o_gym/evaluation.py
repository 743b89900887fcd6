"""Held-out evaluation: every update rule on the very same instances, their curves and metrics.

`evaluate` draws ONE problem of B instances from a family's split (a generator seeded by `seed`),
computes each instance's optimum f* once where the family knows it, and unrolls every rule on
its own deep copy of that problem through `l2o_gym.unroll.unroll`, so all rules start from the
same x_0 on the same objectives. Curves are objectives [T + 1, B] per method; the metrics are
those of `l2o_gym.metrics` (suboptimality where f* is known), relative to the `reference` rule
(tuned Adam by convention); `EvaluationResult.failures` counts each method's diverged instances
and those that ended above their start. For families with a held-out query set the curves also
hold the query loss and the task metrics (query MSE, accuracy) at every step. The reference is
also run for `reference_horizon` steps (default 4 T) on another copy, so that speed-ups up to
reference_horizon / T can be measured.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from l2o_gym.metrics import (
    MethodMetrics,
    PairedComparison,
    curve_quantiles,
    curve_values,
    margin_of_victory,
    method_metrics,
    one_evaluation_per_step,
    paired_comparison,
)
from l2o_gym.problem import TaskFamily, check_positive_int, check_split
from l2o_gym.registry import make_family
from l2o_gym.state import DEFAULT_HISTORY
from l2o_gym.unroll import Curves, unroll
from l2o_gym.update_rule import UpdateRule


@dataclass
class EvaluationResult:
    """Curves and metrics of several methods on the same B instances of one family.

    `curves[name]` holds objectives [T + 1, B]; `metrics[name]` its `MethodMetrics`; `has_optimum`
    says whether values are suboptimalities f - f* (else raw objectives)."""

    env_id: str
    description: str
    dim: int
    split: str
    instances: int
    horizon: int
    seed: int
    reference: str | None
    curves: dict[str, Curves]
    metrics: dict[str, MethodMetrics]
    family_kwargs: dict[str, Any] = field(default_factory=dict)
    reference_long: Curves | None = None
    comparisons: list[PairedComparison] = field(default_factory=list)

    @property
    def reference_horizon(self) -> int | None:
        """Steps the reference ran to measure speed-ups (None without a reference)."""
        if self.reference is None:
            return None
        long = self.reference_long if self.reference_long is not None else self.curves[self.reference]
        return long.objectives.shape[0] - 1

    @property
    def methods(self) -> list[str]:
        return list(self.curves)

    @property
    def has_optimum(self) -> bool:
        return all(c.f_star is not None for c in self.curves.values())

    @property
    def value_name(self) -> str:
        return "f - f*" if self.has_optimum else "f"

    def values(self, method: str) -> torch.Tensor:
        """The method's values [T + 1, B]: suboptimality where f* is known, else the objective."""
        c = self.curves[method]
        return curve_values(c.objectives, c.f_star)

    def quantiles(self, method: str) -> torch.Tensor:
        """25 %, 50 % and 75 % quantiles of the method's values over instances: [3, T + 1]."""
        return curve_quantiles(self.values(method))

    def failures(self) -> dict[str, dict[str, int]]:
        """Per method, instances that failed: "diverged" (a non-finite or exploding objective; the
        run stopped at its last finite point) and "above_start" (finished above f(x_0) without
        crossing the divergence threshold): every blow-up is counted, none is silent."""
        return {
            name: {
                "diverged": int(c.diverged.sum()),
                "above_start": int((~c.diverged & (c.objectives[-1] > c.objectives[0])).sum()),
            }
            for name, c in self.curves.items()
        }

    def margin_curve(self, method: str) -> torch.Tensor | None:
        """Li & Malik's margin of victory at each step [T + 1], or None with a single method."""
        if len(self.curves) < 2:
            return None
        return margin_of_victory({m: self.values(m) for m in self.curves}, method)


def compare(result: EvaluationResult, method: str, against: str) -> PairedComparison:
    """`method` against `against` by Li & Malik's cost, instance by instance; also kept in
    `result.comparisons` (replacing an earlier comparison of the same pair)."""
    for name in (method, against):
        if name not in result.curves:
            raise ValueError(f"{name!r} is not among the evaluated methods {result.methods}")
    if method == against:
        raise ValueError(f"compare a method against another one, got {method!r} twice")
    ours, theirs = result.curves[method], result.curves[against]
    comparison = paired_comparison(
        method, result.values(method), ours.diverged, against, result.values(against), theirs.diverged
    )
    result.comparisons = [c for c in result.comparisons if (c.method, c.against) != (method, against)]
    result.comparisons.append(comparison)
    return comparison


def best_one_evaluation_rule(result: EvaluationResult, candidates: Sequence[str]) -> str | None:
    """The candidate with the lowest mean cost among those that used one evaluation per step on
    every instance (their curves' evaluation counts say so), or None where none qualifies."""
    qualified = [
        name
        for name in candidates
        if name in result.curves
        and result.curves[name].evaluations is not None
        and one_evaluation_per_step(result.curves[name].evaluations)
    ]
    return min(qualified, key=lambda name: result.metrics[name].mean_cost, default=None)


def check_rules(rules: Mapping[str, UpdateRule]) -> dict[str, UpdateRule]:
    """The rules as a dict, or a clear error: a non-empty mapping of str names to UpdateRules."""
    if not isinstance(rules, Mapping) or not rules:
        raise ValueError(f"rules must be a non-empty mapping of names to UpdateRules, got {rules!r}")
    for name, rule in rules.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"rule names must be non-empty strings, got {name!r}")
        if not isinstance(rule, UpdateRule):
            raise TypeError(f"rules[{name!r}] must be an l2o_gym UpdateRule, got {type(rule).__name__}")
    return dict(rules)


def evaluate(
    rules: Mapping[str, UpdateRule],
    env_id_or_family: str | TaskFamily,
    *,
    split: str = "test",
    instances: int = 100,
    horizon: int = 40,
    seed: int = 0,
    reference: str | None = "adam",
    history: int = DEFAULT_HISTORY,
    family_kwargs: Mapping[str, Any] | None = None,
    reference_horizon: int | None = None,
    device: str | torch.device = "cpu",
    metric_curves: bool | None = None,
) -> EvaluationResult:
    """Run every rule for `horizon` steps on the same `instances` instances of `split` and score them.

    `env_id_or_family` is a registered id (its family is built with `family_kwargs`, e.g. an
    out-of-distribution variation) or a TaskFamily. `reference` names the rule the speed-up and
    win rate are measured against (None: skip those metrics); it also runs `reference_horizon` steps
    (>= horizon, default 4 * horizon) for the speed-up. `metric_curves` records the task metrics
    (query MSE, accuracy, ...) at every step (default: where the family has a held-out query set;
    the query loss itself is recorded at every step for such families anyway). Every argument is
    checked before any instance is drawn.
    """
    rules = check_rules(rules)
    check_split(split)
    check_positive_int("instances", instances)
    check_positive_int("horizon", horizon)
    check_positive_int("history", history)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if reference is not None and reference not in rules:
        raise ValueError(
            f"reference {reference!r} is not among the rules {sorted(rules)}; add it or pass reference=None"
        )
    reference_horizon = 4 * horizon if reference_horizon is None else reference_horizon
    check_positive_int("reference_horizon", reference_horizon)
    if reference_horizon < horizon:
        raise ValueError(f"reference_horizon must be >= horizon ({horizon}), got {reference_horizon}")
    family_kwargs = dict(family_kwargs or {})
    if isinstance(env_id_or_family, TaskFamily):
        if family_kwargs:
            raise ValueError("family_kwargs apply to an env id only; this family is already built")
        family, env_id = env_id_or_family, type(env_id_or_family).__name__
    elif isinstance(env_id_or_family, str):
        family, env_id = make_family(env_id_or_family, **family_kwargs), env_id_or_family
    else:
        raise TypeError(f"env_id_or_family must be a registered env id or a TaskFamily, got {env_id_or_family!r}")

    problem = family.sample(instances, torch.Generator().manual_seed(seed), split=split, device=device)
    problem.optimum()  # once, shared by every copy (None where the family cannot give it)
    per_step = family.has_query if metric_curves is None else bool(metric_curves)
    curves = {
        name: unroll(rule, copy.deepcopy(problem), horizon, history=history, with_optimum=True, metric_curves=per_step)
        for name, rule in rules.items()
    }
    reference_long = None
    if reference is not None and reference_horizon > horizon:
        reference_long = unroll(
            rules[reference], copy.deepcopy(problem), reference_horizon, history=history, with_optimum=True
        )
    return EvaluationResult(
        env_id=env_id,
        description=family.description,
        dim=family.dim,
        split=split,
        instances=instances,
        horizon=horizon,
        seed=seed,
        reference=reference,
        curves=curves,
        metrics=method_metrics(curves, reference, reference_long),
        family_kwargs=family_kwargs,
        reference_long=reference_long,
    )
