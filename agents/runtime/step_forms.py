"""How a coordinatewise policy's output becomes the environment's action (the scaled step).

- ``linear``: one output a per coordinate; the env action is a (the step action_scale · a).
- ``log_magnitude``: two outputs (u, m) per coordinate, a direction and a log-magnitude (the
  output form of learned_optimization's MLP optimizer); the env action is
  ``u · exp(-log_range · (1 - m) / 2)``, so m = 1 gives steps up to action_scale and m = -1
  steps ``exp(-log_range)`` times smaller. Gaussian exploration noise on u is then relative to
  the chosen magnitude: the policy can take precise small steps near an optimum, where a linear
  output's absolute noise swamps them.

The env keeps its contract (action = step / action_scale); `StepFormVecEnv` applies the form
between the agent and the env during training, `LearnedOptimizer` at evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import Tensor

STEP_FORMS = ("linear", "log_magnitude")
DEFAULT_LOG_RANGE = 10.0


class StepForm:
    """Maps policy outputs [N, width] to env actions [N] and back."""

    def __init__(self, name: str = "linear", log_range: float = DEFAULT_LOG_RANGE) -> None:
        if name not in STEP_FORMS:
            raise ValueError(f"step form must be one of {STEP_FORMS}, got {name!r}")
        if not (isinstance(log_range, (int, float)) and 0 < log_range < float("inf")):
            raise ValueError(f"log_range must be a positive finite number, got {log_range!r}")
        self.name = name
        self.log_range = float(log_range)

    @classmethod
    def from_meta(cls, meta: dict) -> StepForm:
        """The form a policy was trained with, from its metadata (``linear`` where it names none)."""
        form = meta.get("step_form") or {}
        return cls(form.get("name", "linear"), form.get("log_range", DEFAULT_LOG_RANGE))

    def to_meta(self) -> dict:
        return {"name": self.name, "log_range": self.log_range}

    @property
    def width(self) -> int:
        """Policy outputs per coordinate."""
        return 1 if self.name == "linear" else 2

    def action_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.width,), np.float32)

    def env_action(self, outputs: Tensor) -> Tensor:
        """Policy outputs [N, width] (clipped to [-1, 1]) -> env actions [N] in [-1, 1]."""
        outputs = outputs.clamp(-1.0, 1.0)
        if self.name == "linear":
            return outputs[:, 0]
        direction, log_magnitude = outputs[:, 0], outputs[:, 1]
        return direction * torch.exp(-self.log_range * (1.0 - log_magnitude) / 2.0)

    def policy_outputs(self, env_action: Tensor) -> Tensor:
        """Env actions [N] -> policy outputs [N, width] that produce them (for imitation)."""
        env_action = env_action.clamp(-1.0, 1.0)
        if self.name == "linear":
            return env_action[:, None]
        magnitude = env_action.abs().clamp_min(math.exp(-self.log_range))
        log_magnitude = 1.0 + 2.0 * torch.log(magnitude) / self.log_range
        return torch.stack([torch.sign(env_action), log_magnitude.clamp(-1.0, 1.0)], dim=1)


class StepFormVecEnv(VecEnvWrapper):
    """A coordinatewise SB3 VecEnv whose agent acts through a `StepForm`."""

    def __init__(self, venv: VecEnv, form: StepForm) -> None:
        if venv.action_space.shape != (1,):
            raise ValueError(
                f"a step form needs the coordinatewise layout (action shape (1,)), got {venv.action_space.shape}"
            )
        super().__init__(venv, action_space=form.action_space())
        self.form = form

    def step_async(self, actions: np.ndarray) -> None:
        outputs = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(self.num_envs, self.form.width))
        self.venv.step_async(self.form.env_action(outputs).numpy()[:, None])

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()
