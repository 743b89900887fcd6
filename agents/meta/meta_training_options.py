"""The settings of a meta-training run (L2L or meta-LSTM), with their defaults in one place.

`MetaTrainingOptions(**settings)` checks every value; `from_mapping(mapping, source)` reads a
mapping (e.g. a YAML file) and refuses an unknown key in one line naming the key, the allowed
keys and the source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from l2o_gym.problem import check_positive_int

ALGOS = ("l2l", "meta_lstm")
META_OBJECTIVES = ("train", "query")  # the meta-loss: the training objective or the held-out query loss
DEFAULT_GRAD_CLIP = {"l2l": 1.0, "meta_lstm": 0.25}  # Ravi & Larochelle clip at 0.25


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class MetaTrainingOptions:
    """How to meta-train.

    horizon: inner steps per meta-iteration; truncation: steps per backpropagated piece;
    batch_size: training instances per meta-iteration; lr: the meta-optimizer's (Adam) step size;
    grad_clip: gradient-norm clip (None: 1.0 for l2l, 0.25 for meta_lstm, as Ravi & Larochelle);
    normalize: divide each instance's objective by |f0| in the meta-loss; second_order: keep the
    second derivatives; learn_init: meta_lstm's learned θ_0 (None asks the family);
    validation_instances / validation_every: the fixed validation batch and how many
    meta-iterations between checks; checkpoint_every: timesteps between checkpoints;
    env_kwargs: the family's keywords plus the episode options ``history`` and ``explode_ratio``;
    meta_objective: "train", or "query" (the meta-loss and the validation figure are the held-out
    query loss; families with a query set only).
    """

    horizon: int = 100
    truncation: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float | None = None
    normalize: bool = True
    second_order: bool = False
    learn_init: bool | None = None
    validation_instances: int = 64
    validation_every: int = 10
    checkpoint_every: int = 100_000
    env_kwargs: dict[str, Any] | None = None
    meta_objective: str = "train"

    def __post_init__(self) -> None:
        for name in ("horizon", "truncation", "batch_size", "validation_instances", "validation_every"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("checkpoint_every", self.checkpoint_every)
        if not (_is_number(self.lr) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        clip = self.grad_clip
        if clip is not None and not (_is_number(clip) and clip > 0):
            raise ValueError(f"grad_clip must be a number > 0 (or None for the algorithm's default), got {clip!r}")
        for name in ("normalize", "second_order"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.learn_init is not None and not isinstance(self.learn_init, bool):
            raise ValueError(f"learn_init must be true, false or null, got {self.learn_init!r}")
        if self.meta_objective not in META_OBJECTIVES:
            raise ValueError(f"meta_objective must be one of {', '.join(META_OBJECTIVES)}, got {self.meta_objective!r}")
        if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a mapping, got {self.env_kwargs!r}")

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any], source: str = "the settings") -> MetaTrainingOptions:
        """Options from `mapping` (defaults for the keys it lacks); an unknown key is a one-line
        ValueError naming it, the allowed keys and `source`."""
        return cls().with_settings(mapping, source)

    def with_settings(self, settings: dict[str, Any], source: str = "the settings") -> MetaTrainingOptions:
        """These options with the fields named in `settings` replaced (checked as by the constructor)."""
        allowed = [f.name for f in fields(self)]
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise ValueError(f"{source}: unknown meta-training setting(s) {unknown}; allowed: {', '.join(allowed)}")
        try:
            return replace(self, **settings)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    def clip_for(self, algo: str) -> float:
        """The gradient-norm clip for `algo`: grad_clip, or the algorithm's default."""
        return DEFAULT_GRAD_CLIP[algo] if self.grad_clip is None else float(self.grad_clip)
