"""Quasi-Newton directions from the state's window: the pairs line up with the steps taken, the
recursion is L-BFGS's, and the window rule / features that use them."""

import copy

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from l2o_gym.features import CoordinatewiseObservation, make_observation, signed_log
from l2o_gym.quasi_newton import two_loop, window_direction
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll


def quadratic(n=4, dim=3, seed=0):
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=dim)
    problem = copy.copy(family.sample(n, torch.Generator().manual_seed(seed), "train"))
    problem.x0, problem.W, problem.y = problem.x0.double(), problem.W.double(), problem.y.double()
    return problem


def walk(problem, steps, history=8, seed=1):
    """A state after `steps` random small steps, and the (s, y) pairs taken, oldest first."""
    state = OptimizationState.start(problem, history=history)
    generator = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(steps):
        x, g = state.x.clone(), state.grad.clone()
        state.advance(0.05 * torch.randn(state.x.shape, generator=generator, dtype=state.x.dtype))
        pairs.append((state.x - x, state.grad - g))
    return state, pairs


def test_no_direction_before_the_first_step():
    state = OptimizationState.start(quadratic(), history=6)
    assert window_direction(state, 3).abs().sum() == 0


def test_one_dimension_gives_the_newton_step():
    problem = quadratic(dim=1)
    state, _ = walk(problem, 1)
    solution = torch.linalg.solve(problem.W, problem.y)  # a quadratic's minimiser: exact in 1-D
    assert torch.allclose(state.x + window_direction(state, 1), solution, atol=1e-9)


@pytest.mark.parametrize("pairs", [1, 3, 5])
def test_the_window_pairs_are_the_steps_taken(pairs):
    state, taken = walk(quadratic(), 6)
    S = torch.stack([s for s, _ in taken[-pairs:]], dim=1)
    Y = torch.stack([y for _, y in taken[-pairs:]], dim=1)
    sy = (S * Y).sum(dim=2)
    gamma = sy[:, -1] / Y[:, -1].square().sum(dim=1)
    expected = -two_loop(state.grad, S, Y, 1.0 / sy, gamma)
    assert (sy > 0).all()  # a convex quadratic: every pair counts
    assert torch.allclose(window_direction(state, pairs), expected, atol=1e-10)
    assert ((window_direction(state, pairs) * state.grad).sum(dim=1) < 0).all()


def test_bad_pair_counts_are_refused():
    state = OptimizationState.start(quadratic(), history=4)
    for pairs in (0, 4, 2.0, True):
        with pytest.raises(ValueError, match="pairs must be an int in"):
            window_direction(state, pairs)
    with pytest.raises(ValueError, match="quasi_newton_pairs must be an int in"):
        CoordinatewiseObservation(3, 4, quasi_newton_pairs=4)
    with pytest.raises(ValueError, match="needs the coordinatewise"):
        make_observation(False, 3, 4, quasi_newton_pairs=2)


def test_features_append_the_direction_in_two_forms():
    state, _ = walk(quadratic(), 4)
    plain = CoordinatewiseObservation(3, 8, action_scale=0.1)
    with_newton = CoordinatewiseObservation(3, 8, action_scale=0.1, quasi_newton_pairs=3)
    rows = with_newton(state)
    assert rows.shape == (4, 3, plain.num_features + 2) and with_newton.num_features == plain.num_features + 2
    assert torch.equal(rows[..., :-2], plain(state))
    direction = window_direction(state, 3)
    assert torch.allclose(rows[..., -2], signed_log(direction))
    assert torch.allclose(rows[..., -1], (direction / 0.1).clamp(-1, 1))


def test_window_rule_reaches_a_quadratics_minimum_with_one_evaluation_per_step():
    problem = quadratic(n=6, dim=5)
    curves = unroll(make_optimizer("window_qn", max_step=10.0), problem, 40)
    assert (curves.final < 1e-5 * curves.objectives[0]).all()  # f* = 0
    assert (curves.final < unroll(make_optimizer("gd", lr=0.01), problem, 40).final).all()
    # the first step is a clipped gradient step
    state = OptimizationState.start(problem)
    rule = make_optimizer("window_qn", gd_lr=0.5, max_step=0.01)
    assert torch.allclose(rule.step(state), (-0.5 * state.grad).clamp(-0.01, 0.01))
