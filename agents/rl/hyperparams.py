"""Training hyperparameters as YAML: agents/rl/hyperparams.yaml (per env id and algorithm), merged
with a user's YAML file. `agents.rl.config` parses the merged mapping into typed settings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from agents.rl.config import SECTIONS, ConfigError

HYPERPARAMS_FILE = Path(__file__).with_name("hyperparams.yaml")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """base with override's keys, merged recursively into nested dicts."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping, or a one-line ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not text (a YAML mapping is expected)") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML{line}: {getattr(err, 'problem', err)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got a {type(data).__name__}")
    return data


def _algo_section(data: dict[str, Any], key: str, algo: str, source: str) -> dict[str, Any]:
    section = data.get(key, {}) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{key} must be a mapping of algorithms, got {section!r} (in {source})")
    params = section.get(algo, {}) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{key}.{algo} must be a mapping of sections, got {params!r} (in {source})")
    return params


def merged_hyperparams(env_id: str, algo: str, config: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """(hyperparameters for training `algo` on `env_id` as one mapping, the file they came from).

    A user config may be laid out like hyperparams.yaml (env ids / default, then algorithms) or
    hold the sections directly (timesteps, env, algo, policy, ...).
    """
    data = read_yaml_mapping(HYPERPARAMS_FILE)
    source = str(HYPERPARAMS_FILE)
    params = deep_merge(_algo_section(data, "default", algo, source), _algo_section(data, env_id, algo, source))
    if config is None:
        return params, source
    source = str(config)
    user = read_yaml_mapping(config)
    if any(k in user for k in SECTIONS):
        return deep_merge(params, user), source
    foreign = [k for k in user if k != "default" and "-v" not in str(k)]
    if foreign:
        raise ConfigError(
            f"unknown hyperparameter section {foreign[0]!r} in {source}; allowed: {', '.join(SECTIONS)}, "
            "or 'default' / env ids holding algorithms"
        )
    params = deep_merge(params, _algo_section(user, "default", algo, source))
    return deep_merge(params, _algo_section(user, env_id, algo, source)), source


def load_hyperparams(env_id: str, algo: str, config: str | Path | None = None) -> dict[str, Any]:
    """The merged hyperparameter mapping (see `merged_hyperparams`), checked by parsing it."""
    from agents.rl.config import TrainingConfig

    params, source = merged_hyperparams(env_id, algo, config)
    TrainingConfig.parse(params, source)
    return params
