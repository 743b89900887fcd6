"""Li & Malik's families: shapes, reproducible seeds, disjoint splits, correct optima, OOD kwargs."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import l2o_gym  # noqa: F401  (registers the ids)
from l2o_gym.problem import autograd_loss_and_grad
from l2o_gym.registry import make_family
from l2o_gym.solve import minimize_batched
from tasks.logistic_regression import LogisticRegressionFamily
from tasks.multistart_optimum import best_of_starts
from tasks.robust_linear_regression import RobustLinearRegressionFamily
from tasks.two_layer_net import TwoLayerNetFamily

FAMILIES = {
    "l2o/LogisticRegression-v0": (LogisticRegressionFamily, 4, (100, 3)),
    "l2o/RobustLinearRegression-v0": (RobustLinearRegressionFamily, 4, (100, 3)),
    "l2o/TwoLayerNet-v0": (TwoLayerNetFamily, 12, (100, 2)),
}


def draw(family, n=5, seed=0, split="train"):
    return family.sample(n, torch.Generator().manual_seed(seed), split)


@pytest.mark.parametrize("env_id", list(FAMILIES))
def test_registered_with_paper_shapes(env_id):
    cls, dim, data_shape = FAMILIES[env_id]
    family = make_family(env_id)
    assert isinstance(family, cls) and family.dim == dim and family.has_optimum
    problem = draw(family)
    assert problem.x0.shape == (5, dim)
    assert problem.a.shape == (5, *data_shape)
    assert problem.y.shape == (5, data_shape[0])
    f, grad = problem.loss_and_grad(problem.init())
    assert f.shape == (5,) and grad.shape == (5, dim)
    assert torch.isfinite(f).all() and torch.isfinite(grad).all()
    f_auto, grad_auto = autograd_loss_and_grad(problem.loss, problem.init())
    torch.testing.assert_close(f, f_auto)
    torch.testing.assert_close(grad, grad_auto, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("env_id", list(FAMILIES))
def test_gym_make_runs(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert torch.isfinite(torch.as_tensor(reward)).all()
    env.close()


@pytest.mark.parametrize("env_id", list(FAMILIES))
def test_seeds_reproducible_and_splits_disjoint(env_id):
    family = make_family(env_id)
    first, again, other = draw(family, seed=7), draw(family, seed=7), draw(family, seed=8)
    for name in ("x0", "a", "y"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.a, other.a)
    by_split = {split: draw(family, seed=7, split=split) for split in ("train", "validation", "test")}
    assert not torch.equal(by_split["train"].a, by_split["test"].a)
    assert not torch.equal(by_split["train"].a, by_split["validation"].a)
    assert not torch.equal(by_split["validation"].a, by_split["test"].a)


def test_logistic_labels_half_per_class_and_robust_labels_linear_per_cluster():
    problem = draw(LogisticRegressionFamily(), n=2)
    assert problem.y.sum(dim=1).tolist() == [50.0, 50.0]
    robust = draw(RobustLinearRegressionFamily(noise_std=0.0), n=2)
    # without noise, each cluster's labels are an exact affine function of its points
    a, y = robust.a[0, :25].double(), robust.y[0, :25].double()
    design = torch.cat([a, torch.ones(25, 1, dtype=a.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, y.unsqueeze(1)).solution
    assert (design @ solution).squeeze(1).sub(y).abs().max() < 1e-4
    labels = draw(TwoLayerNetFamily(), n=3).y
    assert ((labels == 0) | (labels == 1)).all()
    assert (labels.view(3, 4, 25) == labels.view(3, 4, 25)[:, :, :1]).all()  # one label per cluster


def adam_final(problem, steps=600, lr=0.05):
    x = problem.init().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        problem.loss(x).sum().backward()
        optimizer.step()
    return problem.loss(x).detach()


def test_logistic_optimum_is_stationary_and_below_adam():
    problem = draw(LogisticRegressionFamily(), n=8, seed=1)
    x_star, f_star = minimize_batched(problem)
    _, grad = problem.loss_and_grad(x_star)
    assert grad.norm(dim=1).max() < 2e-3
    assert (f_star <= adam_final(problem) + 1e-5).all()
    torch.testing.assert_close(problem.optimum(), f_star)


@pytest.mark.parametrize("cls", [RobustLinearRegressionFamily, TwoLayerNetFamily])
def test_nonconvex_optimum_best_of_starts(cls):
    problem = draw(cls(), n=8, seed=1)
    f_star = problem.optimum()
    _, f_single = minimize_batched(problem, max_iter=500)
    settings = problem.settings  # the family's optimum_starts and init_std
    torch.testing.assert_close(best_of_starts(problem, 1, settings.init_std)[1], f_single)  # one start = x0 alone
    assert (f_star <= f_single + 1e-6).all()  # more starts: never a higher optimum
    if cls is TwoLayerNetFamily:  # many local optima: the extra starts find lower ones
        assert f_star.mean() < f_single.mean()
    assert (f_star < problem.loss(problem.init())).all()
    # a local optimum from a few starts: at least as low as long Adam runs on most instances
    assert (f_star <= adam_final(problem) + 1e-3).float().mean() >= 0.75
    if cls is RobustLinearRegressionFamily:  # smooth: the optimum is stationary
        x_star, _ = best_of_starts(problem, settings.optimum_starts, settings.init_std)
        assert problem.loss_and_grad(x_star)[1].norm(dim=1).max() < 5e-3


def test_out_of_distribution_kwargs():
    logistic = make_family("l2o/LogisticRegression-v0", dim=10, n_points=400, mean_std=0.3)
    problem = draw(logistic, n=2)
    assert logistic.dim == 11 and problem.a.shape == (2, 400, 10)
    robust = make_family("l2o/RobustLinearRegression-v0", dim=6, points_per_cluster=50, noise_std=2.0)
    assert robust.dim == 7 and draw(robust, n=2).a.shape == (2, 200, 6)
    net = make_family("l2o/TwoLayerNet-v0", input_dim=3, hidden=8, classes=3)
    problem = draw(net, n=2)
    assert net.dim == 8 * 3 + 8 + 3 * 8 + 3 and problem.x0.shape == (2, 59)
    assert problem.y.max() <= 2
    accuracy = problem.metrics(problem.init())["accuracy"]
    assert accuracy.shape == (2,) and ((0 <= accuracy) & (accuracy <= 1)).all()
    noisy = draw(RobustLinearRegressionFamily(noise_std=5.0), seed=4)
    clean = draw(RobustLinearRegressionFamily(noise_std=0.0), seed=4)
    assert torch.equal(noisy.a, clean.a) and not torch.equal(noisy.y, clean.y)


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (LogisticRegressionFamily, {"dim": 0}, "dim"),
        (LogisticRegressionFamily, {"n_points": 101}, "n_points"),
        (LogisticRegressionFamily, {"lam": -1.0}, "lam"),
        (RobustLinearRegressionFamily, {"noise_std": -0.1}, "noise_std"),
        (RobustLinearRegressionFamily, {"c": 0.0}, "c must"),
        (RobustLinearRegressionFamily, {"optimum_starts": 0}, "optimum_starts"),
        (TwoLayerNetFamily, {"classes": 1}, "classes"),
        (TwoLayerNetFamily, {"hidden": 2.5}, "hidden"),
        (TwoLayerNetFamily, {"spread": float("inf")}, "spread"),
    ],
)
def test_bad_kwargs_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_unknown_kwarg_through_registry():
    with pytest.raises(TypeError, match="n_point"):
        make_family("l2o/LogisticRegression-v0", n_point=10)


@pytest.mark.parametrize("dim", [1, 3, 10])
def test_the_quadratic_gradient_follows_w_and_never_writes_it(dim):
    """The Quadratic's analytic gradient (a kept 2 Wᵀ) equals autograd's, leaves W as it was (at
    d = 1 Wᵀ is W's own memory), and follows W when W is written in place or replaced."""
    problem = draw(make_family("l2o/Quadratic-v0", dim=dim), n=4)
    W = problem.W.clone()
    x = problem.init() + 0.1
    for _ in range(2):  # the second call reads the kept 2 Wᵀ
        f, grad = problem.loss_and_grad(x)
        f_auto, grad_auto = autograd_loss_and_grad(problem.loss, x)
        torch.testing.assert_close(f, f_auto)
        torch.testing.assert_close(grad, grad_auto)
        assert torch.equal(problem.W, W)
    problem.W.mul_(3.0)  # in place: torch's version counter moves
    torch.testing.assert_close(problem.loss_and_grad(x)[1], autograd_loss_and_grad(problem.loss, x)[1])
    problem.W = W.double()  # a new tensor (another dtype)
    problem.y, x = problem.y.double(), x.double()
    torch.testing.assert_close(problem.loss_and_grad(x)[1], autograd_loss_and_grad(problem.loss, x)[1])
