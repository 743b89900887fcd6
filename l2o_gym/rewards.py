"""Rewards: what an optimizer is paid per step.

* ``"cost"`` (Li & Malik): r_t = -f(x_t) / |f(x_0)|, so the return is minus their normalised
  summed cost.
* ``"log_suboptimality"``: r_t = log(s_{t-1} + eps) - log(s_t + eps) with
  s_t = max(f(x_t) - f*, 0) / |f(x_0) - f*|, the per-step decrease of the log relative
  suboptimality (telescoping: the return is log(s_0 + eps) - log(s_T + eps)). Needs each
  instance's optimum f* (the policy never sees it).

A diverging step ends the episode and is paid ``-divergence_penalty * (horizon - t)``, t the
steps taken before it: with the default penalty 2 that is more than standing still for the rest
of the episode costs under either reward, and it is bounded by ``divergence_penalty * horizon``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from l2o_gym.state import OptimizationState


class Reward(ABC):
    """Per-step reward of B instances."""

    name: ClassVar[str]
    needs_optimum: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, f_prev: Tensor, state: OptimizationState) -> Tensor:
        """Reward [B] for moving from objective f_prev [B] to state.f [B]."""


class CostReward(Reward):
    name = "cost"

    def __call__(self, f_prev: Tensor, state: OptimizationState) -> Tensor:
        return -state.f / (state.f0.abs() + 1e-12)


class LogSuboptimalityReward(Reward):
    name = "log_suboptimality"
    needs_optimum = True

    def __init__(self, eps: float = 1e-6) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.eps = eps

    def log_gap(self, f: Tensor, state: OptimizationState) -> Tensor:
        """log(relative suboptimality + eps) [B]."""
        f_star = state.problem.optimum()
        scale = (state.f0 - f_star).abs() + 1e-12
        return torch.log((f - f_star).clamp_min(0.0) / scale + self.eps)

    def __call__(self, f_prev: Tensor, state: OptimizationState) -> Tensor:
        return self.log_gap(f_prev, state) - self.log_gap(state.f, state)


REWARDS: dict[str, type[Reward]] = {r.name: r for r in (CostReward, LogSuboptimalityReward)}


def make_reward(name: str, has_optimum: bool) -> Reward:
    """The reward by name; "auto" is log_suboptimality where f* is known, else cost."""
    if name == "auto":
        name = "log_suboptimality" if has_optimum else "cost"
    if name not in REWARDS:
        raise ValueError(f"reward must be one of {('auto', *REWARDS)}, got {name!r}")
    if REWARDS[name].needs_optimum and not has_optimum:
        raise ValueError(f"reward {name!r} needs each instance's optimum, which this family cannot give")
    return REWARDS[name]()
