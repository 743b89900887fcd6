"""Hyperparameters of the hand-designed optimizers: declared defaults, validation, log grids.

Each optimizer class lists its tunable hyperparameters in `HYPERPARAMETERS` (name -> default) and
its search space in `default_grid()`. A learning rate grid is log-spaced by factors of √10.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from l2o_gym.update_rule import UpdateRule

LEARNING_RATES: tuple[float, ...] = tuple(float(f"{10 ** (k / 2):.6g}") for k in range(-8, 3))  # 1e-4 .. 10
MOMENTA: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
INITIAL_STEPS: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

# name -> (check, description of what is allowed)
CHECKS: dict[str, tuple[Any, str]] = {
    "lr": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "alpha": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "eps": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "max_step": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "gd_lr": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "lr_decay_steps": (lambda v: 0 < v < math.inf, "a finite number of steps > 0"),
    "qn_lr": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "qn_max_step": (lambda v: 0 < v < math.inf, "a finite number > 0"),
}


class HandDesignedRule(UpdateRule):
    """An UpdateRule with named float hyperparameters (validated) and a default tuning grid."""

    HYPERPARAMETERS: ClassVar[dict[str, float]] = {}

    def __init__(self, **hparams: float) -> None:
        unknown = sorted(set(hparams) - set(self.HYPERPARAMETERS))
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {unknown} for {self.name!r}; allowed: {sorted(self.HYPERPARAMETERS)}"
            )
        values = {**self.HYPERPARAMETERS, **hparams}
        for key, value in values.items():
            check, allowed = CHECKS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not check(value):
                raise ValueError(f"hyperparameter {key} of {self.name!r} must be {allowed}, got {value!r}")
        self.hparams: dict[str, float] = {k: float(v) for k, v in values.items()}

    @classmethod
    def default_grid(cls) -> dict[str, list[float]]:
        """The log grid `agents.hand_designed.tuning.tune` searches by default."""
        return {"lr": list(LEARNING_RATES)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"
