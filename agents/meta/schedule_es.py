"""A few-parameter step schedule on Adam's direction, meta-trained by evolution strategies (ES).

The schedule (`ScheduleShape`): θ [K + J] holds a log step-size offset c_k per parameter tensor
(K tensors of the family's layout) and J knots g_j of a log step-size profile shared by all
tensors, the knots evenly spaced over steps 0..T-1 and linear in between:

    log lr[t, k] = log lr_0 + c_k + g(t)        (θ = 0: Adam with step size lr_0)

so it can express a per-tensor step size and a warm-up / decay shape with K + J numbers rather than
T·K. The trained θ becomes a `PerTensorStepSchedule` (`ScheduleShape.rule`), saved, loaded and
evaluated like the first-order learner's.

The meta-gradient is an antithetic ES estimate (`antithetic_gradient`, Salimans et al., 2017) of
the objective F(θ) = mean over `loss_steps` t of f_q(x_t) / f_q(x_0), the query loss relative to
the start: it needs no backpropagation through the unroll, so the horizon can be as long as the
inner loop needs (the first-order meta-gradient, which holds the gradients fed to the rule
constant, points the wrong way over long unrolls on the MANN). One meta-iteration draws P
training instances and runs 2P members at once (`population_objective`, one batched unroll): member
i runs θ + σε_i and member P + i runs θ - σε_i on the *same* instance (same x_0, same query set),
so the pair's difference cancels the instance's own level. Adam on θ takes the estimate; every
`validate_every` iterations θ is scored on fixed validation instances (the same objective, the
same minibatch draws each time) and the best θ is kept.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor

from agents.meta.antithetic_es import ESSettings, es_search
from agents.meta.antithetic_es import antithetic_gradient as antithetic_gradient  # re-exported
from agents.meta.step_schedule import BETA1, BETA2, PerTensorStepSchedule, StepScheduleOptimizer, parameter_segments
from agents.meta.step_schedule_training import ScheduleTraining, default_loss_steps
from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.state import OptimizationState

DIVERGED_RATIO = 2.0  # the objective of a member whose iterates diverged (the start is 1.0)


class ScheduleShape:
    """θ [K + J] -> log step sizes [T, K]: per-tensor offsets c [K] plus a shared profile of J knots."""

    def __init__(self, segments: list[int], horizon: int, initial_lr: float, knots: int = 5) -> None:
        self.segments = [int(n) for n in segments]
        self.horizon = check_positive_int("horizon", horizon)
        if not initial_lr > 0:
            raise ValueError(f"initial_lr must be > 0, got {initial_lr!r}")
        if isinstance(knots, bool) or not isinstance(knots, int) or knots < 2:
            raise ValueError(f"knots must be an int >= 2, got {knots!r}")
        self.initial_lr, self.knots = float(initial_lr), knots
        # interpolation weights [T, J]: step t between knots at positions j * (T - 1) / (J - 1)
        position = torch.arange(horizon, dtype=torch.float64) * (knots - 1) / max(horizon - 1, 1)
        self.weights = torch.clamp(1 - (position.unsqueeze(1) - torch.arange(knots)).abs(), min=0).float()

    @property
    def size(self) -> int:
        """The number of entries of θ (K + J)."""
        return len(self.segments) + self.knots

    def log_lr(self, theta: Tensor) -> Tensor:
        """θ [P, K + J] (or [K + J]) -> log step sizes [P, T, K] (or [T, K])."""
        if theta.shape[-1] != self.size:
            raise ValueError(f"theta must have {self.size} entries in its last dimension, got {tuple(theta.shape)}")
        offsets, knots = theta[..., : len(self.segments)], theta[..., len(self.segments) :]
        profile = knots @ self.weights.T  # [..., T]
        return math.log(self.initial_lr) + offsets.unsqueeze(-2) + profile.unsqueeze(-1)

    def rule(self, theta: Tensor) -> StepScheduleOptimizer:
        """The schedule of θ [K + J] as a saveable `StepScheduleOptimizer` (Adam's direction)."""
        net = PerTensorStepSchedule(self.segments, self.horizon, self.initial_lr)
        with torch.no_grad():
            net.log_lr.copy_(self.log_lr(theta.detach()))
        return StepScheduleOptimizer(net)


class PopulationSchedule:
    """Per-instance log step sizes [B, T, K] in the role of a `PerTensorStepSchedule` (Adam's
    direction, constant betas): `StepScheduleOptimizer(PopulationSchedule(...))` steps B instances,
    each with its own schedule."""

    direction = "adam"
    learn_betas = False

    def __init__(self, log_lr: Tensor, segments: list[int]) -> None:
        if log_lr.dim() != 3 or log_lr.shape[2] != len(segments):
            raise ValueError(f"log_lr must have shape [B, T, {len(segments)}], got {tuple(log_lr.shape)}")
        self.log_lr, self.dim = log_lr, sum(segments)
        self.tensor_of = torch.repeat_interleave(torch.arange(len(segments)), torch.tensor(segments))

    def step_sizes(self, t: int) -> Tensor:
        """Per-instance, per-coordinate step sizes [B, d] at step t (beyond T: the last row)."""
        return self.log_lr[:, min(t, self.log_lr.shape[1] - 1)].exp()[:, self.tensor_of]

    def betas(self) -> tuple[float, float]:
        """Adam's constants (β1, β2)."""
        return BETA1, BETA2


@torch.no_grad()
def population_objective(problem: Problem, log_lr: Tensor, segments: list[int], loss_steps: list[int]) -> Tensor:
    """Run instance b of `problem` with its own schedule log_lr[b] [T, K] for max(loss_steps) steps
    -> F [B]: mean over `loss_steps` of f_q(x_t) / f_q(x_0); DIVERGED_RATIO where it diverged."""
    rule = StepScheduleOptimizer(PopulationSchedule(log_lr, segments))
    state = OptimizationState.start(problem, history=1)
    rule.reset(state)
    start = problem.query_loss(state.x).abs() + 1e-12
    ratios = []
    for t in range(1, max(loss_steps) + 1):
        state.advance(rule.step(state))
        if t in loss_steps:
            ratios.append(problem.query_loss(state.x) / start)
    value = torch.stack(ratios).mean(dim=0)
    return torch.where(state.diverged | ~torch.isfinite(value), torch.full_like(value, DIVERGED_RATIO), value)


def schedule_objective(shape: ScheduleShape, problem: Problem, loss_steps: list[int]) -> Callable[[Tensor], Tensor]:
    """The objective of a population [2P, n] on `problem`'s P instances: member i and P + i on instance i."""

    def objective(population: Tensor) -> Tensor:
        pairs = population.shape[0] // 2
        if problem.batch_size != pairs:
            raise ValueError(f"a population of {population.shape[0]} needs {population.shape[0] // 2} instances")
        both = problem.select_rows(torch.arange(pairs).repeat(2))
        return population_objective(both, shape.log_lr(population), shape.segments, loss_steps)

    return objective


def validation_objective(shape: ScheduleShape, theta: Tensor, problem: Problem, loss_steps: list[int]) -> float:
    """Mean F of θ on a copy of `problem` (its generator copied too: the same minibatches every time)."""
    problem = copy.deepcopy(problem)
    log_lr = shape.log_lr(theta.detach()).expand(problem.batch_size, -1, -1)
    return float(population_objective(problem, log_lr, shape.segments, loss_steps).mean())


def train_schedule_es(
    family: TaskFamily,
    *,
    horizon: int,
    initial_lr: float,
    iterations: int,
    instances: int,
    seed: int,
    sigma: float = 0.3,
    meta_lr: float = 0.05,
    knots: int = 5,
    loss_steps: list[int] | None = None,
    validation_instances: int = 24,
    validate_every: int = 10,
    log: Callable[[str], None] | None = None,
) -> tuple[StepScheduleOptimizer, ScheduleTraining]:
    """ES-train θ for `iterations` iterations of `instances` training instances (2·instances members)
    from θ = 0 (Adam with `initial_lr`); return the rule of the best-validated θ and the run's record
    (`meta_losses`: each iteration's mean F over its population; inner steps: 2·instances·T each);
    `log` gets a line at every validation."""
    settings = ESSettings(iterations, instances, sigma, meta_lr, seed, validate_every)
    if not family.has_query:
        raise ValueError(f"{type(family).__name__} has no held-out query set to meta-train on")
    shape = ScheduleShape(parameter_segments(family), horizon, initial_lr, knots)
    steps = loss_steps or default_loss_steps(horizon)
    validation = family.sample(validation_instances, torch.Generator().manual_seed(seed + 1), split="validation")

    def draw(generator: torch.Generator) -> Callable[[Tensor], Tensor]:
        return schedule_objective(shape, family.sample(instances, generator, split="train"), steps)

    def validate(theta: Tensor) -> float:
        return validation_objective(shape, theta, validation, steps)

    best_theta, record = es_search(torch.zeros(shape.size), draw, validate, settings, horizon, log)
    return shape.rule(best_theta), record
