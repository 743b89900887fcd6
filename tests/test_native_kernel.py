"""The compiled kernels (`l2o_gym.native_kernel`) against the eager torch code they replace: the
same trajectories stepped with and without them (``L2O_GYM_NO_KERNEL``) give observations,
rewards and episode ends within 1e-6, through divergence, frozen rows, episode ends and
autoresets, in both observation layouts and with every feature group."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym
from l2o_gym import native_kernel
from l2o_gym.features import native_rows_apply
from l2o_gym.history_window import HistoryWindow
from l2o_gym.signed_log import SIGNED_LOG_BOUND, SIGNED_LOG_EPS, SIGNED_LOG_NORM
from l2o_gym.state import native_transition_library

pytestmark = pytest.mark.skipif(native_kernel.library() is None, reason="no C compiler: the eager code runs")


def paired_steps(make, steps: int, monkeypatch, seed: int = 0):
    """Step two envs built by `make` with the same random actions (some NaN: divergence), one with
    the kernels and one without; yield both step results."""
    fast, slow = make(), make()
    rng = np.random.default_rng(seed)
    outputs = []
    for env in (fast, slow):
        monkeypatch.setenv(native_kernel.DISABLE_VAR, "0" if env is fast else "1")
        outputs.append(env.reset(seed=seed))
    yield outputs
    shape = fast.action_space.shape
    for _ in range(steps):
        actions = rng.uniform(-1.0, 1.0, shape).astype(np.float32) * 10.0 ** rng.uniform(
            -3, 0, shape[:1] + (1,) * (len(shape) - 1)
        )
        actions[rng.random(shape[0]) < 0.03] = np.nan
        outputs = []
        for env in (fast, slow):
            monkeypatch.setenv(native_kernel.DISABLE_VAR, "0" if env is fast else "1")
            outputs.append(env.step(actions.copy()))
        yield outputs


def assert_close(fast, slow) -> None:
    if isinstance(fast, dict):
        assert fast.keys() == slow.keys()
        for key in fast:
            assert_close(fast[key], slow[key])
    else:
        np.testing.assert_allclose(
            np.asarray(fast, dtype=np.float64), np.asarray(slow, dtype=np.float64), rtol=0, atol=1e-6
        )


@pytest.mark.parametrize(
    "options",
    [
        {"coordinatewise": True, "history": 5},
        {"coordinatewise": True, "history": 25, "quasi_newton_pairs": 3, "time_features": True},
        {"coordinatewise": True, "history": 1, "dim": 2},
        {"coordinatewise": False, "history": 5},
        {"coordinatewise": False, "history": 1, "dim": 2},
    ],
)
def test_vector_env_with_and_without_the_kernels_agree(options, monkeypatch):
    options = {"dim": 3, **options}

    def make():
        return gym.make_vec(
            "l2o/Rosenbrock-v0", num_envs=12, vectorization_mode="vector_entry_point", horizon=(3, 30), **options
        )

    ended = diverged = 0
    for step, (fast, slow) in enumerate(paired_steps(make, 80, monkeypatch)):
        assert_close(fast[0], slow[0])  # observations
        if step:
            for a, b in zip(fast[1:4], slow[1:4], strict=True):  # rewards, terminated, truncated
                assert_close(a, b)
            ended, diverged = ended + int((fast[2] | fast[3]).sum()), diverged + int(fast[2].sum())
    assert ended > 12 and diverged > 0


def test_sb3_coordinatewise_vec_env_with_and_without_the_kernels_agree(monkeypatch):
    def make():
        venv = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 6, seed=1, coordinatewise=True, horizon=(4, 12))
        return SB3AsGym(venv)

    for step, (fast, slow) in enumerate(paired_steps(make, 40, monkeypatch, seed=1)):
        assert_close(fast[0], slow[0])
        if step:
            assert_close(fast[1], slow[1])
            assert np.array_equal(fast[2], slow[2])


class SB3AsGym:
    """A VecEnv's reset / step as `paired_steps` calls them."""

    def __init__(self, venv) -> None:
        self.venv = venv
        self.action_space = gym.spaces.Box(-1.0, 1.0, (venv.num_envs, 1))

    def reset(self, seed: int):
        return (self.venv.reset(),)

    def step(self, actions):
        self.venv.step_async(np.nan_to_num(actions, nan=0.5))
        return self.venv.step_wait()


def test_the_kernels_apply_where_they_should_and_can_be_turned_off(monkeypatch):
    env = gym.make_vec("l2o/Quadratic-v0", num_envs=3, vectorization_mode="vector_entry_point", coordinatewise=True)
    env.reset(seed=0)
    state = env.episodes.state
    step = torch.zeros_like(state.x)
    assert native_rows_apply(state) and native_transition_library(state, step) is not None
    assert native_transition_library(state, step.double()) is None  # float32 only
    monkeypatch.setenv(native_kernel.DISABLE_VAR, "1")
    assert native_kernel.library() is None and native_transition_library(state, step) is None


