"""A trained stable-baselines3 policy acting as an optimizer (an `UpdateRule`).

It rebuilds the observation the policy was trained on from the batched `OptimizationState` through
the `ObservationSpec` its metadata carries (built once, at load) and turns the policy's
deterministic action into the step ``action_scale * clip(action, -1, 1)`` (through the policy's
`StepForm`, agents/runtime/step_forms.py); a residual policy's output corrects the step of the
teacher its metadata names (agents/runtime/residual_step.py). A coordinatewise policy acts on every coordinate of
every instance in one forward pass, so it runs on problems of any dimension; a dict-layout policy
only on the dimension it was trained at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from agents.runtime.residual_step import ResidualStep
from agents.runtime.saved_rules import read_meta
from agents.runtime.sb3_policy_io import rebuild_policy
from agents.runtime.step_forms import StepForm
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule


class LearnedOptimizer(UpdateRule):
    """An SB3 policy with its metadata; `LearnedOptimizer.load(path)` reads a saved one.

    `observation_spec` is the layout the policy was trained on (default: read from `meta`)."""

    def __init__(
        self,
        policy: torch.nn.Module,
        meta: dict[str, Any],
        name: str | None = None,
        observation_spec: ObservationSpec | None = None,
    ) -> None:
        self.policy = policy
        self.meta = meta
        self.observation_spec = ObservationSpec.from_saved_meta(meta) if observation_spec is None else observation_spec
        self.step_form = StepForm.from_meta(meta)
        self.residual = ResidualStep.from_meta(meta["residual"]) if meta.get("residual") else None
        self.recurrent = meta["algo"] == "recurrent_ppo"
        self.name = name or f"{meta['algo']}-{self.observation_spec.layout}"
        self._lstm_states: tuple[Tensor, Tensor] | None = None

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", name: str | None = None) -> LearnedOptimizer:
        meta = read_meta(path)
        if meta["kind"] != "sb3":
            raise ValueError(f"{str(path)!r} holds a {meta['kind']!r} optimizer, not an SB3 policy")
        return load(Path(path), meta, device, name)

    @property
    def coordinatewise(self) -> bool:
        return self.observation_spec.coordinatewise

    @property
    def history(self) -> int:
        """The history length a state must keep for this rule (its spec's; `LearnedTorchOptimizer` reads it)."""
        return self.observation_spec.history

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def reset(self, state: OptimizationState) -> None:
        if state.history != self.history:
            raise ValueError(f"the state keeps {state.history} history items, the policy was trained on {self.history}")
        if not self.coordinatewise and state.x.shape[1] != self.meta["dim"]:
            raise ValueError(
                f"this dict-layout policy acts on dimension {self.meta['dim']}, got {state.x.shape[1]}; "
                "train with coordinatewise=True for a dimension-free optimizer"
            )
        self._lstm_states = None
        if self.residual is not None:
            self.residual.teacher.reset(state)

    def observe(self, state: OptimizationState) -> Tensor | dict[str, Tensor]:
        """The policy's input: rows [B·d, F] (coordinatewise) or a dict of [B, ...]."""
        obs = self.observation_spec.policy_input(state)
        if self.coordinatewise:
            return obs.to(self.device)
        return {k: v.to(self.device) for k, v in obs.items()}

    @torch.no_grad()
    def act(self, obs: Tensor | dict[str, Tensor], n: int) -> Tensor:
        """Deterministic actions for n policy inputs."""
        if not self.recurrent:
            return self.policy._predict(obs, deterministic=True)
        starts = torch.zeros(n, device=self.device)
        if self._lstm_states is None:
            layers, _, hidden = self.policy.lstm_hidden_state_shape
            zeros = torch.zeros(layers, n, hidden, device=self.device)
            self._lstm_states = (zeros, zeros.clone())
            starts = torch.ones(n, device=self.device)
        actions, self._lstm_states = self.policy._predict(
            obs, lstm_states=self._lstm_states, episode_starts=starts, deterministic=True
        )
        return actions

    def step(self, state: OptimizationState) -> Tensor:
        batch, dim = state.x.shape
        n = batch * dim if self.coordinatewise else batch
        outputs = self.act(self.observe(state), n)
        if self.coordinatewise:
            outputs = self.step_form.env_action(outputs.reshape(n, self.step_form.width))
        scale = self.observation_spec.action_scale
        outputs = outputs.reshape(batch, dim).to(state.x.dtype).to(state.x.device)
        if self.residual is not None:
            return self.residual.step(state, outputs, scale).clamp(-scale, scale)
        return scale * outputs.clamp(-1.0, 1.0)


def load(folder: Path, meta: dict[str, Any], device: str = "cpu", name: str | None = None) -> LearnedOptimizer:
    """Loader for `agents.runtime.saved_rules.load_rule` (kind "sb3"): the observation spec is read
    from `meta` once and shared by the rebuilt policy and the rule."""
    try:
        spec = ObservationSpec.from_saved_meta(meta)
    except ValueError as err:
        raise ValueError(f"{str(folder)!r}: {err}") from None
    return LearnedOptimizer(rebuild_policy(folder, meta, device, spec), meta, name, spec)
