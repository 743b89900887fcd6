"""Histories written once per step give the observations the shift-the-whole-window construction
gave: random trajectories with divergence, episode ends and autoresets, in the state (both window
layouts), the vector env and the SB3 VecEnv, recorded again and compared with the fixture
recorded when the construction changed (`tests/history_window_trajectories.py`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2o_gym.history_window import LAYOUTS as WINDOW_LAYOUTS
from l2o_gym.history_window import HistoryWindow
from l2o_gym.registry import make_family
from l2o_gym.signed_log import signed_log
from l2o_gym.state import OptimizationState
from tests.history_window_trajectories import (
    FIXTURE,
    HISTORIES,
    LAYOUTS,
    record_sb3_vec_env,
    record_state,
    record_vector_env,
)

ATOL = 1e-6


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as recorded:
        return dict(recorded)


def assert_matches(recorded: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    """The same names and shapes; counters and flags equal, floats within ATOL."""
    prefixes = {name.split("/")[0] for name in recorded}
    assert set(recorded) == {name for name in reference if name.split("/")[0] in prefixes}
    for name, expected in reference.items():
        if name not in recorded:
            continue
        got = recorded[name]
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        if expected.dtype.kind == "f":
            assert np.isfinite(got).all(), name
            err = np.abs(got.astype(np.float64) - expected).max() if expected.size else 0.0
            assert err <= ATOL, f"{name}: max difference {err:.2e}"
        else:
            assert np.array_equal(got, expected), name


@pytest.mark.parametrize("coordinate_major", [False, True])
@pytest.mark.parametrize("history", HISTORIES)
def test_state_histories_and_features_match_the_reference(history, coordinate_major, reference):
    recorded = record_state(history, coordinate_major)
    assert_matches(recorded, reference)
    diverged = recorded[f"state_h{history}/diverged"][-1]
    assert diverged.any() and (~diverged).any()  # the trajectories did cover both


def test_history_setters_take_ordered_tensors():
    state = OptimizationState.start(make_family("l2o/Quadratic-v0", dim=3).sample(2, torch.Generator()), history=4)
    grads = torch.randn(2, 4, 3)
    state.grad_history = grads
    state.step_history = 2 * grads
    state.change_history = grads[:, :, 0]
    assert torch.equal(state.grad_history, grads) and torch.equal(state.step_history, 2 * grads)
    assert torch.equal(state.change_history, grads[:, :, 0])
    assert torch.allclose(state.log_grad_window.view(), signed_log(grads))
    held = state.grad_history  # a copy: later steps leave it alone
    state.advance(torch.zeros(2, 3))
    assert torch.equal(held, grads) and torch.equal(state.grad_history[:, :-1], grads[:, 1:])


@pytest.mark.parametrize("window_layout", WINDOW_LAYOUTS)
def test_window_keeps_frozen_rows_and_is_written_once(window_layout):
    window = HistoryWindow.starting_with(torch.tensor([[1.0, -1.0], [10.0, -10.0]]), 3, window_layout)
    for k in range(2, 6):
        new = torch.tensor([[float(k), -float(k)], [10.0 * k, -10.0 * k]])
        window.push(new, frozen=torch.tensor([1]) if k >= 4 else None)
    assert window.ordered()[:, :, 0].tolist() == [[3.0, 4.0, 5.0], [10.0, 20.0, 30.0]]
    assert torch.equal(window.ordered()[:, :, 1], -window.ordered()[:, :, 0])
    assert window.newest(2)[:, :, 0].tolist() == [[4.0, 5.0], [20.0, 30.0]]
    window.replace_rows(torch.tensor([True, False]), HistoryWindow.from_ordered(torch.ones(1, 3, 2), window_layout))
    assert window.ordered()[0].eq(1).all() and window.ordered()[1, :, 0].tolist() == [10.0, 20.0, 30.0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vector_env_observations_match_the_reference(layout, reference):
    recorded = record_vector_env(layout)
    assert_matches(recorded, reference)
    assert recorded[f"vector_{layout}/ended"].sum() > 6


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sb3_vec_env_observations_and_terminal_rows_match_the_reference(layout, reference):
    recorded = record_sb3_vec_env(layout)  # checks that only done envs carry a terminal observation
    assert_matches(recorded, reference)
    assert len(recorded[f"sb3_{layout}/terminal_at"]) > 5
