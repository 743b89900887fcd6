"""A residual policy: the step is a hand-designed teacher's step plus a learned correction.

The teacher (a rule that computes its step from the `OptimizationState` alone, e.g. ``window_qn``)
proposes Δx_teacher [B, d]; the coordinatewise policy's one output a per coordinate corrects it:

- ``scale``: Δx = Δx_teacher · exp(range · a) (a relative step size per coordinate; exploration
  noise is relative to the teacher's step);
- ``add``: Δx = Δx_teacher + range · action_scale · a.

The env action is Δx / action_scale, clipped to [-1, 1] by the env as always. With a = 0 the step
is exactly the teacher's: `zero_last_layer` makes a new policy's mean output 0, so the policy
starts as its teacher. `ResidualVecEnv` applies this between the agent and the env during
training, `LearnedOptimizer` at evaluation (the metadata's ``residual`` names the teacher and its
hyperparameters).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import Tensor

from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule

RESIDUAL_FORMS = ("scale", "add")
# teachers whose step is a function of the state alone (no buffers that an env's autoreset of
# single rows would have to restart): the residual policy and the reference reward can use them
STATE_ONLY_TEACHERS = ("window_qn", "window_adam_qn")


def teacher_from_meta(residual: dict[str, Any]) -> UpdateRule:
    """The teacher a residual policy's metadata names, with its hyperparameters and window pairs."""
    from agents.hand_designed import make_optimizer

    rule = make_optimizer(residual["teacher"], **residual["teacher_hparams"])
    pairs = residual.get("pairs") or 0
    return type(rule)(pairs=pairs, **rule.hparams) if pairs and hasattr(rule, "pairs") else rule


class ResidualStep:
    """Teacher step [B, d] and policy outputs [B, d] -> the step [B, d] (module docstring)."""

    def __init__(self, teacher: UpdateRule, form: str = "scale", scale_range: float = 1.0) -> None:
        if form not in RESIDUAL_FORMS:
            raise ValueError(f"residual form must be one of {RESIDUAL_FORMS}, got {form!r}")
        if not (isinstance(scale_range, (int, float)) and 0 < scale_range < float("inf")):
            raise ValueError(f"residual range must be a positive finite number, got {scale_range!r}")
        self.teacher, self.form, self.range = teacher, form, float(scale_range)

    @classmethod
    def from_meta(cls, residual: dict[str, Any]) -> ResidualStep:
        return cls(teacher_from_meta(residual), residual["form"], residual["range"])

    def to_meta(self) -> dict[str, Any]:
        rule = self.teacher
        return {
            "form": self.form,
            "range": self.range,
            "teacher": rule.name,
            "teacher_hparams": dict(getattr(rule, "hparams", {})),
            "pairs": getattr(rule, "pairs", 0),
        }

    def step(self, state: OptimizationState, outputs: Tensor, action_scale: float) -> Tensor:
        """The step [B, d] from the teacher's at `state` and the policy outputs [B, d] (in [-1, 1])."""
        teacher = self.teacher.step(state)
        outputs = outputs.clamp(-1.0, 1.0).to(teacher.dtype)
        if self.form == "scale":
            return teacher * torch.exp(self.range * outputs)
        return teacher + self.range * action_scale * outputs


def zero_last_layer(policy: torch.nn.Module) -> None:
    """Zero an SB3 actor-critic's action head, so its mean action is 0 for every input, and its
    value head (0 is the value of the teacher itself under a reward paid against the teacher; a
    random head's errors would swamp such small returns in the first normalised advantages)."""
    with torch.no_grad():
        for head in (policy.action_net, policy.value_net):
            head.weight.zero_()
            head.bias.zero_()


class ResidualVecEnv(VecEnvWrapper):
    """A coordinatewise SB3 VecEnv (over `raw`, the batched env whose state the teacher reads) whose
    agent outputs the correction of a `ResidualStep`."""

    def __init__(self, venv: VecEnv, raw: Any, residual: ResidualStep) -> None:
        if venv.action_space.shape != (1,):
            raise ValueError(f"a residual policy needs the coordinatewise layout, got {venv.action_space.shape}")
        super().__init__(venv, action_space=spaces.Box(-1.0, 1.0, (1,), np.float32))
        self.raw, self.residual = raw, residual

    def step_async(self, actions: np.ndarray) -> None:
        episodes = self.raw.episodes
        state = episodes.require_state()
        outputs = torch.as_tensor(np.asarray(actions, dtype=np.float32)).reshape(state.x.shape)
        scale = episodes.observation_spec.action_scale
        with torch.no_grad():
            step = self.residual.step(state, outputs.to(state.x.device), scale)
        self.venv.step_async((step / scale).float().cpu().numpy().reshape(self.num_envs, 1))

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()
