"""Random trajectories of the history windows, recorded: what the state, the vector env and the
SB3 VecEnv observe on Rosenbrock under random steps with divergence (exploding and NaN steps),
episode ends and autoresets. `tests/test_history_windows.py` records them again and compares
with the fixture `tests/fixtures/history_windows_reference.npz`.

The fixture was written by ``python -m tests.history_window_trajectories`` when the histories
became ring buffers written once per step; on these trajectories those recordings matched the
construction they replaced (the whole window shifted every step) within 1e-6. Rewrite it only
for an intended change of the observations.

Every recording is a flat ``{name: array}``: per-step quantities stacked over steps [T, ...].
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

import l2o_gym
from l2o_gym.features import make_observation, window_adam_directions
from l2o_gym.quasi_newton import window_direction
from l2o_gym.registry import make_family
from l2o_gym.state import OptimizationState

FIXTURE = Path(__file__).parent / "fixtures" / "history_windows_reference.npz"
HISTORIES = (2, 5, 25)
LAYOUTS = {
    "dict": {"coordinatewise": False},
    "rows": {"coordinatewise": True},
    "rows_qn_time": {"coordinatewise": True, "quasi_newton_pairs": 3, "time_features": True, "action_scale": 0.5},
}
STATE_LAYOUTS = ("dict", "rows_qn_time")  # the plain rows' columns are a subset of the latter's
STATE_BATCH, STATE_DIM = 12, 3
ENV_KW = {"dim": 3, "horizon": (3, 9)}
ENV_STEPS = 40


def random_steps(generator: torch.Generator, batch: int, dim: int, steps: int, scale: float) -> Tensor:
    """Steps [T, B, d] of random sizes, some exploding or NaN (divergence), some zero."""
    sizes = scale * 10.0 ** (2 * torch.rand(steps, batch, 1, generator=generator) - 1)
    steps_ = sizes * torch.randn(steps, batch, dim, generator=generator)
    blowup = torch.rand(steps, batch, generator=generator) < 0.006
    steps_[blowup] = 1e6
    steps_[torch.rand(steps, batch, generator=generator) < 0.006] = float("nan")
    steps_[torch.rand(steps, batch, generator=generator) < 0.05] = 0.0
    return steps_


def env_actions(generator: torch.Generator, steps: int, batch: int, dim: int) -> Tensor:
    """Actions [T, B, d] uniform in [-1, 1], some rows NaN (divergence)."""
    actions = 2 * torch.rand(steps, batch, dim, generator=generator) - 1
    actions[torch.rand(steps, batch, generator=generator) < 0.03] = float("nan")
    return actions


def as_array(value: Tensor | np.ndarray) -> np.ndarray:
    """A copy of `value` as a numpy array (the state writes some of its tensors in place later)."""
    return value.numpy().copy() if isinstance(value, Tensor) else np.array(value)


def flatten(observation: Any, prefix: str) -> dict[str, np.ndarray]:
    """{prefix: array} for an array or tensor, {prefix.key: array} for a dict of them."""
    if isinstance(observation, dict):
        return {f"{prefix}.{key}": as_array(value) for key, value in observation.items()}
    return {prefix: as_array(observation)}


def stacked(frames: list[dict[str, np.ndarray]], prefix: str) -> dict[str, np.ndarray]:
    """{prefix/name: [T, ...]} from T frames of the same names."""
    return {f"{prefix}/{name}": np.stack([frame[name] for frame in frames]) for name in frames[0]}


def state_layouts(history: int) -> dict[str, dict[str, Any]]:
    """STATE_LAYOUTS with the quasi-Newton pairs cut to what the window holds (history - 1)."""
    layouts = {}
    for name in STATE_LAYOUTS:
        layout = layouts[name] = dict(LAYOUTS[name])
        if layout.get("quasi_newton_pairs", 0) >= history:
            layout["quasi_newton_pairs"] = history - 1
    return layouts


def state_frame(state: OptimizationState, observers: dict[str, Any], history: int) -> dict[str, np.ndarray]:
    """One step of a state trajectory: counters, every layout's observation and the directions."""
    frame = {**flatten(state.t, "t"), **flatten(state.diverged, "diverged")}
    for name, observe in observers.items():
        frame.update(flatten(observe(state), name))
    frame.update(flatten(window_adam_directions(state, (0.9,)), "adam_0.9"))
    if history > 1:
        frame.update(flatten(window_direction(state, history - 1), "quasi_newton"))
    return frame


