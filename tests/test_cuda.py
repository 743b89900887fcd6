"""CUDA: every built-in family, the batched episodes, the env adapters and hand-designed and learned
optimizers run on a GPU (``device="cuda"``) and agree with the same run on the CPU.

Skipped where CUDA is not available. ``L2O_TEST_DEVICE=cpu`` runs the same checks with the CPU as
the device under test (a dry run of the test logic on machines without a GPU).
"""

from __future__ import annotations

import copy
import functools
import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.rl.backprop_warm_start import backprop_warm_start
from agents.runtime.learned_optimizer import LearnedOptimizer
from agents.runtime.saved_rules import load_rule
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.quasi_newton import window_direction
from l2o_gym.unroll import unroll
from tasks.registration import BUILTIN_TASKS
from tests.tiny_training import TINY_BACKPROP, TINY_POLICY_META, tiny_policy, train_tiny

DEVICE = torch.device(os.environ.get("L2O_TEST_DEVICE", "cuda"))
CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")

FAMILIES = sorted(BUILTIN_TASKS)
N = 4  # instances per check
STEPS = 5  # env steps per episode check
RTOL = 1e-3  # float32 on two devices: reductions run in another order
# Observations are O(1) features, but the signed log of the gradients (eps 1e-8) turns float32
# rounding on near-zero gradient entries into visible differences (up to ~5e-3 from a 1e-6 relative
# perturbation of x on the digit nets), so they are compared with an absolute tolerance.
OBS_ATOL = 5e-2


