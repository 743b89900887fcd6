"""Rewards: what an optimizer is paid per step.

* ``"cost"`` (Li & Malik): r_t = -f(x_t) / |f(x_0)|, so the return is minus their normalised
  summed cost.
* ``"log_suboptimality"``: r_t = log(s_{t-1} + eps) - log(s_t + eps) with
  s_t = max(f(x_t) - f*, 0) / |f(x_0) - f*|, the per-step decrease of the log relative
  suboptimality (telescoping: the return is log(s_0 + eps) - log(s_T + eps)). Needs each
  instance's optimum f* (the policy never sees it).

The objective paid (``objective``): "train" pays the reward on the training objective f, the
loss the optimizer sees and differentiates; "query" pays it on the problem's held-out query loss
f_q (`Problem.query_loss`, for families with ``has_query``), computed once per step without a
gradient, while the observation, the state and divergence stay those of f. f_q's optimum is
unknown, so the query objective takes the reward form for an unknown optimum: "cost" with f_q,
r_t = -f_q(x_t) / |f_q(x_0)| ("auto" chooses it; "log_suboptimality" is refused). A non-finite
f_q (f itself finite) is paid as f_q(x_0) + 1e4 (|f_q(x_0)| + 1), the explosion limit of the state.

Measured against a reference (`ReferenceReward`, built by the caller with the reference rule and
handed to the env as ``reward=``): a reference optimizer runs beside the env's instances, one step
per env step, from the same x_0, so the variance between instances cancels:

* ``"gap"``: r_t = (f_ref(x_t) - f(x_t)) / |f(x_0) - f*|; the return is the reference's cost minus
  the policy's (Li & Malik's, over the episode) in units of the initial suboptimality.
* ``"log_ratio"``: r_t = log(s_ref,t + eps) - log(s_t + eps), s as above.
* ``"cost"``: r_t = f_ref(x_t) - f(x_t), not scaled: the return is the reference's cost minus the
  policy's itself, so the mean return over instances is the difference of their mean costs.

The reference must compute its step from the state alone (no buffers of its own, e.g. the
window rules): its rows restart with the env's episodes.

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
from l2o_gym.update_rule import UpdateRule

OBJECTIVES: tuple[str, ...] = ("train", "query")
QUERY_EXPLODE_RATIO = 1e4


def check_objective(objective: str, has_query: bool, name: str = "objective") -> str:
    """`objective` if it is allowed for a family with (or without) a query set; else a one-line
    ValueError naming the argument `name`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"{name} must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "query" and not has_query:
        raise ValueError(f"{name} 'query' needs a family with a held-out query set (has_query); this one has none")
    return objective


class Reward(ABC):
    """Per-step reward of B instances."""

    name: ClassVar[str]
    needs_optimum: ClassVar[bool] = False

    def start(self, state: OptimizationState, mask: Tensor | None = None) -> None:
        """Episodes begin at `state` in the rows where mask [B] is true (None: every row)."""

    def __call__(self, f_prev: Tensor, state: OptimizationState) -> Tensor:
        """Reward [B] for moving from objective f_prev [B] to state.f [B]."""
        f_star = state.problem.optimum() if self.needs_optimum else None
        return self.pay(f_prev, state.f, state.f0, f_star)

    @abstractmethod
    def pay(self, f_prev: Tensor, f: Tensor, f0: Tensor, f_star: Tensor | None) -> Tensor:
        """Reward [B] for moving from f_prev [B] to f [B] in an episode that began at f0 [B]."""


class CostReward(Reward):
    name = "cost"

    def pay(self, f_prev: Tensor, f: Tensor, f0: Tensor, f_star: Tensor | None) -> Tensor:
        return -f / (f0.abs() + 1e-12)


class LogSuboptimalityReward(Reward):
    name = "log_suboptimality"
    needs_optimum = True

    def __init__(self, eps: float = 1e-6) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.eps = eps

    def log_gap(self, f: Tensor, state: OptimizationState) -> Tensor:
        """log(relative suboptimality + eps) [B] of f [B] in the episodes of `state`."""
        return self.log_gap_of(f, state.f0, state.problem.optimum())

    def log_gap_of(self, f: Tensor, f0: Tensor, f_star: Tensor) -> Tensor:
        """log(relative suboptimality + eps) [B] of f [B], episodes begun at f0 [B], optimum f_star [B]."""
        scale = (f0 - f_star).abs() + 1e-12
        return torch.log((f - f_star).clamp_min(0.0) / scale + self.eps)

    def pay(self, f_prev: Tensor, f: Tensor, f0: Tensor, f_star: Tensor | None) -> Tensor:
        return self.log_gap_of(f_prev, f0, f_star) - self.log_gap_of(f, f0, f_star)


