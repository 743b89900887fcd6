"""Meta-training a `StepScheduleOptimizer` on a family's held-out query loss, first order.

One meta-iteration draws B training instances and runs the rule for `horizon` steps on the real
(non-differentiable) transition `OptimizationState.advance`. Beside the state it keeps the sum of
the proposed steps with their graph back to the log step sizes s; at each of the `loss_steps` the
query loss is evaluated at ``x_t + (Σ steps - Σ steps.detach())`` (the state's own x, carrying the
steps' graph), and the meta-loss is

    L = mean over loss_steps t of  mean over non-diverged instances b of  f_q,b(x_t) / |f_q,b(x_0)|.

Its gradient w.r.t. s is backpropagated through the unroll with the gradients fed to the rule (and
Adam's moments) held constant: first order, like first-order MAML, so one meta-iteration costs
`horizon` loss+gradient evaluations plus one query loss+gradient per loss step; no second
derivatives and no graph through the model's training loss are kept. Meta-optimizer: Adam on s
with gradient-norm clipping (`apply_meta_gradient`). Every `validate_every` iterations the rule is
unrolled on fixed validation instances and the s with the lowest mean final query loss is kept.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from agents.meta.step_schedule import PerTensorStepSchedule, StepScheduleOptimizer, parameter_segments
from agents.meta.truncated_unroll import apply_meta_gradient
from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll


def default_loss_steps(horizon: int, count: int = 4) -> list[int]:
    """`count` steps spread evenly over 1..horizon, the last one included."""
    return sorted({max(1, round(horizon * (i + 1) / count)) for i in range(count)})


def schedule_meta_iteration(
    rule: StepScheduleOptimizer,
    problem: Problem,
    meta_optimizer: torch.optim.Optimizer,
    *,
    horizon: int,
    loss_steps: list[int],
    grad_clip: float = 1.0,
) -> tuple[float, bool]:
    """One first-order meta-iteration on `problem`'s B instances -> (meta-loss, applied)."""
    state = OptimizationState.start(problem)
    rule.reset(state)
    query_scale = problem.query_loss(state.x).detach().abs() + 1e-12
    moved = torch.zeros_like(state.x)
    terms: list[Tensor] = []
    with torch.enable_grad():
        for t in range(1, horizon + 1):
            step = rule.step(state)
            moved = moved + step
            state.advance(step)
            if t in loss_steps:
                x = state.x + (moved - moved.detach())  # the state's values, the steps' graph
                ratio = problem.query_loss(x) / query_scale
                alive = ~state.diverged
                if alive.any():
                    terms.append(ratio[alive].mean())
        meta_loss = torch.stack(terms).mean() if terms else torch.tensor(float("nan"))
    params = list(rule.net.parameters())
    return float(meta_loss.detach()), apply_meta_gradient(meta_loss, params, meta_optimizer, grad_clip)


def final_query(rule: StepScheduleOptimizer, problem: Problem, horizon: int) -> float:
    """Mean query loss of the rule's iterates after `horizon` steps on a copy of `problem`."""
    return float(unroll(rule, copy.deepcopy(problem), horizon).query[-1].mean())


@dataclass
class ScheduleTraining:
    """What a run did: meta-losses per iteration, (iteration, validation figure) pairs, wall time,
    inner steps (B · horizon per iteration), the iteration whose s was kept and, for an ES-trained
    schedule, its parameters θ."""

    meta_losses: list[float] = field(default_factory=list)
    validations: list[tuple[int, float]] = field(default_factory=list)
    wall_s: float = 0.0
    inner_steps: int = 0
    best_iteration: int = 0
    theta: list[float] = field(default_factory=list)  # an ES-trained schedule's few parameters (schedule_es)

    def summary(self) -> dict[str, float | int]:
        return {
            "iterations": len(self.meta_losses),
            "inner_steps": self.inner_steps,
            "wall_s": round(self.wall_s, 1),
            "best_iteration": self.best_iteration,
            "best_validation_query": min(v for _, v in self.validations),
        }


def train_step_schedule(
    family: TaskFamily,
    *,
    horizon: int,
    initial_lr: float,
    iterations: int,
    batch_size: int,
    seed: int,
    direction: str = "adam",
    meta_lr: float = 0.03,
    validation_instances: int = 16,
    validate_every: int = 5,
    loss_steps: list[int] | None = None,
    learn_betas: bool = False,
) -> tuple[StepScheduleOptimizer, ScheduleTraining]:
    """Meta-train s on `iterations` batches of `batch_size` training instances (generator `seed`);
    return the rule holding the best-validated s and the run's record."""
    check_positive_int("iterations", iterations)
    check_positive_int("batch_size", batch_size)
    check_positive_int("validate_every", validate_every)
    if not family.has_query:
        raise ValueError(f"{type(family).__name__} has no held-out query set to meta-train on")
    net = PerTensorStepSchedule(parameter_segments(family), horizon, initial_lr, direction, learn_betas)
    rule = StepScheduleOptimizer(net)
    meta_optimizer = torch.optim.Adam(rule.net.parameters(), lr=meta_lr)
    generator = torch.Generator().manual_seed(seed)
    validation = family.sample(validation_instances, torch.Generator().manual_seed(seed + 1), split="validation")
    steps = loss_steps or default_loss_steps(horizon)
    record = ScheduleTraining()
    best_value, best_weights = final_query(rule, validation, horizon), copy.deepcopy(net.state_dict())
    record.validations.append((0, best_value))
    began = time.perf_counter()
    for iteration in range(1, iterations + 1):
        problem = family.sample(batch_size, generator, split="train")
        loss, _ = schedule_meta_iteration(rule, problem, meta_optimizer, horizon=horizon, loss_steps=steps)
        record.meta_losses.append(loss)
        record.inner_steps += batch_size * horizon
        if iteration % validate_every == 0 or iteration == iterations:
            value = final_query(rule, validation, horizon)
            record.validations.append((iteration, value))
            if value < best_value:
                best_value, best_weights = value, copy.deepcopy(net.state_dict())
                record.best_iteration = iteration
    record.wall_s = time.perf_counter() - began
    net.load_state_dict(best_weights)
    return rule, record


def save_trained(rule: StepScheduleOptimizer, record: ScheduleTraining, folder: Path, env_id: str) -> Path:
    """The rule as a saved-rule folder, its training record in the metadata."""
    return rule.save(folder, env_id, record.summary())
