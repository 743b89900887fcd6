"""GPS options per task family: one YAML with a shared section and per-family overrides, checked once.

    shared:                      # GPSOptions fields for every family
      iterations: 20
      init_std: 0.6
    families:                    # per registered environment id: fields replacing the shared ones
      l2o/LogisticRegression-v0:
        init_std: 0.3

Beside GPSOptions fields a layer may set `restarts: K` (a positive integer, default 1): the benchmark
trains K runs of the family with seeds seed .. seed + K − 1 and keeps one (agents.gps.restarts).

A file with neither section is a flat mapping of GPSOptions fields for every family (the form
`--algo gps --config` reads). Layers, the last wins: the caller's base per family (the benchmark's
training-instance counts), `shared`, the family's own, the seed. A bad section, family id, key or
value is a one-line ValueError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.gps.options import GPSOptions, read_yaml_mapping

SECTIONS = ("shared", "families")
RESTARTS = "restarts"  # not a GPSOptions field: how many training runs the benchmark pools


@dataclass(frozen=True)
class FamilyOptions:
    """shared: GPSOptions fields for every family; families: environment id -> fields that override them."""

    shared: dict[str, Any] = field(default_factory=dict)
    families: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], known_envs: list[str] | None = None) -> FamilyOptions:
        """From a YAML mapping (sectioned or flat); every section and value is checked here (a family id
        outside `known_envs`, when given, is an error)."""
        if not isinstance(values, dict):
            raise ValueError(f"GPS options must be a mapping, got {type(values).__name__}")
        flat = not any(section in values for section in SECTIONS)
        if flat:
            values = {"shared": values}
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown section(s) {unknown} beside {list(SECTIONS)}; allowed: {list(SECTIONS)}")
        shared = values.get("shared") or {}
        families = values.get("families") or {}
        if not isinstance(shared, dict):
            raise ValueError(f"shared must be a mapping of GPS option names to values, got {shared!r}")
        if not isinstance(families, dict):
            raise ValueError(f"families must map environment ids to GPS options, got {families!r}")
        for env_id, overrides in families.items():
            if known_envs is not None and env_id not in known_envs:
                raise ValueError(f"families: {env_id!r} is not a registered l2o environment id")
            if not isinstance(overrides, dict):
                raise ValueError(f"families[{env_id!r}] must be a mapping of GPS option names, got {overrides!r}")
        options = cls(dict(shared), {env_id: dict(o) for env_id, o in families.items()})
        try:
            for env_id in [None, *families]:  # every layer is checked now, not when its family's turn comes
                options.options_for(env_id, seed=0)
                options.restarts_for(env_id)
        except ValueError as err:
            if not flat:
                raise
            raise ValueError(f"{str(err).removeprefix('shared: ')} (or the sections {list(SECTIONS)})") from None
        return options

    def options_for(self, env_id: str | None, seed: int, base: dict[str, Any] | None = None) -> GPSOptions:
        """The typed options of `env_id` (None: the shared ones): base, shared, the family's, seed."""
        values = {**(base or {}), **self._layers(env_id), "seed": seed}
        values.pop(RESTARTS, None)
        try:
            return GPSOptions.from_dict(values)
        except ValueError as err:
            raise ValueError(f"{self._where(env_id)}: {err}") from None

    def restarts_for(self, env_id: str | None) -> int:
        """How many training runs the benchmark pools for `env_id` (1 unless a layer sets `restarts`)."""
        value = self._layers(env_id).get(RESTARTS, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{self._where(env_id)}: {RESTARTS} must be a positive integer, got {value!r}")
        return value

    def _layers(self, env_id: str | None) -> dict[str, Any]:
        return {**self.shared, **self.families.get(env_id, {})}

    def _where(self, env_id: str | None) -> str:
        return "shared" if env_id is None or env_id not in self.families else f"families[{env_id!r}]"


def family_options_from_config(config: str | Path | None, known_envs: list[str] | None = None) -> FamilyOptions:
    """FamilyOptions from a YAML file (None: every family at the defaults); a bad file, section, family
    id, key or value is a one-line ValueError."""
    if config is None:
        return FamilyOptions()
    try:
        return FamilyOptions.from_mapping(read_yaml_mapping(config), known_envs)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if str(config) in message else f"{str(config)!r}: {message}") from None
