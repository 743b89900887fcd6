"""Save and rebuild stable-baselines3 policies without unpickling anything.

A trained SB3 model is saved for use as an optimizer as its policy's `state_dict` (``policy.pth``,
read back with ``torch.load(weights_only=True)``) and the plain-data recipe to rebuild the policy
(algorithm, policy kwargs in YAML form, spaces from the metadata's `ObservationSpec`). SB3's own ``.zip``
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
from l2o_gym.observation_spec import ObservationSpec

POLICY_FILE = "policy.pth"
# how policy.pth is laid out: an SB3 policy's state_dict, the policy rebuilt from the metadata's
# algo, policy_kwargs, step form and observation spec. Written as the metadata's "weights_format".
WEIGHTS_FORMAT = 1
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


def spaces_for(spec: ObservationSpec, dim: int, outputs: int = 1) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) a policy for `spec` at dimension `dim` acts on; `outputs`
    per coordinate (coordinatewise) or one per dimension (dict)."""
    width = outputs if spec.coordinatewise else dim
    return spec.policy_space(dim), gym.spaces.Box(-1.0, 1.0, (width,), np.float32)


def check_weights_format(meta: dict[str, Any]) -> None:
    """The saved weights must be in `WEIGHTS_FORMAT` (metadata of l2o_gym 0.4 has no key: format 1)."""
    found = meta.get("weights_format", 1)
    if found != WEIGHTS_FORMAT:
        raise ValueError(
            f"weights_format {found!r} is not this library's SB3 weights format ({WEIGHTS_FORMAT}): "
            "retrain the policy with this version or load it with the version that saved it"
        )


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


def rebuild_policy(
    folder: str | Path, meta: dict[str, Any], device: str = "cpu", spec: ObservationSpec | None = None
) -> nn.Module:
    """The policy described by `meta` (its observation `spec`, read from `meta` if not given), with
    the weights in folder/policy.pth (no unpickling)."""
    check_weights_format(meta)
    spec = ObservationSpec.from_saved_meta(meta) if spec is None else spec
    observation_space, action_space = spaces_for(spec, meta["dim"], StepForm.from_meta(meta).width)
    cls = policy_class(meta["algo"], spec.coordinatewise)
    policy = cls(observation_space, action_space, lambda _: 0.0, **policy_kwargs_from_config(meta["policy_kwargs"]))
    return load_weights(policy, Path(folder) / POLICY_FILE, device).eval()
