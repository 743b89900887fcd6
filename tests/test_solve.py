"""The batched optimum solvers: L-BFGS and Newton with a family's Hessian."""

from __future__ import annotations

import copy

import torch

from l2o_gym.registry import make_family
from l2o_gym.solve import minimize_batched, newton_batched


def _logistic(n: int, **kwargs):
    return make_family("l2o/LogisticRegression-v0", **kwargs).sample(n, torch.Generator().manual_seed(0))


def test_logistic_hessian_is_the_gradients_derivative():
    problem = _logistic(3)
    x = torch.randn(3, problem.dim, dtype=torch.float64)
    exact = copy.copy(problem)
    exact.a, exact.y = problem.a.double(), problem.y.double()
    jacobian = torch.autograd.functional.jacobian(lambda z: exact.loss_and_grad(z)[1].sum(0), x)  # [d, B, d]
    assert torch.allclose(exact.hessian(x), jacobian.permute(1, 0, 2), atol=1e-10)


def test_newton_reaches_the_optimum_at_least_as_well_as_lbfgs():
    for kwargs in ({}, {"lam": 0.0}, {"dim": 12}):
        problem = _logistic(16, **kwargs)
        exact = copy.copy(problem)
        exact.a, exact.y, exact.x0 = problem.a.double(), problem.y.double(), problem.x0.double()
        x, f, converged = newton_batched(exact, exact.hessian, tolerance_grad=1e-8)
        assert converged.all() and (exact.loss_and_grad(x)[1].abs().amax(dim=1) <= 1e-8).all()
        assert (problem.compute_optimum() <= minimize_batched(problem)[1] + 1e-6).all()


def test_instances_newton_leaves_unconverged_fall_back_to_lbfgs(monkeypatch):
    problem = _logistic(4)
    import tasks.logistic_regression as module

    newton = module.newton_batched
    monkeypatch.setattr(module, "newton_batched", lambda *a, **k: newton(*a, **{**k, "max_iter": 0}))
    assert torch.allclose(problem.compute_optimum(), minimize_batched(problem)[1])


def test_each_instance_is_solved_on_its_own():
    """An instance's optimum does not depend on the instances solved beside it (nor on their order)."""
    for env_id in ("l2o/TwoLayerNet-v0", "l2o/RobustLinearRegression-v0"):
        problem = make_family(env_id).sample(12, torch.Generator().manual_seed(3))
        _, f_all = minimize_batched(problem, max_iter=300)
        some = torch.tensor([7, 2, 9])
        _, f_some = minimize_batched(problem.select_rows(some), max_iter=300)
        torch.testing.assert_close(f_some, f_all[some], rtol=0, atol=1e-5)


def test_lbfgs_reaches_a_quadratics_closed_form_optimum():
    problem = make_family("l2o/Quadratic-v0").sample(6, torch.Generator().manual_seed(0))
    x, f = minimize_batched(problem)
    torch.testing.assert_close(f, problem.compute_optimum(), rtol=0, atol=1e-5)
    assert problem.loss_and_grad(x)[1].abs().amax() < 1e-3


def test_lbfgs_works_in_float64_and_returns_the_problems_dtype():
    problem = _logistic(5)
    x, f = minimize_batched(problem)
    assert x.dtype == f.dtype == torch.float32
    exact = problem.astype(torch.float64)
    assert exact.a.dtype == exact.y.dtype == torch.float64 and problem.a.dtype == torch.float32
    net = make_family("l2o/TwoLayerNet-v0").sample(2, torch.Generator().manual_seed(0)).astype(torch.float64)
    assert net.a.dtype == torch.float64 and net.y.dtype == torch.int64  # labels stay integers
    _, f_newton, converged = newton_batched(exact, exact.hessian, tolerance_grad=1e-8)
    assert converged.all()
    torch.testing.assert_close(f, f_newton.float(), rtol=0, atol=1e-6)
