"""Meta-training a `WindowBlendOptimizer` on Li & Malik's cost itself, by evolution strategies.

The objective of θ on instance b is the sum of its Li & Malik costs at every horizon in
`horizons` (default T = 40 and 100):

    J_b(θ) = Σ_T Σ_{t=1..T} (f_b(x_t) - f*_b)  (+ DIVERGED_COST_PER_STEP per counted step if it diverged)

f*_b is a constant of the instance, so it drops out of every paired difference and is never
computed here (the figures below are Σ f, the cost plus Σ_T T·f*_b). One iteration draws P
training instances and runs 2P members in one batched unroll: member i holds θ + σε_i and member
P + i holds θ - σε_i on the same instance i (`antithetic_gradient`), so each pair's difference is a
paired cost difference. Adam on θ takes the estimate. Every `validate_every` iterations the mean J
of θ on fixed validation instances (thousands: differences between good rules are a few hundredths
of a standard deviation of the per-instance cost) is recorded, and the θ with the lowest is kept;
θ = 0 (the teacher; "iteration 0" in the log) is the first candidate, so the kept rule is the
teacher unless a trained θ did better on validation. The loop is `agents.meta.antithetic_es`'s.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from agents.meta.antithetic_es import ESSettings, es_search
from agents.meta.step_schedule_training import ScheduleTraining
from agents.meta.window_blend_rule import WindowBlendOptimizer, WindowBlendParameters
from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.unroll import unroll

DIVERGED_COST_PER_STEP = 10.0
HORIZONS = (40, 100)


def blend_costs(net: WindowBlendParameters, problem: Problem, theta: Tensor, horizons: tuple[int, ...]) -> Tensor:
    """J [B] of θ ([n], or [B, n]: one θ per instance) on `problem`'s B instances (module docstring)."""
    population = theta.detach().expand(problem.batch_size, -1).contiguous()
    curves = unroll(WindowBlendOptimizer(net, population), problem, max(horizons))
    objectives = curves.objectives.double()
    total = sum(objectives[1 : T + 1].sum(dim=0) for T in horizons)
    penalty = DIVERGED_COST_PER_STEP * sum(horizons)
    return torch.where(curves.diverged, total + penalty, total)


def population_costs(
    net: WindowBlendParameters, problem: Problem, horizons: tuple[int, ...]
) -> Callable[[Tensor], Tensor]:
    """The ES objective of a population [2P, n] on `problem`'s P instances: member i and P + i on instance i."""

    def objective(population: Tensor) -> Tensor:
        pairs = population.shape[0] // 2
        if problem.batch_size != pairs:
            raise ValueError(f"a population of {population.shape[0]} needs {pairs} instances")
        both = problem.select_rows(torch.arange(pairs).repeat(2))
        return blend_costs(net, both, population, horizons)

    return objective


def train_window_blend(
    family: TaskFamily,
    teacher: dict[str, float],
    *,
    iterations: int,
    instances: int,
    seed: int,
    sigma: float = 0.2,
    meta_lr: float = 0.01,
    knots: int = 5,
    horizons: tuple[int, ...] = HORIZONS,
    validation_instances: int = 4096,
    validate_every: int = 10,
    log: Callable[[str], None] | None = None,
) -> tuple[WindowBlendOptimizer, ScheduleTraining]:
    """ES-train θ from 0 (the teacher: tuned window_qn settings `teacher`) for `iterations` iterations
    of `instances` training instances; return the rule of the best-validated θ and the run's record
    (`meta_losses`: each iteration's mean J over its population; `validations`: (iteration, mean J)
    on the validation instances, drawn with seed + 1)."""
    settings = ESSettings(iterations, instances, sigma, meta_lr, seed, validate_every)
    check_positive_int("validation_instances", validation_instances)
    net = WindowBlendParameters(teacher, max(horizons), knots)
    validation = family.sample(validation_instances, torch.Generator().manual_seed(seed + 1), split="validation")

    def draw(generator: torch.Generator) -> Callable[[Tensor], Tensor]:
        return population_costs(net, family.sample(instances, generator, split="train"), horizons)

    def validate(theta: Tensor) -> float:
        return float(blend_costs(net, validation, theta, horizons).mean())

    best_theta, record = es_search(torch.zeros(net.size), draw, validate, settings, max(horizons), log)
    with torch.no_grad():
        net.theta.copy_(best_theta)
    return WindowBlendOptimizer(net), record