def test_the_kernel_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("L2O_GYM_CACHE", str(tmp_path))
    compiler = native_kernel.compiler()
    built = native_kernel.build(compiler)
    assert built.parent == tmp_path / "kernels" and built.is_file()
    modified = built.stat().st_mtime_ns
    assert native_kernel.build(compiler) == built and built.stat().st_mtime_ns == modified


def test_the_kernel_signed_log_matches_log1p_in_float64():
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(100_000, generator=generator) * 10 ** (74 * torch.rand(100_000, generator=generator) - 37)
    v = torch.cat([v, torch.tensor([0.0, -0.0, 1e-45, 1e-8, -1.0, torch.finfo(torch.float32).max])]).view(-1, 2)
    exact = torch.sign(v.double()) * torch.log1p(v.double().abs() / SIGNED_LOG_EPS) / math.log1p(1 / SIGNED_LOG_EPS)
    windows = tuple(HistoryWindow.starting_with(item, 3) for item in (v, v, v, v[:, 0]))
    f, rows = torch.ones(v.shape[0]), torch.ones(v.shape[0], dtype=torch.bool)
    before = (v, rows, f, f, ~rows)  # safe step, step finite, f, f0, diverged
    moved, _, frozen = native_kernel.transition_finish(
        native_kernel.library(), (v, f, v), before, 1e4, native_kernel.WindowPointers(windows), SIGNED_LOG_NORM
    )
    assert frozen == 0 and moved.all()
    pushed = windows[1].buffer[windows[1].head]  # the slot just written
    assert (pushed.double() - exact).abs().max() < 1e-6
    assert torch.equal(pushed.flatten()[-6:-4], torch.zeros(2)) and pushed.abs().max() < SIGNED_LOG_BOUND
    assert torch.equal(windows[0].buffer[windows[0].head], v)  # the raw gradient as it was


def test_the_reward_kernel_gives_the_torch_reward_and_ends_exactly():
    """`log_suboptimality_outcome` against `LogSuboptimalityReward` and the torch episode ends:
    the same float32 numbers (the log is torch's), through objectives below f*, zero gaps,
    diverged rows (their penalty) and rows at their horizon."""
    from l2o_gym.rewards import LogSuboptimalityReward

    generator = torch.Generator().manual_seed(0)
    batch = 67
    f_star = torch.rand(batch, generator=generator) - 0.5
    f0 = f_star + 10.0 ** (4 * torch.rand(batch, generator=generator) - 2)
    f_prev = f_star + (f0 - f_star) * torch.rand(batch, generator=generator)
    f = f_star + (f0 - f_star) * (1.2 * torch.rand(batch, generator=generator) - 0.1)  # some below f*
    f[:3] = f_star[:3]  # gaps of exactly zero
    diverged_now = torch.rand(batch, generator=generator) < 0.2
    horizon = torch.randint(5, 40, (batch,), generator=generator)
    t = torch.minimum(torch.randint(1, 45, (batch,), generator=generator), horizon)
    t_before = t - 1
    rule = LogSuboptimalityReward()
    reward, terminated, truncated = native_kernel.log_suboptimality_outcome(
        native_kernel.library(), (f_prev, f, f0, f_star), rule.eps, (diverged_now, t_before, t, horizon), -2.0
    )
    expected = rule.pay(f_prev, f, f0, f_star)
    expected = torch.where(diverged_now, -2.0 * (horizon - t_before).to(torch.float32), expected)
    assert torch.equal(reward, expected)
    assert torch.equal(terminated, diverged_now)
    assert torch.equal(truncated, ~diverged_now & (t >= horizon))
    assert truncated.any() and terminated.any()


@pytest.mark.parametrize("power", [1, 2])
def test_the_decayed_sums_kernels_give_the_torch_numbers_exactly(power, monkeypatch):
    """`DecayedWindowSums` pushed and summed with and without the kernels, through rebuilds:
    the same float64 numbers up to a rounding (exactly equal where torch's addcmul fuses its
    multiply-add, as on the machines this was written on)."""
    from l2o_gym.decayed_window_sums import DecayedWindowSums

    generator = torch.Generator().manual_seed(power)
    window = torch.randn(8, 5, 3, generator=generator)  # [B, H, D]
    sums = {name: DecayedWindowSums(window, (0.5, 0.9, 0.99), power, filled=2) for name in ("fast", "slow")}
    for step in range(12):  # past two rebuilds of the front (every H = 5 pushes)
        item = torch.randn(8, 3, generator=generator)
        window = torch.cat([window[:, 1:], item.unsqueeze(1)], dim=1)
        for name, kept in sums.items():
            monkeypatch.setenv(native_kernel.DISABLE_VAR, "0" if name == "fast" else "1")
            kept.push(item, window)
        monkeypatch.setenv(native_kernel.DISABLE_VAR, "0")
        fast = sums["fast"].sums()
        monkeypatch.setenv(native_kernel.DISABLE_VAR, "1")
        slow = sums["slow"].sums()
        torch.testing.assert_close(fast, slow, rtol=1e-15, atol=0.0, msg=f"step {step}")
