"""Save and rebuild stable-baselines3 policies without unpickling anything.

A trained SB3 model is saved for use as an optimizer as its policy's `state_dict` (``policy.pth``,
read back with ``torch.load(weights_only=True)``) and the plain-data recipe to rebuild the policy
(algorithm, policy kwargs in YAML form, spaces from the env's metadata). SB3's own ``.zip``
checkpoints, which hold pickled objects, are used only to resume training from a run of one's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from torch import nn

from agents.runtime.saved_rules import load_weights, save_weights
from agents.runtime.step_forms import StepForm
from l2o_gym.features import CoordinatewiseObservation, DictObservation, make_observation

POLICY_FILE = "policy.pth"
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "elu": nn.ELU}


def policy_kwargs_from_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """YAML policy kwargs (activation by name) as SB3 policy kwargs."""
    kwargs = dict(config or {})
    if "activation_fn" in kwargs:
        name = kwargs["activation_fn"]
        if name not in ACTIVATIONS:
            raise ValueError(f"activation_fn must be one of {sorted(ACTIVATIONS)}, got {name!r}")
        kwargs["activation_fn"] = ACTIVATIONS[name]
    return kwargs


def observation_for(meta: dict[str, Any], dim: int) -> CoordinatewiseObservation | DictObservation:
    """The observation layout a saved policy's metadata describes (layout, history, action scale,
    quasi-Newton pairs, time features), for problems of dimension `dim`."""
    return make_observation(
        meta["observation"] == "coordinatewise",
        dim,
        int(meta["history"]),
        float(meta["action_scale"]),
        int(meta.get("quasi_newton_pairs", 0)),
        bool(meta.get("time_features", False)),
    )


def spaces_for(meta: dict[str, Any], outputs: int = 1) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) the policy `meta` describes acts on; `outputs` per coordinate."""
    observation = observation_for(meta, meta["dim"])
    if isinstance(observation, CoordinatewiseObservation):
        return observation.row_space(), gym.spaces.Box(-1.0, 1.0, (outputs,), np.float32)
    return observation.space(), gym.spaces.Box(-1.0, 1.0, (meta["dim"],), np.float32)


def policy_class(algo: str, coordinatewise: bool) -> type:
    """The SB3 policy class an algorithm uses for this observation layout."""
    if algo in ("ppo", "a2c"):
        from stable_baselines3.common.policies import ActorCriticPolicy, MultiInputActorCriticPolicy

        return ActorCriticPolicy if coordinatewise else MultiInputActorCriticPolicy
    if algo == "sac":
        from stable_baselines3.sac.policies import MlpPolicy, MultiInputPolicy

        return MlpPolicy if coordinatewise else MultiInputPolicy
    if algo == "td3":
        from stable_baselines3.td3.policies import MlpPolicy, MultiInputPolicy

        return MlpPolicy if coordinatewise else MultiInputPolicy
    if algo == "recurrent_ppo":
        from sb3_contrib.common.recurrent.policies import (
            RecurrentActorCriticPolicy,
            RecurrentMultiInputActorCriticPolicy,
        )

        return RecurrentActorCriticPolicy if coordinatewise else RecurrentMultiInputActorCriticPolicy
    raise ValueError(f"algo must be one of ppo, sac, td3, a2c, recurrent_ppo; got {algo!r}")


def save_policy(policy: nn.Module, folder: str | Path) -> Path:
    """Write the policy's weights to folder/policy.pth atomically."""
    return save_weights(policy, Path(folder) / POLICY_FILE)


def rebuild_policy(folder: str | Path, meta: dict[str, Any], device: str = "cpu") -> nn.Module:
    """The policy described by `meta`, with the weights in folder/policy.pth (no unpickling)."""
    algo = meta["algo"]
    coordinatewise = meta["observation"] == "coordinatewise"
    observation_space, action_space = spaces_for(meta, StepForm.from_meta(meta).width)
    cls = policy_class(algo, coordinatewise)
    policy = cls(observation_space, action_space, lambda _: 0.0, **policy_kwargs_from_config(meta["policy_kwargs"]))
    return load_weights(policy, Path(folder) / POLICY_FILE, device).eval()
