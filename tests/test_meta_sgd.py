"""The learned per-coordinate step (Meta-SGD style): its step, its meta-training, save and load."""

from __future__ import annotations

import pytest
import torch

from agents.meta.meta_sgd import MetaSGDOptimizer, PerCoordinateStepSize
from agents.meta.meta_training import meta_train_iteration
from agents.runtime.saved_rules import load_rule
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll
from tasks.maml_sinusoid import MAMLSinusoidFamily


def problem(n: int = 4, seed: int = 0):
    return MAMLSinusoidFamily(init="random", n_query=20).sample(n, torch.Generator().manual_seed(seed))


def test_it_starts_as_gradient_descent_with_its_initial_step():
    p = problem()
    rule = MetaSGDOptimizer(PerCoordinateStepSize(p.dim, initial_lr=0.02))
    state = OptimizationState.start(p)
    torch.testing.assert_close(rule.step(state), -0.02 * state.grad)
    with pytest.raises(ValueError, match="initial_lr must be > 0"):
        PerCoordinateStepSize(3, initial_lr=0.0)
    with pytest.raises(ValueError, match="step sizes for d = 3"):
        MetaSGDOptimizer(PerCoordinateStepSize(3)).step(state)


def test_meta_training_on_the_query_loss_lowers_it():
    p = problem(8, seed=1)
    rule = MetaSGDOptimizer(PerCoordinateStepSize(p.dim, initial_lr=0.001))
    before = float(unroll(rule, problem(8, seed=1), 3).query[-1].mean())
    meta_optimizer = torch.optim.Adam(rule.net.parameters(), lr=1e-3)
    for _ in range(10):
        meta_train_iteration(rule, p, meta_optimizer, horizon=3, truncation=3, grad_clip=1.0, meta_objective="query")
    after = float(unroll(rule, problem(8, seed=1), 3).query[-1].mean())
    assert not torch.allclose(rule.net.alpha, torch.full_like(rule.net.alpha, 0.001))
    assert after < before


def test_it_is_saved_and_loaded(tmp_path):
    p = problem()
    rule = MetaSGDOptimizer(PerCoordinateStepSize(p.dim))
    with torch.no_grad():
        rule.net.alpha.copy_(torch.linspace(-0.01, 0.03, p.dim))
    loaded = load_rule(rule.save(tmp_path / "rule", "l2o/MAMLSinusoid-v0", {"iterations": 1}))
    assert isinstance(loaded, MetaSGDOptimizer)
    state = OptimizationState.start(p)
    torch.testing.assert_close(loaded.step(state), rule.step(state))
