"""Training hyperparameters: agents/rl/hyperparams.yaml (per env id and algorithm), merged with a
user's YAML file and command-line overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

HYPERPARAMS_FILE = Path(__file__).with_name("hyperparams.yaml")
SECTIONS = (
    "timesteps",
    "num_envs",
    "coordinatewise",
    "eval_freq",
    "eval_horizons",
    "env",
    "algo",
    "policy",
    "step",
    "imitation",
    "backprop",
)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """base with override's keys, merged recursively into nested dicts."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def _algo_section(data: dict[str, Any], key: str, algo: str) -> dict[str, Any]:
    section = data.get(key, {}) or {}
    return section.get(algo, {}) or {}


def load_hyperparams(env_id: str, algo: str, config: str | Path | None = None) -> dict[str, Any]:
    """Hyperparameters for training `algo` on `env_id`.

    A user config may be laid out like hyperparams.yaml (env ids / default, then algorithms) or
    hold the sections directly (timesteps, env, algo, policy, ...).
    """
    data = _read_yaml(HYPERPARAMS_FILE)
    if algo not in data["default"]:
        raise ValueError(f"algo must be one of {sorted(data['default'])}, got {algo!r}")
    params = deep_merge(_algo_section(data, "default", algo), _algo_section(data, env_id, algo))
    if config is not None:
        user = _read_yaml(config)
        if any(k in user for k in SECTIONS):
            params = deep_merge(params, user)
        else:
            foreign = [k for k in user if k != "default" and "-v" not in str(k)]
            if foreign:
                raise ValueError(
                    f"unknown hyperparameter section(s) {foreign} in {str(config)!r}; allowed: {list(SECTIONS)}, "
                    "or 'default' / env ids holding algorithms"
                )
            params = deep_merge(params, _algo_section(user, "default", algo))
            params = deep_merge(params, _algo_section(user, env_id, algo))
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown hyperparameter section(s) {unknown}; allowed: {list(SECTIONS)}")
    return params
