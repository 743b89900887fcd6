"""Guided policy search's trajectory optimisation: LQR backward pass, KL step, dynamics fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.gps.dynamics import MixturePrior, fit_dynamics
from agents.gps.linear_gaussian import LinearGaussian
from agents.gps.lqr import (
    LinearDynamics,
    QuadraticCost,
    backward_pass,
    expected_cost,
    kl_constrained_update,
    within_limits,
)

S, A, T, C = 3, 1, 6, 4


def random_problem(seed: int = 0):
    """A random time-invariant linear system with a positive-definite quadratic cost, per condition."""
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(S, dtype=torch.float64) + 0.3 * torch.randn(C, S, S, generator=g, dtype=torch.float64)
    b = torch.randn(C, S, A, generator=g, dtype=torch.float64)
    m = torch.randn(C, S + A, S + A, generator=g, dtype=torch.float64)
    hess = m @ m.mT + 0.5 * torch.eye(S + A, dtype=torch.float64)
    dynamics = LinearDynamics(
        matrices=torch.cat([a, b], dim=2)[:, None].expand(C, T, S, S + A).clone(),
        offsets=torch.zeros(C, T, S, dtype=torch.float64),
        noise=1e-3 * torch.eye(S, dtype=torch.float64).expand(C, T, S, S).clone(),
        initial_mean=torch.randn(C, S, generator=g, dtype=torch.float64),
        initial_cov=1e-2 * torch.eye(S, dtype=torch.float64).expand(C, S, S).clone(),
    )
    cost = QuadraticCost(
        hess[:, None].expand(C, T + 1, S + A, S + A).clone(), torch.zeros(C, T + 1, S + A, dtype=torch.float64)
    )
    return a, b, hess, dynamics, cost


def riccati_gains(a: np.ndarray, b: np.ndarray, hess: np.ndarray) -> list[np.ndarray]:
    """Textbook finite-horizon discrete Riccati recursion with cross term N: gains K_0 .. K_{T-1}."""
    q, r, n = hess[:S, :S], hess[S:, S:], hess[:S, S:]
    p = q.copy()
    gains = []
    for _ in range(T):
        gain = -np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a + n.T)
        p = q + a.T @ p @ a - (a.T @ p @ b + n) @ np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a + n.T)
        gains.append(gain)
    return gains[::-1]


def test_backward_pass_equals_riccati_solution() -> None:
    a, b, hess, dynamics, cost = random_problem()
    controller = backward_pass(dynamics, cost)
    for c in range(C):
        expected = riccati_gains(a[c].numpy(), b[c].numpy(), hess[c].numpy())
        for t in range(T):
            np.testing.assert_allclose(controller.gains[c, t].numpy(), expected[t], rtol=1e-8, atol=1e-10)
    assert torch.allclose(controller.offsets, torch.zeros_like(controller.offsets))
    # maximum-entropy covariance: the inverse of Q_uu, positive
    assert (controller.covariances > 0).all()


def reference_controller() -> LinearGaussian:
    g = torch.Generator().manual_seed(3)
    return LinearGaussian(
        0.2 * torch.randn(C, T, A, S, generator=g, dtype=torch.float64),
        0.1 * torch.randn(C, T, A, generator=g, dtype=torch.float64),
        0.05 * torch.ones(C, T, A, A, dtype=torch.float64),
    )


@pytest.mark.parametrize("kl_step", [0.05, 0.2, 1.0])
def test_kl_bound_holds_and_is_reached_after_an_update(kl_step: float) -> None:
    _, _, _, dynamics, cost = random_problem(1)
    reference = reference_controller()
    new, eta, kl = kl_constrained_update(dynamics, cost, reference, kl_step)
    target = kl_step * T
    assert (kl <= target * (1 + 1e-9)).all()
    assert (kl >= 0.98 * target).all()  # the reference is far from optimal: the constraint is active
    assert (eta > 0).all()
    # the update lowers the expected cost, more so with a larger step
    assert (expected_cost(dynamics, cost, new) < expected_cost(dynamics, cost, reference)).all()


def test_larger_kl_step_gives_lower_cost() -> None:
    _, _, _, dynamics, cost = random_problem(2)
    reference = reference_controller()
    small, _, _ = kl_constrained_update(dynamics, cost, reference, 0.05)
    large, _, _ = kl_constrained_update(dynamics, cost, reference, 0.5)
    assert (expected_cost(dynamics, cost, large) < expected_cost(dynamics, cost, small)).all()


@pytest.mark.parametrize("prior_strength", [0.0, 1.0])
def test_dynamics_fit_recovers_a_known_linear_system(prior_strength: float) -> None:
    g = torch.Generator().manual_seed(0)
    n, horizon = 200, 5
    a = torch.eye(S, dtype=torch.float64) + 0.2 * torch.randn(C, horizon, S, S, generator=g, dtype=torch.float64)
    b = torch.randn(C, horizon, S, A, generator=g, dtype=torch.float64)
    offset = torch.randn(C, horizon, S, generator=g, dtype=torch.float64)
    states = torch.zeros(n, C, horizon + 1, S, dtype=torch.float64)
    states[:, :, 0] = torch.randn(n, C, S, generator=g, dtype=torch.float64)
    actions = torch.randn(n, C, horizon, A, generator=g, dtype=torch.float64)
    for t in range(horizon):
        nxt = torch.einsum("cij,ncj->nci", a[:, t], states[:, :, t]) + torch.einsum(
            "cij,ncj->nci", b[:, t], actions[:, :, t]
        )
        states[:, :, t + 1] = nxt + offset[:, t] + 1e-3 * torch.randn(n, C, S, generator=g, dtype=torch.float64)
    weights = torch.ones(n, C)
    fitted = fit_dynamics(states, actions, weights, MixturePrior(components=3, strength=prior_strength))
    # the prior (one pseudo-sample from a mixture over all steps) may pull a little off 200 samples
    tolerance = 1e-2 if prior_strength == 0 else 5e-2
    assert (fitted.matrices - torch.cat([a, b], dim=3)).abs().max() < tolerance
    assert (fitted.offsets - offset).abs().max() < tolerance
    noise_bound = 1e-4 if prior_strength == 0 else 0.1  # the prior's own spread enters the residual
    assert (torch.diagonal(fitted.noise, dim1=-2, dim2=-1) < noise_bound).all()


def test_gain_bound_holds_after_an_update_and_costs_some_improvement() -> None:
    _, _, _, dynamics, cost = random_problem(1)
    reference = reference_controller()
    free, _, free_kl = kl_constrained_update(dynamics, cost, reference, 1.0)
    limit = 0.5 * free.gains.abs().amax((1, 2))  # [C, S]: half of what the unbounded step wants
    limit = torch.maximum(limit, reference.gains.abs().amax((1, 2)))  # the reference itself meets it
    bounded, eta, kl = kl_constrained_update(dynamics, cost, reference, 1.0, gain_limits=limit)
    assert within_limits(bounded, limit).all()
    assert (bounded.gains.abs() <= limit[:, None, None, :] * (1 + 1e-6)).all()
    assert (kl <= 1.0 * T * (1 + 1e-9)).all()
    assert not within_limits(free, limit).all()  # the bound was active somewhere
    assert (kl <= free_kl + 1e-9).all()  # a smaller step towards the reference
    assert (expected_cost(dynamics, cost, bounded) <= expected_cost(dynamics, cost, reference) + 1e-9).all()


def test_a_bound_the_reference_breaks_stops_gains_beyond_the_reference() -> None:
    _, _, _, dynamics, cost = random_problem(2)
    reference = reference_controller()
    limit = torch.full((C, S), 1e-3, dtype=torch.float64)
    bounded, _, kl = kl_constrained_update(dynamics, cost, reference, 0.2, gain_limits=limit)
    allowed = torch.maximum(limit[:, None, None, :], reference.gains.abs())
    assert (bounded.gains.abs() <= allowed * (1 + 1e-6)).all()
    assert (kl > 0).all()  # still a step: towards gains no larger than the reference's
    assert (expected_cost(dynamics, cost, bounded) <= expected_cost(dynamics, cost, reference) + 1e-9).all()


def test_per_condition_kl_steps_are_each_met() -> None:
    _, _, _, dynamics, cost = random_problem(3)
    steps = torch.tensor([0.05, 0.2, 0.5, 1.0], dtype=torch.float64)
    _, _, kl = kl_constrained_update(dynamics, cost, reference_controller(), steps)
    assert (kl <= steps * T * (1 + 1e-9)).all()
    assert (kl >= 0.98 * steps * T).all()
