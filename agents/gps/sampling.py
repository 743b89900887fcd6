"""Sampled trajectories of the local controllers on the training instances, all at once.

The B training instances are replicated N times (row n·B + b is sample n of instance b) and moved
through `OptimizationState.advance` together; coordinate i of instance b is condition c = b·d + i.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from agents.gps.coordinate_state import GRADIENT, LAST_STEP, coordinate_states, hessian_diagonal
from agents.gps.linear_gaussian import LinearGaussian
from l2o_gym.features import CoordinatewiseObservation
from l2o_gym.problem import Problem
from l2o_gym.state import OptimizationState


@dataclass
class Samples:
    """states [N, C, T + 1, 3], actions [N, C, T, 1], rows [N, C, T, F] (the policy's observation
    before each action), curvature [N, C, T + 1] (∂²f/∂x_i²), objectives [N, B, T + 1], weights [N, C]
    (1 where the sample's instance never diverged, else 0)."""

    states: Tensor
    actions: Tensor
    rows: Tensor
    curvature: Tensor
    objectives: Tensor
    weights: Tensor


def replicate(problem: Problem, copies: int) -> Problem:
    """The problem's B instances repeated `copies` times: row n·B + b is instance b."""
    return problem.select_rows(torch.arange(problem.batch_size, device=problem.device).repeat(copies))


@torch.no_grad()
def sample_trajectories(
    problem: Problem,
    controller: LinearGaussian,
    observation: CoordinatewiseObservation,
    samples: int,
    *,
    explore: bool = True,
    generator: torch.Generator | None = None,
    policy: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Samples:
    """N = `samples` rollouts of `controller` (its means only where explore=False) for its horizon.

    With `policy` (rows [N, C, F], (g, Δx_prev) [N, C, 2] -> steps [N, C]) the mean action is the
    policy's instead (on-policy sampling), the noise still the controller's covariance."""
    batch, dim, horizon = problem.batch_size, problem.dim, controller.horizon
    state = OptimizationState.start(replicate(problem, samples), history=observation.history)
    ctrl = controller.to(state.x.dtype)
    states, actions, rows, curvature, objectives = [], [], [], [], [state.f.view(samples, batch)]
    for t in range(horizon):
        s = coordinate_states(state).view(samples, batch * dim, -1)
        row = observation(state).view(samples, batch * dim, -1)
        if policy is None:
            mean = ctrl.mean(s, t)
        else:
            mean = policy(row, s[..., [GRADIENT, LAST_STEP]]).to(s.dtype).unsqueeze(-1)
        u = ctrl.sample(s, t, generator, mean) if explore else mean
        states.append(s)
        rows.append(row)
        curvature.append(hessian_diagonal(state.problem, state.x).view(samples, batch * dim))
        actions.append(u)
        state.advance(u.reshape(samples * batch, dim))
        objectives.append(state.f.view(samples, batch))
    states.append(coordinate_states(state).view(samples, batch * dim, -1))
    curvature.append(hessian_diagonal(state.problem, state.x).view(samples, batch * dim))
    ok = (~state.diverged).view(samples, batch, 1).expand(samples, batch, dim).reshape(samples, batch * dim)
    return Samples(
        states=torch.stack(states, 2),
        actions=torch.stack(actions, 2),
        rows=torch.stack(rows, 2),
        curvature=torch.stack(curvature, 2),
        objectives=torch.stack(objectives, 2),
        weights=ok.to(state.x.dtype),
    )