@pytest.fixture(autouse=True, scope="module")
def exact_float32():
    """TF32 off (cuDNN convolutions use it by default) so the GPU's float32 matches the CPU's up to
    rounding; restored afterwards."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@functools.cache
def family(env_id: str):
    return l2o_gym.make_family(env_id)


def on_device(t: Tensor) -> bool:
    return t.device.type == DEVICE.type


def assert_close(on_dev: Tensor, on_cpu: Tensor, rtol: float = RTOL, what: str = "", atol: float | None = None) -> None:
    """on_dev (on the device under test) equals on_cpu within rtol of on_cpu's largest entry (or
    within `atol` where given)."""
    assert on_device(on_dev), f"{what} is on {on_dev.device}, expected {DEVICE}"
    assert on_dev.shape == on_cpu.shape, what
    if on_cpu.is_floating_point():
        assert torch.isfinite(on_dev).all(), f"{what} is not finite"
        if atol is None:
            scale = float(on_cpu.abs().max()) if on_cpu.numel() else 0.0
            atol = rtol * scale + 1e-6
        else:
            rtol = 0.0
        torch.testing.assert_close(on_dev.cpu(), on_cpu, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")
    else:
        assert torch.equal(on_dev.cpu(), on_cpu), what


def sample_pair(env_id: str, n: int = N, seed: int = 0, split: str = "train"):
    fam = family(env_id)
    on_dev = fam.sample(n, torch.Generator().manual_seed(seed), split, DEVICE)
    on_cpu = fam.sample(n, torch.Generator().manual_seed(seed), split, CPU)
    return on_dev, on_cpu


@pytest.mark.parametrize("env_id", FAMILIES)
def test_family_instances_live_on_the_device_and_match_the_cpu(env_id):
    on_dev, on_cpu = sample_pair(env_id)
    assert on_dev.device.type == DEVICE.type
    for name in ("x0", *on_dev.instance_fields):
        assert_close(getattr(on_dev, name), getattr(on_cpu, name), rtol=1e-6, what=name)
    f, g = on_dev.loss_and_grad(on_dev.init())
    f_cpu, g_cpu = on_cpu.loss_and_grad(on_cpu.init())
    assert_close(f, f_cpu, what="objective")
    assert_close(g, g_cpu, what="gradient")
    x = on_cpu.init() + 0.01 * torch.randn(on_cpu.x0.shape, generator=torch.Generator().manual_seed(1))
    assert_close(on_dev.loss(x.to(DEVICE)), on_cpu.loss(x), what="objective away from x0")
    for key, value in on_cpu.metrics(x).items():
        assert_close(on_dev.metrics(x.to(DEVICE))[key], value, what=f"metric {key}")
    if family(env_id).has_optimum:
        f_star, f_star_cpu = on_dev.optimum(), on_cpu.optimum()
        assert_close(f_star, f_star_cpu, what="optimum")
        assert (f_star.cpu() <= f_cpu + 1e-4 * (1 + f_cpu.abs())).all()


def observations(batch: EpisodeBatch) -> dict[str, Tensor]:
    obs = batch.observe()
    return obs if isinstance(obs, dict) else {"rows": obs}


@pytest.mark.parametrize("coordinatewise", [True, False], ids=["coordinatewise", "dict"])
@pytest.mark.parametrize("env_id", FAMILIES)
def test_episode_batch_steps_on_the_device_like_on_the_cpu(env_id, coordinatewise):
    fam = family(env_id)
    batches = [
        EpisodeBatch(fam, N, horizon=STEPS + 2, coordinatewise=coordinatewise, device=device)
        for device in (DEVICE, CPU)
    ]
    for batch in batches:
        batch.reset(torch.Generator().manual_seed(0))
    on_dev, on_cpu = batches
    actions = 2 * torch.rand(STEPS, N, fam.dim, generator=torch.Generator().manual_seed(1)) - 1
    for t in range(STEPS):
        reward, terminated, truncated = on_dev.step(actions[t].to(DEVICE))
        reward_cpu, terminated_cpu, truncated_cpu = on_cpu.step(actions[t])
        assert_close(reward, reward_cpu, what=f"reward at step {t}")
        assert_close(terminated, terminated_cpu, what="terminated")
        assert_close(truncated, truncated_cpu, what="truncated")
        state, state_cpu = on_dev.require_state(), on_cpu.require_state()
        for name in ("x", "f", "grad"):
            assert_close(getattr(state, name), getattr(state_cpu, name), what=f"state.{name} at step {t}")
        for key, value in observations(on_cpu).items():
            assert_close(observations(on_dev)[key], value, atol=OBS_ATOL, what=f"observation {key} at step {t}")
    assert_close(on_dev.info()["objective"], on_cpu.info()["objective"], what="objective")
    mask = torch.tensor([True, False] * (N // 2))
    on_dev.reset_rows(mask.to(DEVICE), torch.Generator().manual_seed(2))
    on_cpu.reset_rows(mask, torch.Generator().manual_seed(2))
    assert_close(on_dev.require_state().t, on_cpu.require_state().t, what="steps after reset_rows")
    assert (on_dev.require_state().t.cpu()[mask] == 0).all()
    for key, value in observations(on_cpu).items():
        assert_close(observations(on_dev)[key], value, atol=OBS_ATOL, what=f"observation {key} after reset_rows")


@pytest.mark.parametrize("coordinatewise", [True, False], ids=["coordinatewise", "dict"])
@pytest.mark.parametrize("env_id", ["l2o/LogisticRegression-v0", "l2o/Quadratic-v0"])
def test_sb3_vec_env_on_the_device_returns_numpy_like_the_cpu(env_id, coordinatewise):
    envs = [
        l2o_gym.make_sb3_vec_env(env_id, 3, seed=0, coordinatewise=coordinatewise, device=device, horizon=3)
        for device in (DEVICE, CPU)
    ]
    obs = [env.reset() for env in envs]
    assert on_device(envs[0].episodes.require_state().x)
    rng = np.random.default_rng(0)
    for t in range(4):  # the third step ends every episode: autoreset on the device
        for a, b in zip(as_dict(obs[0]).values(), as_dict(obs[1]).values(), strict=True):
            assert isinstance(a, np.ndarray) and a.dtype == np.float32 and np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * (np.abs(b).max() + 1e-6))
        actions = rng.uniform(-1, 1, (envs[0].num_envs, *envs[0].action_space.shape)).astype(np.float32)
        results = [env.step(actions) for env in envs]
        obs = [r[0] for r in results]
        (_, rewards, dones, infos), (_, rewards_cpu, dones_cpu, _) = results
        assert isinstance(rewards, np.ndarray) and rewards.dtype == np.float32 and np.isfinite(rewards).all()
        np.testing.assert_allclose(rewards, rewards_cpu, rtol=RTOL, atol=RTOL * (np.abs(rewards_cpu).max() + 1e-6))
        assert isinstance(dones, np.ndarray) and np.array_equal(dones, dones_cpu)
        assert dones.all() == (t == 2)
        if t == 2:
            terminal = as_dict(infos[0]["terminal_observation"])
            assert all(isinstance(v, np.ndarray) for v in terminal.values())
            assert all(isinstance(info["objective"], float) for info in infos)


def as_dict(obs) -> dict[str, np.ndarray]:
    return obs if isinstance(obs, dict) else {"rows": obs}


def test_gymnasium_envs_run_on_the_device():
    vec = gym.make_vec("l2o/Quadratic-v0", num_envs=3, horizon=2, device=str(DEVICE))
    obs, info = vec.reset(seed=0)
    assert on_device(vec.unwrapped.episodes.require_state().x)
    for _ in range(4):  # through an autoreset
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
        assert isinstance(reward, np.ndarray) and np.isfinite(reward).all()
        assert all(isinstance(v, np.ndarray) and np.isfinite(v).all() for v in obs.values())
    env = gym.make("l2o/Quadratic-v0", horizon=2, device=str(DEVICE))
    obs, _ = env.reset(seed=0)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert isinstance(reward, float) and np.isfinite(reward)
    assert all(isinstance(v, np.ndarray) for v in obs.values())


@pytest.mark.parametrize("name", ["adam", "lbfgs", "cg"])
@pytest.mark.parametrize("env_id", ["l2o/LogisticRegression-v0", "l2o/Quadratic-v0"])
def test_hand_designed_optimizers_unroll_on_the_device_like_on_the_cpu(env_id, name):
    on_dev, on_cpu = sample_pair(env_id, n=8, split="test")
    curves = unroll(make_optimizer(name), on_dev, 15)
    curves_cpu = unroll(make_optimizer(name), on_cpu, 15)
    # Only the first steps are compared: once f is ~1e-6 of f0, float32 rounding flips line-search
    # and restart decisions (a 1e-7 relative change of x0 alone moves CG's final quadratic value 6x).
    assert_close(curves.objectives[:6], curves_cpu.objectives[:6], what=f"{name} curve, first 5 steps")
    assert_close(curves.diverged, curves_cpu.diverged, what="diverged")
    assert torch.isfinite(curves.objectives).all() and (curves.final < curves.objectives[0]).all()


def test_ppo_trains_with_device_envs_and_acts_on_device_problems(tmp_path):
    result = train_tiny(
        tmp_path,
        "eval_freq: 1000\nalgo: {n_steps: 16, batch_size: 64, n_epochs: 2}\n",
        name="ppo",
        timesteps=3000,
        num_envs=8,
        env_kwargs={"device": str(DEVICE)},
    )
    assert result.timesteps >= 3000
    assert all(np.isfinite(row["mean_final_objective"]) for row in result.validation)
    rule = load_rule(result.final, device=str(DEVICE))
    assert isinstance(rule, LearnedOptimizer) and rule.device.type == DEVICE.type
    on_cpu_rule = load_rule(result.final)
    fam = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    problem = fam.sample(6, torch.Generator().manual_seed(0), "test", DEVICE)
    problem_cpu = fam.sample(6, torch.Generator().manual_seed(0), "test", CPU)
    curves = unroll(rule, problem, 10)
    assert curves.objectives.shape == (11, 6)
    assert_close(curves.objectives, unroll(on_cpu_rule, problem_cpu, 10).objectives, rtol=1e-2, what="learned curve")
    # a learned optimizer on the device also acts on a CPU problem (its steps come back to x's device)
    assert torch.isfinite(unroll(rule, problem_cpu, 3).objectives).all()


def test_backprop_warm_start_trains_a_policy_on_the_device():
    """The backpropagation warm start with the actor on the device (rows go there, steps come back)."""
    torch.manual_seed(0)
    policy = tiny_policy(DEVICE)
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    result = backprop_warm_start(policy, family, TINY_BACKPROP, TINY_POLICY_META, seed=0)
    assert result.best_score < result.start_score - 0.5 and result.skipped_pieces == 0
    assert all(p.device.type == DEVICE.type for p in policy.parameters())


@pytest.mark.parametrize("env_id", ["l2o/TwoLayerNet-v0", "l2o/LogisticRegression-v0"])
def test_quasi_newton_features_on_the_device(env_id):
    """Rows with quasi-Newton and time features are built on the device; from the same state
    (copied to the device) the window's L-BFGS direction agrees with the CPU's."""
    fam = family(env_id)
    layout = {"coordinatewise": True, "quasi_newton_pairs": 3, "time_features": True}
    on_cpu = EpisodeBatch(fam, N, horizon=STEPS + 2, **layout)
    on_dev = EpisodeBatch(fam, N, horizon=STEPS + 2, device=DEVICE, **layout)
    for batch in (on_cpu, on_dev):
        batch.reset(torch.Generator().manual_seed(0))
    actions = 0.2 * (2 * torch.rand(STEPS, N, fam.dim, generator=torch.Generator().manual_seed(1)) - 1)
    for t in range(STEPS):
        on_cpu.step(actions[t])
        on_dev.step(actions[t].to(DEVICE))
    rows = on_dev.observe()
    assert rows.device.type == DEVICE.type and torch.isfinite(rows).all()
    assert rows.shape == on_cpu.observe().shape
    assert_close(rows[..., -4:], on_cpu.observe()[..., -4:], rtol=1e-6, what="time features")
    on_host, moved = copy.copy(on_cpu.require_state()), copy.copy(on_cpu.require_state())
    for name in ("grad", "grad_history", "step_history"):  # what the direction reads, in float64
        setattr(on_host, name, getattr(on_host, name).double())
        setattr(moved, name, getattr(on_host, name).to(DEVICE))
    expected = window_direction(on_host, 3)
    assert expected.abs().sum() > 0
    assert_close(window_direction(moved, 3), expected, rtol=1e-6, what="window direction")
