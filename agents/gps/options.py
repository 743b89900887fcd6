"""Options of guided policy search, checked once (a bad value is a one-line ValueError).

Defaults follow Li & Malik (../shared REFERENCES: H = 25, T = 40, 20 samples per instance,
10 iterations of 4 inner iterations, KL step 0.2); see docs/gps.md for what was measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agents.gps.best_selection import SELECTIONS
from agents.gps.cost_shaping import SHAPINGS
from agents.gps.policy import POLICY_FORMS

INITS = ("family", "per_instance")
SAMPLINGS = ("controllers", "policy")


@dataclass(frozen=True)
class GPSOptions:
    """instances: training instances (conditions are their coordinates); samples: trajectories per
        instance and iteration (old ones discarded); horizon: T; history: H of the policy's rows;
        iterations × inner_iterations: sampling rounds × (C-step, S-step) pairs per round; kl_step: ε per
        time step; init_std: exploration std as a fraction of the momentum step; mixture_components and
        prior_strength: the dynamics prior; policy_*: the S-step's Adam; action_scale: the policy's step
        bound (None: the family's default, raised to fit the controllers' steps); validation_instances:
        the held-out instances that choose the best policy; validation_horizon: the steps over which they
        score it (None: T); init: "family" (one tuned momentum for all
        training instances, which the policy represents exactly) or "per_instance" (Li & Malik's
        per-instance grid search); sampling: "controllers" (off-policy, Li & Malik) or "policy" (the
        global policy's steps with the controllers' noise, mirror-descent GPS's on-policy variant);
        adapt_kl_step: adapt each instance's KL step from predicted versus actual improvement; gain_bound:
        the controllers' gain on the gradient at most this multiple of the initial learning rate (None: no
        bound; see agents.gps.step_adjustment); cost_shaping: "none" (the C-step minimises Σ_t f, Li &
        Malik's cost) or "log_gap" (Σ_t log(f − f*), agents.gps.cost_shaping); policy_form: "additive" (the
    network adds a step to the linear term a·g + b·Δx_prev) or "gains" (it also sets that term's gains
    from the row; agents.gps.policy); time_features: the policy's rows end with the step count's
    tanh(t / τ) features; select_best: "cost" (best/ is the iteration with the lowest validation cost)
    or "wins_vs_adam" (the most paired wins against tuned Adam at T and at validation_horizon, on
    selection_instances validation instances of their own seed stream; agents.gps.best_selection);
    fit_beyond_horizon: None, or a step count > T to which the S-step also fits the policy's own
    rollouts, labelled by the last controller step (agents.gps.beyond_horizon); seed."""

    instances: int = 90
    samples: int = 20
    horizon: int = 40
    history: int = 25
    iterations: int = 10
    inner_iterations: int = 4
    kl_step: float = 0.2
    init_std: float = 0.3
    mixture_components: int = 10
    prior_strength: float = 1.0
    policy_steps: int = 300
    policy_lr: float = 1e-3
    policy_batch: int = 1024
    action_scale: float | None = None
    validation_instances: int = 100
    validation_horizon: int | None = None
    init: str = "family"
    sampling: str = "controllers"
    adapt_kl_step: bool = True
    gain_bound: float | None = 10.0
    cost_shaping: str = "none"
    policy_form: str = "gains"
    time_features: bool = False
    select_best: str = "cost"
    selection_instances: int = 256
    fit_beyond_horizon: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        positive_ints = (
            "instances",
            "samples",
            "horizon",
            "history",
            "iterations",
            "inner_iterations",
            "mixture_components",
            "policy_steps",
            "policy_batch",
            "validation_instances",
            "selection_instances",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.validation_horizon is not None and (
            isinstance(self.validation_horizon, bool)
            or not isinstance(self.validation_horizon, int)
            or self.validation_horizon < 1
        ):
            raise ValueError(f"validation_horizon must be None or a positive integer, got {self.validation_horizon!r}")
        if self.fit_beyond_horizon is not None and (
            isinstance(self.fit_beyond_horizon, bool)
            or not isinstance(self.fit_beyond_horizon, int)
            or self.fit_beyond_horizon <= self.horizon
        ):
            raise ValueError(
                f"fit_beyond_horizon must be None or an integer > horizon ({self.horizon}), "
                f"got {self.fit_beyond_horizon!r}"
            )
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2 (the dynamics are fitted across samples), got {self.samples}")
        for name in ("kl_step", "init_std", "policy_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(self.prior_strength, (int, float)) or not 0 <= self.prior_strength < math.inf:
            raise ValueError(f"prior_strength must be a finite number >= 0, got {self.prior_strength!r}")
        if self.action_scale is not None and not (
            isinstance(self.action_scale, (int, float)) and 0 < self.action_scale < math.inf
        ):
            raise ValueError(f"action_scale must be None or a finite number > 0, got {self.action_scale!r}")
        for name in ("adapt_kl_step", "time_features"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.policy_form not in POLICY_FORMS:
            raise ValueError(f"policy_form must be one of {POLICY_FORMS}, got {self.policy_form!r}")
        if self.gain_bound is not None and (
            isinstance(self.gain_bound, bool)
            or not isinstance(self.gain_bound, (int, float))
            or not 0 < self.gain_bound < math.inf
        ):
            raise ValueError(f"gain_bound must be None or a finite number > 0, got {self.gain_bound!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.cost_shaping not in SHAPINGS:
            raise ValueError(f"cost_shaping must be one of {SHAPINGS}, got {self.cost_shaping!r}")
        if self.select_best not in SELECTIONS:
            raise ValueError(f"select_best must be one of {SELECTIONS}, got {self.select_best!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GPSOptions:
        """Options from a mapping; an unknown key is a ValueError listing the allowed ones."""
        if not isinstance(values, dict):
            raise ValueError(f"GPS options must be a mapping, got {type(values).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"unknown GPS option(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**values)


def read_yaml_mapping(config: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file: {}); a missing file, bad YAML or a non-mapping is a
    one-line ValueError."""
    import yaml

    path = Path(config)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{str(path)!r} is not YAML: {' '.join(str(err).split())}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{str(path)!r} must hold a mapping of GPS option names to values")
    return values


def options_from_config(config: str | Path | None, seed: int) -> GPSOptions:
    """GPSOptions from a YAML mapping of option names (None: the defaults) with `seed`; a bad file,
    key or value is a one-line ValueError."""
    values = {} if config is None else read_yaml_mapping(config)
    return GPSOptions.from_dict({**values, "seed": seed})
