"""Histories written once per step give the observations the shift-the-whole-window construction
gave: the reference below is a verbatim copy of that construction (state, push, features,
quasi-Newton direction), run beside the new one on random trajectories with divergence, episode
ends and autoresets, in the state, the vector env and the SB3 VecEnv."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

import l2o_gym
from l2o_gym.features import MOMENTUM_BETAS, RMS_BETA, make_observation, time_columns, window_adam_directions
from l2o_gym.history_window import HistoryWindow
from l2o_gym.problem import Problem
from l2o_gym.quasi_newton import CURVATURE_EPS, two_loop, window_direction
from l2o_gym.registry import make_family
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, DEFAULT_HISTORY, OptimizationState, relative_change

ATOL = 1e-6

# ---- the reference: the construction as it was, verbatim ----------------------------------------

SIGNED_LOG_EPS = 1e-8
_SIGNED_LOG_NORM = math.log1p(1.0 / SIGNED_LOG_EPS)


def ref_signed_log(v: Tensor) -> Tensor:
    log_ratio = torch.log(v.abs()) - math.log(SIGNED_LOG_EPS)
    return torch.sign(v) * torch.logaddexp(log_ratio, torch.zeros_like(v)) / _SIGNED_LOG_NORM


def _push(history: Tensor, new: Tensor, where: Tensor) -> Tensor:
    shifted = torch.cat([history[:, 1:], new.unsqueeze(1)], dim=1)
    shape = (-1,) + (1,) * (history.dim() - 1)
    return torch.where(where.view(shape), shifted, history)


@dataclass
class RefState:
    problem: Problem
    x: Tensor
    f: Tensor
    grad: Tensor
    f0: Tensor
    grad_history: Tensor
    step_history: Tensor
    change_history: Tensor
    last_step: Tensor
    t: Tensor
    diverged: Tensor
    explode_ratio: float = DEFAULT_EXPLODE_RATIO

    @classmethod
    def start(cls, problem, x0=None, history=DEFAULT_HISTORY, explode_ratio=DEFAULT_EXPLODE_RATIO):
        x = problem.init() if x0 is None else x0.detach().clone()
        f, grad = problem.loss_and_grad(x)
        batch, dim = x.shape
        grad_history = torch.zeros(batch, history, dim, dtype=x.dtype, device=x.device)
        grad_history[:, -1] = grad
        return cls(
            problem=problem,
            x=x,
            f=f,
            grad=grad,
            f0=f.clone(),
            grad_history=grad_history,
            step_history=torch.zeros_like(grad_history),
            change_history=torch.zeros(batch, history, dtype=x.dtype, device=x.device),
            last_step=torch.zeros_like(x),
            t=torch.zeros(batch, dtype=torch.long, device=x.device),
            diverged=torch.zeros(batch, dtype=torch.bool, device=x.device),
            explode_ratio=explode_ratio,
        )

    @property
    def history(self) -> int:
        return self.change_history.shape[1]

    def advance(self, step: Tensor) -> Tensor:
        step = step.detach().to(self.x.dtype)
        active = ~self.diverged
        step_finite = torch.isfinite(step).all(dim=1)
        safe_step = torch.where(step_finite.unsqueeze(1), step, torch.zeros_like(step))
        x_new = self.x + safe_step
        f_new, grad_new = self.problem.loss_and_grad(x_new)
        limit = self.f0 + self.explode_ratio * (self.f0.abs() + 1.0)
        ok = (
            step_finite
            & torch.isfinite(x_new).all(dim=1)
            & torch.isfinite(f_new)
            & torch.isfinite(grad_new).all(dim=1)
            & (f_new <= limit)
        )
        diverged_now = active & ~ok
        moved = active & ok
        change = relative_change(torch.where(moved, f_new, self.f), self.f)
        m1 = moved.unsqueeze(1)
        self.last_step = torch.where(m1, safe_step, self.last_step)
        self.x = torch.where(m1, x_new, self.x)
        self.f = torch.where(moved, f_new, self.f)
        self.grad = torch.where(m1, grad_new, self.grad)
        self.grad_history = _push(self.grad_history, self.grad, moved)
        self.step_history = _push(self.step_history, self.last_step, moved)
        self.change_history = _push(self.change_history, change, moved)
        self.t = self.t + active.long()
        self.diverged = self.diverged | diverged_now
        return diverged_now

    def replace_rows(self, mask: Tensor, other: RefState) -> None:  # the problem is replaced by the new state
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                value[mask] = getattr(other, field.name)


def ref_window_averages(history: Tensor, steps: Tensor, betas: tuple[float, ...]) -> Tensor:
    window = history.shape[1]
    age = torch.arange(window - 1, -1, -1, device=history.device, dtype=history.dtype)
    filled = (age.unsqueeze(0) <= steps.to(history.dtype).unsqueeze(1)).to(history.dtype)
    decay = torch.tensor(betas, device=history.device, dtype=history.dtype).unsqueeze(1) ** age
    weights = decay.unsqueeze(0) * filled.unsqueeze(1)
    weights = weights / weights.sum(dim=2, keepdim=True)
    return torch.einsum("bnh,bh...->bn...", weights, history)


def ref_window_adam_directions(state, betas=MOMENTUM_BETAS, averages=None) -> Tensor:
    if averages is None:
        averages = ref_window_averages(state.grad_history, state.t, betas)
    rms = ref_window_averages(state.grad_history.square(), state.t, (RMS_BETA,)).sqrt()
    return (averages / rms.clamp_min(torch.finfo(rms.dtype).tiny)).clamp(-1.0, 1.0)


def ref_window_direction(state, pairs: int) -> Tensor:
    S = state.step_history[:, -pairs:]
    Y = state.grad_history[:, -pairs:] - state.grad_history[:, -pairs - 1 : -1]
    sy = (S * Y).sum(dim=2)
    scale = S.square().sum(dim=2).sqrt() * Y.square().sum(dim=2).sqrt()
    counted = sy > CURVATURE_EPS * scale.clamp_min(torch.finfo(sy.dtype).tiny)
    rho = torch.where(counted, 1.0 / torch.where(counted, sy, torch.ones_like(sy)), torch.zeros_like(sy))
    yy = Y.square().sum(dim=2).clamp_min(torch.finfo(sy.dtype).tiny)
    gamma = torch.zeros_like(sy[:, 0])
    for i in range(pairs):
        gamma = torch.where(counted[:, i], sy[:, i] / yy[:, i], gamma)
    direction = -two_loop(state.grad, S, Y, rho, gamma)
    usable = counted.any(dim=1) & torch.isfinite(direction).all(dim=1) & ((direction * state.grad).sum(dim=1) < 0)
    return torch.where(usable.unsqueeze(1), direction, torch.zeros_like(direction))


def ref_dict_observation(state) -> dict[str, Tensor]:
    return {
        "location": state.x,
        "gradients": ref_signed_log(state.grad_history),
        "improvements": state.change_history,
    }


def ref_rows(state, history, action_scale=1.0, quasi_newton_pairs=0, time_features=False) -> Tensor:
    batch, dim = state.x.shape
    grads = ref_signed_log(state.grad_history).transpose(1, 2)
    changes = state.change_history.unsqueeze(1).expand(batch, dim, history)
    last_step = ref_signed_log(state.last_step).unsqueeze(2)
    squashed_grad = (state.grad / (1.0 + state.grad.abs())).unsqueeze(2)
    previous_action = (state.last_step / action_scale).clamp(-1.0, 1.0).unsqueeze(2)
    averages = ref_window_averages(state.grad_history, state.t, MOMENTUM_BETAS)
    direction = ref_window_adam_directions(state, MOMENTUM_BETAS, averages)
    columns = [
        grads,
        changes,
        last_step,
        squashed_grad,
        previous_action,
        ref_signed_log(averages).transpose(1, 2),
        direction.transpose(1, 2),
    ]
    if quasi_newton_pairs:
        newton = ref_window_direction(state, quasi_newton_pairs)
        columns += [ref_signed_log(newton).unsqueeze(2), (newton / action_scale).clamp(-1.0, 1.0).unsqueeze(2)]
    if time_features:
        columns.append(time_columns(state.t, dim, state.x.dtype))
    return torch.cat(columns, dim=2)


def ref_observation(state, coordinatewise: bool, **layout):
    return ref_rows(state, state.history, **layout) if coordinatewise else ref_dict_observation(state)


# ---- helpers ------------------------------------------------------------------------------------


def assert_same(new, ref, what: str) -> None:
    if isinstance(ref, dict):
        assert set(new) == set(ref)
        for key in ref:
            assert_same(new[key], ref[key], f"{what}[{key}]")
        return
    new, ref = torch.as_tensor(np.asarray(new)), torch.as_tensor(np.asarray(ref))
    assert new.shape == ref.shape, what
    assert torch.isfinite(new).all(), what
    err = (new.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
    assert err <= ATOL, f"{what}: max difference {err:.2e}"


def random_steps(generator: torch.Generator, batch: int, dim: int, steps: int, scale: float) -> Tensor:
    """Steps [T, B, d] of random sizes, some exploding or NaN (divergence), some zero."""
    sizes = scale * 10.0 ** (2 * torch.rand(steps, batch, 1, generator=generator) - 1)
    steps_ = sizes * torch.randn(steps, batch, dim, generator=generator)
    blowup = torch.rand(steps, batch, generator=generator) < 0.006
    steps_[blowup] = 1e6
    steps_[torch.rand(steps, batch, generator=generator) < 0.006] = float("nan")
    steps_[torch.rand(steps, batch, generator=generator) < 0.05] = 0.0
    return steps_


LAYOUTS = [
    {"coordinatewise": False},
    {"coordinatewise": True},
    {"coordinatewise": True, "quasi_newton_pairs": 3, "time_features": True, "action_scale": 0.5},
]

# ---- the state and its features -----------------------------------------------------------------


@pytest.mark.parametrize("coordinate_major", [False, True])
@pytest.mark.parametrize("history", [2, 5, 25])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_state_histories_and_features_match_the_reference(history, layout, coordinate_major):
    layout = dict(layout)
    if layout.get("quasi_newton_pairs", 0) >= history:
        layout["quasi_newton_pairs"] = history - 1
    coordinatewise = layout.pop("coordinatewise")
    family = make_family("l2o/Rosenbrock-v0", dim=5)
    generator = torch.Generator().manual_seed(history)
    state = OptimizationState.start(family.sample(12, generator), history=history, coordinate_major=coordinate_major)
    ref = RefState.start(state.problem, history=history)
    observe = make_observation(coordinatewise, 5, history, **layout)
    steps = random_steps(generator, 12, 5, 3 * history + 7, 0.05)
    for t in range(steps.shape[0]):
        if t == history + 2:  # some rows start afresh (as an autoreset does)
            mask = torch.rand(12, generator=generator) < 0.4
            fresh = family.sample(int(mask.sum()), generator)
            new_rows = OptimizationState.start(fresh, history=history, coordinate_major=coordinate_major)
            state.replace_rows(mask, new_rows)  # replaces the shared problem's rows too
            ref.replace_rows(mask, RefState.start(fresh, history=history))
        ref.advance(steps[t])
        state.advance(steps[t])
        for name in ("grad_history", "step_history", "change_history", "x", "grad", "last_step", "t", "diverged"):
            assert torch.equal(getattr(state, name), getattr(ref, name)), (t, name)
        assert_same(observe(state), ref_observation(ref, coordinatewise, **layout), f"step {t}")
        assert_same(window_adam_directions(state, (0.9,)), ref_window_adam_directions(ref, (0.9,)), f"adam {t}")
        if history > 1:
            assert_same(window_direction(state, history - 1), ref_window_direction(ref, history - 1), f"qn {t}")
    assert state.diverged.any() and (~state.diverged).any()  # the trajectories did cover both


def test_history_setters_take_ordered_tensors():
    state = OptimizationState.start(make_family("l2o/Quadratic-v0", dim=3).sample(2, torch.Generator()), history=4)
    grads = torch.randn(2, 4, 3)
    state.grad_history = grads
    state.step_history = 2 * grads
    state.change_history = grads[:, :, 0]
    assert torch.equal(state.grad_history, grads) and torch.equal(state.step_history, 2 * grads)
    assert torch.equal(state.change_history, grads[:, :, 0])
    assert torch.allclose(state.log_grad_window.view(), ref_signed_log(grads))
    held = state.grad_history  # a copy: later steps leave it alone
    state.advance(torch.zeros(2, 3))
    assert torch.equal(held, grads) and torch.equal(state.grad_history[:, :-1], grads[:, 1:])


@pytest.mark.parametrize("time_last", [False, True])
def test_window_keeps_frozen_rows_and_is_written_once(time_last):
    window = HistoryWindow.starting_with(torch.tensor([[1.0, -1.0], [10.0, -10.0]]), 3, time_last)
    for k in range(2, 6):
        new = torch.tensor([[float(k), -float(k)], [10.0 * k, -10.0 * k]])
        window.push(new, frozen=torch.tensor([1]) if k >= 4 else None)
    assert window.ordered()[:, :, 0].tolist() == [[3.0, 4.0, 5.0], [10.0, 20.0, 30.0]]
    assert torch.equal(window.ordered()[:, :, 1], -window.ordered()[:, :, 0])
    assert window.newest(2)[:, :, 0].tolist() == [[4.0, 5.0], [20.0, 30.0]]
    window.replace_rows(torch.tensor([True, False]), HistoryWindow.from_ordered(torch.ones(1, 3, 2), time_last))
    assert window.ordered()[0].eq(1).all() and window.ordered()[1, :, 0].tolist() == [10.0, 20.0, 30.0]


# ---- the env forms, with a reference state shadowing the env's own --------------------------------


class Shadow:
    """A reference state that follows an EpisodeBatch's state: the same steps, the same resets."""

    def __init__(self, episodes, layout: dict) -> None:
        self.episodes, self.layout = episodes, layout
        self.ref: RefState | None = None
        self.before_reset: object = None

    def attach(self) -> None:
        state = self.episodes.require_state()
        self.ref = RefState.start(state.problem, x0=state.x, history=state.history)
        advance, replace_rows = state.advance, state.replace_rows

        def shadow_advance(step, **kwargs):
            self.ref.advance(step)
            return advance(step, **kwargs)

        def shadow_replace_rows(mask, other):
            before = self.observation()  # copied: the reference's location is its x, replaced in place
            is_dict = isinstance(before, dict)
            self.before_reset = {k: v.clone() for k, v in before.items()} if is_dict else before.clone()
            fresh = RefState.start(other.problem, x0=other.x, history=other.history)
            replace_rows(mask, other)
            self.ref.replace_rows(mask, fresh)

        state.advance, state.replace_rows = shadow_advance, shadow_replace_rows

    def observation(self):
        layout = {k: v for k, v in self.layout.items() if k != "coordinatewise"}
        layout["action_scale"] = self.episodes.observation_spec.action_scale
        return ref_observation(self.ref, self.layout["coordinatewise"], **layout)


