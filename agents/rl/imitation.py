"""Imitation warm start: fit a coordinatewise policy's action to a teacher optimizer's steps
before reinforcement learning (Open-L2O's lesson: learned optimizers start better from a good
hand-designed rule than from scratch).

The teacher (any UpdateRule, e.g. tuned momentum) runs on training instances through the one
transition; at every step each coordinate's observation row [F] is paired with the teacher's
action for it, step / action_scale clipped to [-1, 1]. The policy's mean action is regressed on
those pairs (mean squared error, Adam), so PPO then refines a rule that already optimizes.
`teacher_rows(..., student=...)` gives DAgger's pairs instead: the teacher's action on the
student's own states.
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.problem import TaskFamily, check_positive_int
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule


@torch.no_grad()
def teacher_rows(
    teacher: UpdateRule,
    family: TaskFamily,
    *,
    instances: int,
    horizon: int,
    observation: ObservationSpec,
    seed: int = 0,
    student: UpdateRule | None = None,
) -> tuple[Tensor, Tensor]:
    """Observation rows [N, F] (the coordinatewise `observation` spec's: history, action scale,
    extra features) along the `student`'s trajectories (default: the teacher's own), each paired
    with the action [N, 1] the teacher would take there. DAgger passes a student: the teacher then
    follows the student's states, its own buffers fed with the gradients the student sees."""
    student = teacher if student is None else student
    check_positive_int("instances", instances)
    check_positive_int("horizon", horizon)
    if not isinstance(observation, ObservationSpec) or not observation.coordinatewise:
        raise ValueError(f"imitation needs a coordinatewise ObservationSpec, got {observation!r}")
    problem = family.sample(instances, torch.Generator().manual_seed(seed), "train")
    state = OptimizationState.start(problem, history=observation.history)
    action_scale = observation.action_scale
    student.reset(state)
    teacher.reset(state)
    rows, actions = [], []
    for _ in range(horizon):
        label = teacher.step(state)
        step = label if student is teacher else student.step(state)
        live = ~state.diverged & torch.isfinite(label).all(dim=1)
        rows.append(observation.observe(state)[live].reshape(-1, observation.num_features))
        actions.append((label[live] / action_scale).clamp(-1.0, 1.0).reshape(-1, 1))
        state.advance(step)
    return torch.cat(rows), torch.cat(actions)


def imitate(
    policy: torch.nn.Module,
    rows: Tensor,
    actions: Tensor,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 4096,
    seed: int = 0,
) -> float:
    """Regress the SB3 policy's mean action on the teacher's; returns the final mean squared error."""
    device = next(policy.parameters()).device
    rows, actions = rows.to(device), actions.to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        order = torch.randperm(rows.shape[0], generator=generator).to(device)
        for start in range(0, rows.shape[0], batch_size):
            batch = order[start : start + batch_size]
            mean = policy.get_distribution(rows[batch]).distribution.mean
            loss = torch.nn.functional.mse_loss(mean, actions[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    policy.set_training_mode(False)
    return float(loss.detach())
