"""Update on a random part of the rollout's rows while the rollout collects all of them.

A coordinatewise rollout holds n_steps × B·d rows; PPO's update costs its network passes over
every row in every epoch. `RowSubsampledRolloutBuffer` hands each epoch a fresh random
`update_fraction` of the rows (in minibatches of `batch_size`), so an epoch costs that fraction
of a full one; advantages and returns are computed over the whole rollout first, as always.
Set in the hyperparameters as ``algo: {rollout_buffer_kwargs: {update_fraction: 0.5}}``
(PPO and A2C; `algo_kwargs` adds the buffer class). 1 is SB3's own buffer, row for row.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples

UPDATE_FRACTION = "update_fraction"
_FLATTENED = ("observations", "actions", "values", "log_probs", "advantages", "returns")


def check_update_fraction(value: Any) -> float:
    """`value` as a float in (0, 1], or a one-line ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"algo.rollout_buffer_kwargs.{UPDATE_FRACTION} must be a number in (0, 1], got {value!r}")
    return float(value)


class RowSubsampledRolloutBuffer(RolloutBuffer):
    """SB3's rollout buffer whose `get` yields, per call (one epoch), minibatches drawn from a fresh
    random `update_fraction` of the rows (at least one row)."""

    def __init__(self, *args: Any, update_fraction: float = 1.0, **kwargs: Any) -> None:
        self.update_fraction = check_update_fraction(update_fraction)
        super().__init__(*args, **kwargs)

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        if self.update_fraction == 1.0:
            yield from super().get(batch_size)
            return
        assert self.full, "the rollout is not complete"
        if not self.generator_ready:
            for name in _FLATTENED:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        rows = self.buffer_size * self.n_envs
        kept = np.random.permutation(rows)[: max(1, round(self.update_fraction * rows))]
        batch_size = batch_size or kept.size
        for start in range(0, kept.size, batch_size):
            yield self._get_samples(kept[start : start + batch_size])


def algo_kwargs(algo: Mapping[str, Any]) -> dict[str, Any]:
    """The algorithm's keywords with `RowSubsampledRolloutBuffer` as the rollout buffer where the
    buffer kwargs set an `update_fraction` (checked: a one-line ValueError)."""
    kwargs = dict(algo)
    buffer = kwargs.get("rollout_buffer_kwargs")
    if isinstance(buffer, Mapping) and UPDATE_FRACTION in buffer:
        check_update_fraction(buffer[UPDATE_FRACTION])
        kwargs["rollout_buffer_class"] = RowSubsampledRolloutBuffer
    return kwargs


__all__ = ["RowSubsampledRolloutBuffer", "UPDATE_FRACTION", "algo_kwargs", "check_update_fraction"]
