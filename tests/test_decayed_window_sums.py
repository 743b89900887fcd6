"""The coordinatewise rows' window averages, kept as exact decayed sums (O(d) per step), and the
matrix product they replace, both against a float64 recomputation from the window on random
trajectories with divergence, episode ends and autoresets.

Stated tolerances, relative to the average of |g| (or g²) over the same window and weights (the
scale of the terms; an average that cancels is small against it): the decayed sums are exact in
float64 and rounded to float32 once, so within 2e-7; the float32 matrix product adds up to H
rounded terms, within 1e-5 (H <= 25 here)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from l2o_gym.features import MOMENTUM_BETAS, RMS_BETA, grad_window_averages, window_averages
from l2o_gym.history_window import LAYOUTS, HistoryWindow
from l2o_gym.registry import make_family
from l2o_gym.state import OptimizationState

NEW_RTOL, OLD_RTOL = 2e-7, 1e-5


def exact_averages(grads: torch.Tensor, t: torch.Tensor, betas: tuple[float, ...], power: int) -> tuple:
    """The averages and the averages of the terms' magnitudes, in float64, from the window itself."""
    terms = grads.double() if power == 1 else grads.double().square()
    return window_averages(terms, t, betas), window_averages(terms.abs(), t, betas)


@pytest.mark.parametrize("history", [5, 25])
def test_decayed_averages_and_the_matrix_product_agree_with_an_exact_recomputation(history):
    env = gym.make_vec(
        "l2o/Rosenbrock-v0", num_envs=12, vectorization_mode="vector_entry_point", dim=3, horizon=(3, 30),
        coordinatewise=True, history=history,
    )  # fmt: skip
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    ended = diverged = 0
    for _ in range(3 * history + 20):
        actions = rng.uniform(-1.0, 1.0, (12, 3)).astype(np.float32) * 10.0 ** rng.uniform(-3, 0, (12, 1))
        actions[rng.random(12) < 0.03] = np.nan  # diverging steps: frozen rows, then autoresets
        _, _, terminated, truncated, _ = env.step(actions)
        ended, diverged = ended + int((terminated | truncated).sum()), diverged + int(terminated.sum())
        state = env.episodes.state
        for betas, power in ((MOMENTUM_BETAS, 1), ((RMS_BETA,), 2)):
            exact, scale = exact_averages(state.grad_history, state.t, betas, power)
            new = grad_window_averages(state, betas, power)
            grads = state.grad_window.view()
            old = window_averages(grads if power == 1 else grads.square(), state.t, betas)
            assert new.dtype == old.dtype == torch.float32
            assert ((new.double() - exact).abs() <= NEW_RTOL * scale).all()
            assert ((old.double() - exact).abs() <= OLD_RTOL * scale).all()
    assert ended > 12 and diverged > 0  # the trajectories covered episode ends and divergence


@pytest.mark.parametrize("layout", LAYOUTS)
def test_window_sums_follow_pushes_frozen_rows_and_replaced_rows(layout):
    generator = torch.Generator().manual_seed(0)
    window = HistoryWindow.starting_with(torch.randn(4, 2, generator=generator), 3, layout)
    betas = (0.5, 0.9)
    window.decayed_sums(betas, 2)  # tracked from here on
    weights = torch.tensor(betas, dtype=torch.float64).unsqueeze(1) ** torch.arange(2, -1, -1)  # [n, H]
    for k in range(10):
        frozen = torch.tensor([k % 4]) if k % 3 == 0 else None
        window.push(100.0 * torch.randn(4, 2, generator=generator), frozen)
        if k == 5:
            fresh = HistoryWindow.from_ordered(torch.ones(2, 3, 2))
            window.replace_rows(torch.tensor([False, True, True, False]), fresh)
        exact = torch.einsum("bhd,nh->bnd", window.ordered().double().square(), weights)
        got = window.decayed_sums(betas, 2)
        assert torch.allclose(got, exact, rtol=1e-12, atol=0.0), (k, ((got - exact).abs() / exact).max())


def test_averages_keep_the_autograd_graph_of_a_differentiable_window():
    window = torch.randn(2, 4, 3, requires_grad=True)
    state = OptimizationState.start(make_family("l2o/Quadratic-v0", dim=3).sample(2, torch.Generator()), history=4)
    state.grad_history = window
    averages = grad_window_averages(state, MOMENTUM_BETAS)
    (grad,) = torch.autograd.grad(averages.sum(), window)
    assert grad.abs().sum() > 0
