"""Hand-designed optimizers: equal to torch.optim per instance, batched = per instance, L-BFGS and
CG reach the optimum of a convex quadratic like torch.optim.LBFGS, clear errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from agents.hand_designed import HAND_DESIGNED, make_optimizer
from agents.hand_designed.line_search import armijo_backtracking
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll
from tasks.logistic_regression import LogisticRegressionFamily
from tasks.quadratic import QuadraticFamily
from tasks.robust_linear_regression import RobustLinearRegressionFamily

TORCH_OPTIM = {
    "gd": (torch.optim.SGD, {"lr": 0.5}, {"lr": 0.5}),
    "momentum": (torch.optim.SGD, {"lr": 0.3, "momentum": 0.9}, {"lr": 0.3, "momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"lr": 0.3, "momentum": 0.8}, {"lr": 0.3, "momentum": 0.8, "nesterov": True}),
    "adam": (torch.optim.Adam, {"lr": 0.1, "beta1": 0.8}, {"lr": 0.1, "betas": (0.8, 0.999)}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9}, {"lr": 0.01, "alpha": 0.9}),
    "adagrad": (torch.optim.Adagrad, {"lr": 0.3}, {"lr": 0.3}),
}


def to_double(problem):
    problem = copy.copy(problem)
    for name in ("x0", *problem.instance_fields):
        value = getattr(problem, name)
        setattr(problem, name, value.double() if value.is_floating_point() else value)
    return problem


def single(problem, i):
    """The i-th instance alone, as a problem of batch size 1."""
    alone = copy.copy(problem)
    for name in ("x0", *problem.instance_fields):
        setattr(alone, name, getattr(problem, name)[i : i + 1].clone())
    alone.f_star = None
    return alone


def drive(rule, problem, steps):
    """Run `rule` through the one transition; return the final state."""
    state = OptimizationState.start(problem)
    rule.reset(state)
    for _ in range(steps):
        state.advance(rule.step(state))
    return state


def logistic(n=3, seed=0):
    return to_double(LogisticRegressionFamily().sample(n, torch.Generator().manual_seed(seed), "test"))


def robust(n=4, seed=2):
    return to_double(RobustLinearRegressionFamily().sample(n, torch.Generator().manual_seed(seed), "test"))


@pytest.mark.parametrize("name", list(TORCH_OPTIM))
def test_elementwise_matches_torch_optim_per_instance(name):
    optimizer_cls, hparams, torch_kwargs = TORCH_OPTIM[name]
    problem = logistic()
    state = drive(make_optimizer(name, **hparams), problem, 20)
    for i in range(problem.batch_size):
        alone = single(problem, i)
        x = alone.init().requires_grad_(True)
        optimizer = optimizer_cls([x], **torch_kwargs)
        for _ in range(20):
            optimizer.zero_grad()
            alone.loss(x).sum().backward()
            optimizer.step()
        torch.testing.assert_close(state.x[i], x.detach()[0], atol=1e-10, rtol=1e-9)
    assert not state.diverged.any()


@pytest.mark.parametrize("name", list(HAND_DESIGNED))
@pytest.mark.parametrize("make_problem", [logistic, lambda: robust()])
def test_batched_equals_per_instance(name, make_problem):
    problem = make_problem()
    batched = unroll(make_optimizer(name), problem, 15)
    for i in range(problem.batch_size):
        alone = unroll(make_optimizer(name), single(problem, i), 15)
        torch.testing.assert_close(batched.objectives[:, i], alone.objectives[:, 0], atol=1e-9, rtol=1e-7)
    assert batched.objectives[-1].le(batched.objectives[0]).all()


def quadratic(n=3):
    return to_double(QuadraticFamily(dim=5, init_std=1.0).sample(n, torch.Generator().manual_seed(5), "test"))


@pytest.mark.parametrize("name", ["lbfgs", "cg"])
def test_line_search_methods_reach_quadratic_optimum_like_torch_lbfgs(name):
    problem = quadratic()
    x_solution = torch.linalg.solve(problem.W, problem.y)
    state = drive(make_optimizer(name), problem, 60)
    assert state.f.max() < 1e-12
    torch.testing.assert_close(state.x, x_solution, atol=1e-5, rtol=1e-5)
    for i in range(problem.batch_size):  # torch's own L-BFGS reaches the same point
        alone = single(problem, i)
        x = alone.init().requires_grad_(True)
        reference = torch.optim.LBFGS(
            [x], max_iter=60, line_search_fn="strong_wolfe", tolerance_grad=1e-14, tolerance_change=0.0
        )

        def closure(x=x, alone=alone, reference=reference):
            reference.zero_grad()
            loss = alone.loss(x).sum()
            loss.backward()
            return loss

        reference.step(closure)
        torch.testing.assert_close(x.detach()[0], x_solution[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state.x[i], x.detach()[0], atol=1e-5, rtol=1e-5)


def test_lbfgs_beats_gradient_descent_on_ill_conditioned_quadratic():
    problem = quadratic()
    lbfgs = unroll(make_optimizer("lbfgs"), problem, 10)
    gd = unroll(make_optimizer("gd", lr=0.01), problem, 10)
    assert (lbfgs.final < gd.final).all()


def test_armijo_line_search():
    problem = quadratic(n=2)
    x = problem.init()
    f, g = problem.loss_and_grad(x)
    result = armijo_backtracking(problem, x, f, g, -g, torch.full((2,), 100.0, dtype=x.dtype))
    assert result.found.all() and (result.alpha > 0).all()
    assert (result.f <= f + 1e-4 * result.alpha * (-g.pow(2).sum(dim=1))).all()
    torch.testing.assert_close(result.f, problem.loss(x + result.alpha.unsqueeze(1) * -g))
    ascent = armijo_backtracking(problem, x, f, g, g, torch.ones(2, dtype=x.dtype))
    assert not ascent.found.any() and (ascent.alpha == 0).all()
    with pytest.raises(ValueError, match="c1"):
        armijo_backtracking(problem, x, f, g, -g, torch.ones(2), c1=2.0)


def test_divergence_is_handled_by_the_state():
    curves = unroll(make_optimizer("gd", lr=1e4), quadratic(), 10)
    assert curves.diverged.all() and torch.isfinite(curves.objectives).all()


def test_registry_and_grids():
    assert set(HAND_DESIGNED) == {
        "gd",
        "momentum",
        "nesterov",
        "adam",
        "rmsprop",
        "adagrad",
        "cg",
        "lbfgs",
        "window_qn",
        "window_adam_qn",
    }
    for name, cls in HAND_DESIGNED.items():
        grid = cls.default_grid()
        assert grid and set(grid) <= set(cls.HYPERPARAMETERS), name
        assert make_optimizer(name).name == name
        lrs = grid["lr"]
        assert all(b > a for a, b in zip(lrs, lrs[1:], strict=False))
    lrs = HAND_DESIGNED["adam"].default_grid()["lr"]
    assert math.isclose(lrs[0], 1e-4) and lrs[-1] >= 1.0
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1.001  # log-spaced
    assert "momentum" in HAND_DESIGNED["momentum"].default_grid()


@pytest.mark.parametrize(
    "name, hparams, match",
    [
        ("sgd2", {}, "allowed: .*adam"),
        ("adam", {"momentum": 0.9}, "allowed: .*lr"),
        ("gd", {"lr": -1.0}, "lr"),
        ("momentum", {"momentum": 1.5}, "momentum"),
        ("lbfgs", {"lr": float("nan")}, "lr"),
    ],
)
def test_bad_optimizer_input(name, hparams, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, **hparams)


@pytest.mark.parametrize("name", sorted(set(HAND_DESIGNED) - {"window_qn", "window_adam_qn"}))  # no buffers
def test_step_before_reset_raises(name):
    state = OptimizationState.start(quadratic())
    with pytest.raises(RuntimeError, match="reset"):
        make_optimizer(name).step(state)