class QueryReward(Reward):
    """`paid` (a reward for an unknown optimum) paid on the query loss f_q instead of f.

    Holds each row's f_q(x_0) and f_q(x_{t-1}) (`query_f0`, `query_f`, [B]), set by `start`.
    """

    def __init__(self, paid: Reward) -> None:
        if paid.needs_optimum:
            raise ValueError(
                f"reward {paid.name!r} needs the optimum of the query loss, which is unknown; use 'cost' or 'auto'"
            )
        self.paid = paid
        self.name = paid.name
        self.query_f0: Tensor | None = None
        self.query_f: Tensor | None = None

    @torch.no_grad()
    def query_loss(self, state: OptimizationState, mask: Tensor | None = None) -> Tensor:
        """f_q [B] at state.x (or [n] at the rows where mask is true)."""
        if mask is None:
            return state.problem.query_loss(state.x)
        rows = mask.nonzero().squeeze(1)
        return state.problem.select_rows(rows).query_loss(state.x[rows])

    def start(self, state: OptimizationState, mask: Tensor | None = None) -> None:
        f_q = self.query_loss(state, mask)
        if mask is None or self.query_f0 is None:
            self.query_f0, self.query_f = f_q.clone(), f_q.clone()
        else:
            self.query_f0[mask], self.query_f[mask] = f_q, f_q

    def __call__(self, f_prev: Tensor, state: OptimizationState) -> Tensor:
        if self.query_f0 is None or self.query_f is None:
            raise RuntimeError("call start(state) before paying a query reward")
        limit = self.query_f0 + QUERY_EXPLODE_RATIO * (self.query_f0.abs() + 1.0)
        f_q = self.query_loss(state)
        f_q = torch.where(torch.isfinite(f_q), f_q, limit)
        reward = self.paid.pay(self.query_f, f_q, self.query_f0, None)
        self.query_f = f_q
        return reward

    def pay(self, f_prev: Tensor, f: Tensor, f0: Tensor, f_star: Tensor | None) -> Tensor:
        return self.paid.pay(f_prev, f, f0, f_star)


class ReferenceReward(Reward):
    """The reward of a step measured against `reference`, run on the same instances in lockstep
    (module docstring); `form` is "gap", "log_ratio" or "cost". Holds the reference's own state [B]."""

    name = "reference"
    needs_optimum = True
    FORMS: ClassVar[tuple[str, ...]] = ("gap", "log_ratio", "cost")

    def __init__(self, reference: UpdateRule, form: str = "gap", eps: float = 1e-6) -> None:
        if not isinstance(reference, UpdateRule):
            raise ValueError(f"reference must be an UpdateRule, got {type(reference).__name__}")
        if form not in self.FORMS:
            raise ValueError(f"reference reward form must be one of {self.FORMS}, got {form!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.reference, self.form, self.eps = reference, form, eps
        self.reference_state: OptimizationState | None = None

    @torch.no_grad()
    def start(self, state: OptimizationState, mask: Tensor | None = None) -> None:
        rows = torch.arange(state.batch_size, device=state.x.device) if mask is None else mask.nonzero().squeeze(1)
        fresh = OptimizationState.start(
            state.problem.select_rows(rows), x0=state.x[rows], history=state.history, explode_ratio=state.explode_ratio
        )
        if mask is None or self.reference_state is None:
            self.reference_state = fresh
        else:
            self.reference_state.replace_rows(mask, fresh)
        self.reference.reset(self.reference_state)

    @torch.no_grad()
    def __call__(self, f_prev: Tensor, state: OptimizationState) -> Tensor:
        if self.reference_state is None:
            raise RuntimeError("call start(state) before paying a reference reward")
        reference = self.reference_state
        reference.advance(self.reference.step(reference))  # a diverged reference row keeps its last value
        return self.pay(reference.f, state.f, state.f0, state.problem.optimum())

    def pay(self, f_prev: Tensor, f: Tensor, f0: Tensor, f_star: Tensor | None) -> Tensor:
        """Reward [B] of reaching f [B] where the reference reached `f_prev` [B] (its f at this step)."""
        if self.form == "cost":
            return f_prev - f
        scale = (f0 - f_star).abs() + 1e-12
        if self.form == "gap":
            return (f_prev - f) / scale
        gap, reference_gap = (f - f_star).clamp_min(0.0) / scale, (f_prev - f_star).clamp_min(0.0) / scale
        return torch.log(reference_gap + self.eps) - torch.log(gap + self.eps)


REWARDS: dict[str, type[Reward]] = {r.name: r for r in (CostReward, LogSuboptimalityReward)}


def make_reward(name: str | Reward, has_optimum: bool, *, objective: str = "train", has_query: bool = False) -> Reward:
    """The reward by name, paid on `objective` ("train" or "query", see the module docstring);
    "auto" is log_suboptimality where f* is known (the training objective only), else cost. A
    `Reward` object (e.g. a `ReferenceReward`) is used as it is, on the training objective."""
    check_objective(objective, has_query)
    if isinstance(name, Reward):
        if objective != "train" or (name.needs_optimum and not has_optimum):
            raise ValueError(f"reward {name.name!r} needs the training objective and each instance's optimum")
        return name
    if objective == "query":
        has_optimum = False  # the query loss's optimum is unknown
    if name == "auto":
        name = "log_suboptimality" if has_optimum else "cost"
    if name not in REWARDS:
        raise ValueError(f"reward must be one of {('auto', *REWARDS)}, got {name!r}")
    if objective == "query":
        return QueryReward(REWARDS[name]())
    if REWARDS[name].needs_optimum and not has_optimum:
        raise ValueError(f"reward {name!r} needs each instance's optimum, which this family cannot give")
    return REWARDS[name]()
