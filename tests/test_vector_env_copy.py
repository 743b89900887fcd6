"""`copy=False`: the native vector env's dict observations as views of its own buffers, its rows
written into one array (valid until the next step), the same values as the default copies; copies
stay as they were; and a fresh batch of episodes written into the windows it replaces starts as a
freshly allocated one does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym  # noqa: F401  (registers the ids)
from l2o_gym.history_window import HistoryWindow

ROWS = {"coordinatewise": True, "quasi_newton_pairs": 2, "time_features": True}


def items(obs) -> dict[str, np.ndarray]:
    """A dict observation itself, rows as {"rows": rows}."""
    return obs if isinstance(obs, dict) else {"rows": obs}


def make(copy: bool, **kwargs):
    options = {"horizon": 4, "history": 3, **kwargs}
    return gym.make_vec("l2o/Quadratic-v0", num_envs=6, vectorization_mode="vector_entry_point", copy=copy, **options)


def trajectory(env, steps: int = 13):
    """Each step's observation (copied at once), reward and ends, under fixed random actions; the
    step's own arrays are returned too, uncopied."""
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    seen = [({k: v.copy() for k, v in items(obs).items()}, None, None)]
    kept = [items(obs)]
    for _ in range(steps):
        action = rng.uniform(-1, 1, (6, 10)).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        seen.append(({k: v.copy() for k, v in items(obs).items()}, reward, terminated | truncated))
        kept.append(items(obs))
    return seen, kept


@pytest.mark.parametrize("horizon", [4, (2, 5)])  # every episode ending at once, and staggered ends
@pytest.mark.parametrize("action_scale", [1.0, 1e6])  # 1e6: steps that diverge (frozen rows, terminations)
@pytest.mark.parametrize("layout", [{}, ROWS], ids=["dict", "rows"])
def test_views_hold_the_same_values_as_copies(horizon, action_scale, layout):
    copied, kept = trajectory(make(True, horizon=horizon, action_scale=action_scale, **layout))
    viewed, _ = trajectory(make(False, horizon=horizon, action_scale=action_scale, **layout))
    assert sum(int(done.sum()) for _, _, done in copied[1:]) > 0  # episodes ended on the way
    for (a, reward_a, done_a), (b, reward_b, done_b) in zip(copied, viewed, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(reward_a, reward_b)
        np.testing.assert_array_equal(done_a, done_b)
    for (values, _, _), arrays in zip(copied, kept, strict=True):  # copies: not written by later steps
        for key in values:
            np.testing.assert_array_equal(values[key], arrays[key])


def test_views_share_the_env_buffers_and_change_with_the_next_step():
    env = make(False)
    obs, _ = env.reset(seed=0)
    state = env.unwrapped.episodes.state
    assert np.shares_memory(obs["gradients"], state.log_grad_window.buffer.numpy())
    assert np.shares_memory(obs["improvements"], state.change_window.buffer.numpy())
    before = obs["gradients"].copy()
    env.step(np.full((6, 10), 0.5, np.float32))
    assert not np.array_equal(before, obs["gradients"])  # valid until the next step only, as documented
    rows_env = make(False, **ROWS)
    rows, _ = rows_env.reset(seed=0)
    after, *_ = rows_env.step(np.full((6, 10), 0.5, np.float32))
    assert np.shares_memory(rows, after)  # one array, written every step


def test_copy_flag_refuses_non_bool():
    with pytest.raises(ValueError, match="copy must be true or false"):
        make("no")


@pytest.mark.parametrize("layout", ["time_first", "batch_first", "time_last"])
def test_window_started_in_a_reused_buffer_equals_a_fresh_one(layout):
    generator = torch.Generator().manual_seed(0)
    old = HistoryWindow.starting_with(torch.randn(4, 3, generator=generator), 5, layout)
    for _ in range(7):  # the old window full of nonzero items, its head moved on
        old.push(torch.randn(4, 3, generator=generator))
    newest = torch.randn(4, 3, generator=generator)
    fresh = HistoryWindow.starting_with(newest, 5, layout)
    reused = HistoryWindow.starting_with(newest, 5, layout, reuse=old.buffer)
    assert reused.buffer.data_ptr() == old.buffer.data_ptr()
    for _ in range(8):  # every slot shown and pushed over
        torch.testing.assert_close(reused.view(), fresh.view(), rtol=0, atol=0)
        item = torch.randn(4, 3, generator=generator)
        fresh.push(item)
        reused.push(item)
    other_shape = HistoryWindow.starting_with(newest, 4, layout, reuse=old.buffer)
    assert other_shape.buffer.data_ptr() != old.buffer.data_ptr()  # a buffer that does not fit: allocated
