"""Saved learned optimizers: one folder, its metadata and its weights, loadable with nothing else.

A saved learned optimizer is a directory holding ``l2o_meta.json`` — at least ``kind`` (which
loader reads it), ``env_id`` and ``observation`` (the `ObservationSpec`'s `to_meta`, with its own
``layout_version``) — beside the weights its loader reads. `load_rule(path)` checks the metadata
and hands the folder to the loader of its kind. Loaders are string entry points, so reading
metadata imports no learning library.

What a saved optimizer needs to load is its layout version (checked here) and its kind's own
weight format (checked by its loader), not the library version: ``library_version`` is recorded
for the record only. Metadata written by l2o_gym 0.4 (the layout as flat keys ``observation``
"dict"/"coordinatewise", ``history``, ``action_scale``, ...) is read by
`ObservationSpec.from_saved_meta`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import l2o_gym
from l2o_gym.atomic_io import atomic_write, atomic_write_json
from l2o_gym.family_loader import load_object
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.update_rule import UpdateRule

META_FILE = "l2o_meta.json"
REQUIRED_KEYS = ("kind", "env_id", "observation")

# kind -> "module:function" taking (folder: Path, meta: dict, device) and returning an UpdateRule
LOADERS: dict[str, str] = {
    "sb3": "agents.runtime.learned_optimizer:load",
    "l2l": "agents.meta.l2l_lstm:load",
    "meta_lstm": "agents.meta.meta_lstm:load",
    "meta_sgd": "agents.meta.meta_sgd:load",
    "step_schedule": "agents.meta.step_schedule:load",
    "gps": "agents.gps.policy:load",
    "window_blend": "agents.meta.window_blend_rule:load",
}


def register_loader(kind: str, entry_point: str) -> None:
    LOADERS[kind] = entry_point


def write_meta(folder: str | Path, meta: dict[str, Any]) -> Path:
    """Write `meta` (plus the library version) as the folder's metadata, atomically."""
    meta = {"library_version": l2o_gym.__version__, **meta}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"metadata lacks {missing}; required: {list(REQUIRED_KEYS)}")
    check_observation(meta, META_FILE)
    return atomic_write_json(Path(folder) / META_FILE, meta)


def check_observation(meta: dict[str, Any], where: str | Path) -> None:
    """A mapping under ``observation`` must be a spec this version reads (its layout version
    included); a ValueError names `where`. The flat form is left to the loader of its kind."""
    if isinstance(meta["observation"], dict):
        try:
            ObservationSpec.from_meta(meta["observation"])
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


def save_weights(module: torch.nn.Module, path: str | Path) -> Path:
    """The module's state_dict (on the CPU) to `path`, atomically."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_weights(module: torch.nn.Module, path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Read weights saved by `save_weights` into `module` (no unpickling), or a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path.parent)!r} holds no {path.name}: it is not a complete saved optimizer")
    try:
        module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except Exception as err:
        raise ValueError(f"{path} is corrupt or does not match its metadata: {err}") from None
    return module.to(device)


def save_rule(folder: str | Path, module: torch.nn.Module, weights_file: str, meta: dict[str, Any]) -> Path:
    """A saved learned optimizer: its weights first, then its metadata (the completion marker)."""
    folder = Path(folder)
    save_weights(module, folder / weights_file)
    write_meta(folder, meta)
    return folder


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a saved learned optimizer, or a clear error if `path` is not one."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"no saved learned optimizer at {str(folder)!r}: the path does not exist")
    meta_path = folder / META_FILE
    if not folder.is_dir() or not meta_path.is_file():
        raise ValueError(f"{str(folder)!r} is not a saved l2o_gym optimizer: expected a folder holding {META_FILE}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{meta_path} is corrupt (not JSON text): {err}") from None
    if not isinstance(meta, dict) or any(k not in meta for k in REQUIRED_KEYS):
        raise ValueError(f"{meta_path} is not l2o_gym metadata: it must hold {list(REQUIRED_KEYS)}")
    check_observation(meta, meta_path)
    return meta


def load_rule(path: str | Path, device: str = "cpu") -> UpdateRule:
    """Load any saved learned optimizer as an UpdateRule."""
    meta = read_meta(path)
    kind = meta["kind"]
    if kind not in LOADERS:
        raise ValueError(f"unknown learned-optimizer kind {kind!r} in {path}; known: {sorted(LOADERS)}")
    return load_object(LOADERS[kind])(Path(path), meta, device)
