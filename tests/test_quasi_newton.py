"""Quasi-Newton directions from the state's window: the pairs line up with the steps taken, the
recursion is L-BFGS's, and the window rule / features that use them."""

import copy

import pytest
import torch

import l2o_gym
from agents.hand_designed import HAND_DESIGNED, make_optimizer
from agents.hand_designed.window_adam_quasi_newton import ADAM_BETA
from l2o_gym.features import (
    MOMENTUM_BETAS,
    TIME_SCALES,
    CoordinatewiseObservation,
    make_observation,
    signed_log,
)
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


def test_window_adam_rule_is_a_function_of_a_coordinatewise_row():
    state, _ = walk(quadratic(), 5)
    observe = CoordinatewiseObservation(3, 8, action_scale=10.0, quasi_newton_pairs=5, time_features=True)
    rows = observe(state)  # ... Adam directions (3), quasi-Newton (2), time (4)
    times = rows[..., -len(TIME_SCALES) :]
    adam_row = rows[..., -len(TIME_SCALES) - 2 - len(MOMENTUM_BETAS) + MOMENTUM_BETAS.index(ADAM_BETA)]
    assert window_direction(state, 5).abs().max() < 10.0  # so the quasi-Newton column is direction / 10
    newton = 10.0 * rows[..., -len(TIME_SCALES) - 1]
    steps_taken = TIME_SCALES[-1] * torch.atanh(times[..., -1])  # t, read back from the row
    assert torch.allclose(steps_taken, torch.full_like(steps_taken, 5.0))
    rule = make_optimizer("window_adam_qn", lr=0.3, lr_decay_steps=20.0, qn_lr=0.5, qn_max_step=0.2)
    expected = -0.3 * torch.exp(-steps_taken / 20.0) * adam_row + (0.5 * newton).clamp(-0.2, 0.2)
    assert torch.allclose(rule.step(state), expected, atol=1e-10)
    assert ((0.5 * newton).abs() > 0.2).any() and ((0.5 * newton).abs() < 0.2).any()  # both cases seen
    # without the correction it is the window's Adam direction, within ±lr
    plain = make_optimizer("window_adam_qn", lr=0.3, qn_lr=0.0, lr_decay_steps=1e9)
    assert torch.allclose(plain.step(state), -0.3 * adam_row, atol=1e-8)
    assert plain.step(state).abs().max() <= 0.3 + 1e-12


def test_window_adam_rule_descends_and_the_correction_helps():
    problem = quadratic(n=6, dim=5)
    constant = {"lr": 0.03, "lr_decay_steps": 1e6}
    plain = unroll(make_optimizer("window_adam_qn", qn_lr=0.0, **constant), problem, 60)
    corrected = unroll(make_optimizer("window_adam_qn", qn_lr=1.0, qn_max_step=0.1, **constant), problem, 60)
    decayed = unroll(make_optimizer("window_adam_qn", lr=0.03, lr_decay_steps=10.0, qn_lr=0.0), problem, 60)
    assert (plain.final < 0.1 * plain.objectives[0]).all()  # f* = 0
    assert (corrected.final < 0.1 * plain.final).all()
    assert (decayed.final > plain.final).all()  # steps ~e^-6 times smaller by the end
    with pytest.raises(ValueError, match="qn_max_step"):
        make_optimizer("window_adam_qn", qn_max_step=0.0)
    with pytest.raises(ValueError, match="lr_decay_steps"):
        make_optimizer("window_adam_qn", lr_decay_steps=float("inf"))
    with pytest.raises(ValueError, match="pairs must be a positive int"):
        HAND_DESIGNED["window_adam_qn"](pairs=0)


def test_time_features_are_the_step_count_for_every_coordinate():
    state, _ = walk(quadratic(), 7)
    plain = CoordinatewiseObservation(3, 8, quasi_newton_pairs=2)
    timed = CoordinatewiseObservation(3, 8, quasi_newton_pairs=2, time_features=True)
    rows = timed(state)
    assert timed.num_features == plain.num_features + len(TIME_SCALES) and rows.shape[-1] == timed.num_features
    assert torch.equal(rows[..., : plain.num_features], plain(state))
    expected = torch.tanh(7.0 / torch.tensor(TIME_SCALES, dtype=rows.dtype))
    assert torch.allclose(rows[..., plain.num_features :], expected.expand(4, 3, -1))
    start = timed(OptimizationState.start(quadratic(), history=8))
    assert (start[..., plain.num_features :] == 0).all()
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="time_features must be true or false"):
            CoordinatewiseObservation(3, 8, time_features=bad)
    with pytest.raises(ValueError, match="time_features needs the coordinatewise"):
        make_observation(False, 3, 8, time_features=True)