def record_state(history: int, coordinate_major: bool) -> dict[str, np.ndarray]:
    """A state trajectory of 3 H + 7 random steps; at step H + 2 about 40 % of the rows start afresh
    (as an autoreset does). Names `state_h{H}/...`."""
    family = make_family("l2o/Rosenbrock-v0", dim=STATE_DIM)
    generator = torch.Generator().manual_seed(history)
    start = {"history": history, "coordinate_major": coordinate_major}
    state = OptimizationState.start(family.sample(STATE_BATCH, generator), **start)
    observers = {
        name: make_observation(layout.pop("coordinatewise"), STATE_DIM, history, **layout)
        for name, layout in state_layouts(history).items()
    }
    steps = random_steps(generator, STATE_BATCH, STATE_DIM, 3 * history + 7, 0.05)
    frames = []
    for t in range(steps.shape[0]):
        if t == history + 2:
            mask = torch.rand(STATE_BATCH, generator=generator) < 0.4
            fresh = family.sample(int(mask.sum()), generator)
            state.replace_rows(mask, OptimizationState.start(fresh, **start))
        state.advance(steps[t])
        frames.append(state_frame(state, observers, history))
    return stacked(frames, f"state_h{history}")


def record_vector_env(layout_name: str) -> dict[str, np.ndarray]:
    """The Gymnasium vector env over 40 random actions (6 envs). Names `vector_{layout}/...`."""
    env = gym.make_vec(
        "l2o/Rosenbrock-v0", num_envs=6, vectorization_mode="vector_entry_point", **ENV_KW, **LAYOUTS[layout_name]
    )
    obs, _ = env.reset(seed=1)
    frames = [flatten(obs, "obs")]
    actions = env_actions(torch.Generator().manual_seed(2), ENV_STEPS, 6, ENV_KW["dim"])
    for t in range(actions.shape[0]):
        obs, _, terminated, truncated, _ = env.step(actions[t].numpy())
        frames.append({**flatten(obs, "obs"), "ended": terminated | truncated})
    frames[0]["ended"] = np.zeros(6, dtype=bool)
    return stacked(frames, f"vector_{layout_name}")


def record_sb3_vec_env(layout_name: str) -> dict[str, np.ndarray]:
    """The SB3 VecEnv over 40 random actions (5 envs): observations, dones and each done env's
    terminal observation (stacked in step order; `terminal_at` [n, 2] holds step and env).
    Names `sb3_{layout}/...`."""
    layout = dict(LAYOUTS[layout_name])
    venv = l2o_gym.make_sb3_vec_env("l2o/Rosenbrock-v0", 5, seed=3, **ENV_KW, **layout)
    frames = [{**flatten(venv.reset(), "obs"), "dones": np.zeros(venv.num_envs, dtype=bool)}]
    terminal, terminal_at = [], []
    actions = env_actions(torch.Generator().manual_seed(4), ENV_STEPS, 5, ENV_KW["dim"])
    for t in range(actions.shape[0]):
        venv.step_async(actions[t].reshape(venv.num_envs, -1).numpy())
        obs, _, dones, infos = venv.step_wait()
        frames.append({**flatten(obs, "obs"), "dones": dones})
        for i, info in enumerate(infos):
            assert ("terminal_observation" in info) == bool(dones[i]) and "objective" in info, (t, i)
            if dones[i]:
                terminal.append(flatten(info["terminal_observation"], "terminal"))
                terminal_at.append((t, i))
    record = stacked(frames, f"sb3_{layout_name}")
    record.update(stacked(terminal, f"sb3_{layout_name}"))
    record[f"sb3_{layout_name}/terminal_at"] = np.asarray(terminal_at)
    return record


def record_all(coordinate_major: bool = False) -> dict[str, np.ndarray]:
    """Every recording the fixture holds (the state's with the given window layout)."""
    record: dict[str, np.ndarray] = {}
    for history in HISTORIES:
        record.update(record_state(history, coordinate_major))
    for layout_name in LAYOUTS:
        record.update(record_vector_env(layout_name))
        record.update(record_sb3_vec_env(layout_name))
    return record


def main() -> None:
    """Write the fixture (refuses to overwrite unless given --overwrite)."""
    if FIXTURE.exists() and "--overwrite" not in sys.argv[1:]:
        sys.exit(f"{FIXTURE} exists; pass --overwrite to record it again")
    torch.set_num_threads(1)
    np.savez_compressed(FIXTURE, **record_all())
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