def env_actions(generator: torch.Generator, steps: int, batch: int, dim: int) -> Tensor:
    actions = 2 * torch.rand(steps, batch, dim, generator=generator) - 1
    actions[torch.rand(steps, batch, generator=generator) < 0.03] = float("nan")  # divergence
    return actions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vector_env_observations_match_the_reference(layout):
    env = gym.make_vec(
        "l2o/Rosenbrock-v0", num_envs=6, vectorization_mode="vector_entry_point", dim=3, horizon=(3, 9), **layout
    )
    obs, _ = env.reset(seed=1)
    shadow = Shadow(env.unwrapped.episodes if hasattr(env, "unwrapped") else env.episodes, layout)
    shadow.attach()
    assert_same(obs, shadow.observation(), "reset")
    actions = env_actions(torch.Generator().manual_seed(2), 40, 6, 3)
    ended = 0
    for t in range(actions.shape[0]):
        obs, _, terminated, truncated, _ = env.step(actions[t].numpy())
        ended += int(terminated.sum() + truncated.sum())
        assert_same(obs, shadow.observation(), f"step {t}")
    assert ended > 6


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sb3_vec_env_observations_and_terminal_rows_match_the_reference(layout):
    coordinatewise = layout["coordinatewise"]
    extra = {k: v for k, v in layout.items() if k != "coordinatewise"}
    venv = l2o_gym.make_sb3_vec_env(
        "l2o/Rosenbrock-v0", 5, seed=3, coordinatewise=coordinatewise, dim=3, horizon=(3, 9), **extra
    )
    obs = venv.reset()
    shadow = Shadow(venv.episodes, layout)
    shadow.attach()

    def flat(reference):
        return reference.reshape(venv.num_envs, -1) if coordinatewise else reference

    assert_same(obs, flat(shadow.observation()), "reset")
    actions = env_actions(torch.Generator().manual_seed(4), 40, 5, 3)
    ended = 0
    for t in range(actions.shape[0]):
        venv.step_async(actions[t].reshape(venv.num_envs, -1).numpy())
        shadow.before_reset = None
        obs, _, dones, infos = venv.step_wait()
        assert_same(obs, flat(shadow.observation()), f"step {t}")
        done_envs = np.flatnonzero(dones)
        ended += len(done_envs)
        if len(done_envs):
            before = flat(shadow.before_reset)
            for i in done_envs:
                terminal = infos[i]["terminal_observation"]
                expected = {k: v[i] for k, v in before.items()} if isinstance(before, dict) else before[i]
                assert_same(terminal, expected, f"terminal row {i} at step {t}")
        assert all("terminal_observation" not in infos[i] for i in np.flatnonzero(~dones))
        assert all("objective" in info for info in infos)
    assert ended > 5
