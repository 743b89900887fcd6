"""The one transition: OptimizationState.advance, divergence, histories, row replacement."""

import pytest
import torch

from l2o_gym import make_family
from l2o_gym.state import OptimizationState, relative_change


def _problem(n=3, seed=0):
    return make_family("l2o/Quadratic-v0", dim=4).sample(n, torch.Generator().manual_seed(seed))


def test_start_zero_fills_histories_with_current_gradient_last():
    problem = _problem()
    state = OptimizationState.start(problem, history=5)
    f, g = problem.loss_and_grad(problem.init())
    assert torch.allclose(state.f, f) and torch.allclose(state.grad, g)
    assert torch.equal(state.grad_history[:, -1], g)
    assert state.grad_history[:, :-1].abs().sum() == 0
    assert state.change_history.abs().sum() == 0 and state.step_history.abs().sum() == 0
    assert state.t.tolist() == [0, 0, 0]


def test_advance_moves_x_and_pushes_histories():
    problem = _problem()
    state = OptimizationState.start(problem, history=3)
    x0, f0 = state.x.clone(), state.f.clone()
    step = 0.01 * torch.ones_like(x0)
    state.advance(step)
    assert torch.allclose(state.x, x0 + step)
    f1, g1 = problem.loss_and_grad(x0 + step)
    assert torch.allclose(state.f, f1)
    assert torch.equal(state.grad_history[:, -1], state.grad)
    assert torch.allclose(state.change_history[:, -1], relative_change(f1, f0))
    assert torch.equal(state.last_step, step)
    assert torch.equal(state.step_history[:, -1], step) and state.step_history[:, :-1].abs().sum() == 0
    assert state.t.tolist() == [1, 1, 1]


def test_analytic_gradient_matches_autograd():
    problem = _problem()
    x = torch.randn(3, 4)
    f, g = problem.loss_and_grad(x)
    from l2o_gym.problem import autograd_loss_and_grad

    f2, g2 = autograd_loss_and_grad(problem.loss, x)
    assert torch.allclose(f, f2, rtol=1e-5) and torch.allclose(g, g2, rtol=1e-4, atol=1e-5)


def test_divergence_freezes_only_that_instance():
    state = OptimizationState.start(_problem(), explode_ratio=10.0)
    x_before = state.x.clone()
    step = torch.zeros(3, 4)
    step[1] = 1e6
    step[2, 0] = float("nan")
    diverged = state.advance(step)
    assert diverged.tolist() == [False, True, True]
    assert torch.equal(state.x[1:], x_before[1:])
    assert torch.isfinite(state.grad_history).all() and torch.isfinite(state.x).all()
    assert state.step_history[1:].abs().sum() == 0  # the refused steps are not in the history
    # later steps leave diverged instances untouched and do not report them again
    again = state.advance(torch.full((3, 4), 0.01))
    assert again.tolist() == [False, False, False]
    assert torch.equal(state.x[1:], x_before[1:])
    assert state.t.tolist() == [2, 1, 1]


def test_step_shape_is_checked():
    state = OptimizationState.start(_problem())
    with pytest.raises(ValueError, match="step must have shape"):
        state.advance(torch.zeros(3, 5))


def test_replace_rows_replaces_problem_and_state_together():
    state = OptimizationState.start(_problem(seed=0))
    state.advance(torch.full((3, 4), 0.01))
    fresh = OptimizationState.start(_problem(n=1, seed=1))
    mask = torch.tensor([False, True, False])
    state.replace_rows(mask, fresh)
    assert torch.equal(state.problem.W[1], fresh.problem.W[0])
    assert torch.equal(state.x[1], fresh.x[0]) and state.t.tolist() == [1, 0, 1]
    f, _ = state.problem.loss_and_grad(state.x)
    assert torch.allclose(f, state.f)
