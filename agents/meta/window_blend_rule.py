"""A learned blend of the window quasi-Newton step and Adam's step, with learned step schedules.

The rule keeps tuned window_qn's step (`agents.hand_designed.window_quasi_newton`) and modulates
it with a few learned numbers θ, meta-trained on Li & Malik's cost itself
(`agents.meta.window_blend_es`). At step t (the instance's own step count) and coordinate i:

    q_t   = lr · exp(g(t)) · d_t          where the window has an L-BFGS direction d_t,
            -gd_lr · exp(γ) · ∇f_t        where it has none (the first step, no curvature pair)
    Δx_t  = clip(q_t, ±max_step · exp(c)) - ADAM_SCALE · a(t) · m̂_t / (sqrt(v̂_t) + ε)

with (lr, max_step, gd_lr) the teacher's tuned settings, g and a profiles of `knots` knots each,
evenly spaced over steps 0..horizon-1 and linear in between (beyond: the last knot), c and γ
scalars, and m̂, v̂ Adam's bias-corrected moments (β1 = 0.9, β2 = 0.999), which the rule keeps
itself (its memory reaches back beyond the history window). θ = (g knots [J], a knots [J], c, γ)
[2J + 2]; θ = 0 is the teacher exactly. θ may also be [B, 2J + 2] (one θ per instance: an ES
population run in one batched unroll).

Saved as a folder in `agents.runtime.saved_rules`' format: ``l2o_meta.json`` (kind
"window_blend", the architecture: teacher settings, horizon, knots) and ``weights.pt`` (θ, loaded
with weights_only=True).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from agents.meta.saved_net import SavedNetRule
from l2o_gym.problem import check_positive_int
from l2o_gym.quasi_newton import window_direction
from l2o_gym.state import DEFAULT_HISTORY, OptimizationState
from l2o_gym.update_rule import UpdateRule

ADAM_SCALE = 0.3  # a(t) = 1 adds Adam's step with about tuned Adam's step size (0.316 on the net)
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
TEACHER_KEYS = ("lr", "max_step", "gd_lr")


class WindowBlendParameters(nn.Module):
    """θ [2·knots + 2] (all 0: the teacher) and the architecture it modulates: the teacher's tuned
    window_qn settings `teacher` (lr, max_step, gd_lr), `pairs`, the profiles' `horizon` and `knots`."""

    def __init__(self, teacher: dict[str, float], horizon: int, knots: int = 5, pairs: int = 5) -> None:
        super().__init__()
        missing = [k for k in TEACHER_KEYS if k not in teacher]
        if missing or any(not float(teacher[k]) > 0 for k in TEACHER_KEYS):
            raise ValueError(f"teacher must hold positive {list(TEACHER_KEYS)}, got {teacher!r}")
        if isinstance(knots, bool) or not isinstance(knots, int) or knots < 2:
            raise ValueError(f"knots must be an int >= 2, got {knots!r}")
        self.teacher = {k: float(teacher[k]) for k in TEACHER_KEYS}
        self.horizon, self.knots = check_positive_int("horizon", horizon), knots
        self.pairs = check_positive_int("pairs", pairs)
        self.theta = nn.Parameter(torch.zeros(2 * knots + 2))

    @property
    def size(self) -> int:
        """The number of entries of θ."""
        return 2 * self.knots + 2

    def profile_weights(self, t: Tensor) -> Tensor:
        """Step counts t [B] -> interpolation weights [B, knots] (rows sum to 1)."""
        position = t.clamp(0, self.horizon - 1).double() * (self.knots - 1) / max(self.horizon - 1, 1)
        return torch.clamp(1 - (position.unsqueeze(1) - torch.arange(self.knots)).abs(), min=0).float()

    def schedule(self, theta: Tensor, t: Tensor) -> dict[str, Tensor]:
        """θ [n] or [B, n] and step counts t [B] -> per-instance factors [B, 1]: "qn" (exp g(t)),
        "adam" (ADAM_SCALE · a(t)), "clip" (exp c), "gd" (exp γ)."""
        if theta.shape[-1] != self.size:
            raise ValueError(f"theta must have {self.size} entries in its last dimension, got {tuple(theta.shape)}")
        theta = theta.expand(t.shape[0], -1)
        weights = self.profile_weights(t)
        g = (weights * theta[:, : self.knots]).sum(dim=1, keepdim=True)
        a = (weights * theta[:, self.knots : 2 * self.knots]).sum(dim=1, keepdim=True)
        clip, gd = theta[:, -2:-1].exp(), theta[:, -1:].exp()
        return {"qn": g.exp(), "adam": ADAM_SCALE * a, "clip": clip, "gd": gd}

    def architecture(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "horizon": self.horizon, "knots": self.knots, "pairs": self.pairs}


class WindowBlendOptimizer(SavedNetRule, UpdateRule):
    """Δx [B, d] from θ (the module docstring); Adam's moments are its runtime state. `population`
    [B, n], where given, replaces the net's θ with one θ per instance (ES members)."""

    kind = "window_blend"
    name = "window_blend"
    network = WindowBlendParameters
    saved_observation = "dict"
    history = DEFAULT_HISTORY  # the window its evaluations run with (window_qn's too)

    def __init__(self, net: WindowBlendParameters, population: Tensor | None = None) -> None:
        self.net, self.population = net, population
        self.first: Tensor | None = None
        self.second: Tensor | None = None

    def reset(self, state: OptimizationState) -> None:
        self.first = torch.zeros_like(state.x.detach())
        self.second = torch.zeros_like(state.x.detach())

    def adam_direction(self, state: OptimizationState) -> Tensor:
        """m̂ / (sqrt(v̂) + ε) [B, d] after this step's gradient (t counted per instance from 1)."""
        if self.first is None or self.first.shape != state.x.shape:
            raise RuntimeError("call reset(state) before the first step")
        grad = state.grad.detach()
        self.first = BETA1 * self.first + (1 - BETA1) * grad
        self.second = BETA2 * self.second + (1 - BETA2) * grad * grad
        t = (state.t + 1).to(grad.dtype).unsqueeze(1)
        return self.first / (1 - BETA1**t) / ((self.second / (1 - BETA2**t)).sqrt() + EPS)

    def step(self, state: OptimizationState) -> Tensor:
        if state.history <= self.net.pairs:
            raise ValueError(f"this rule needs a history window > {self.net.pairs}, the state has {state.history}")
        theta = self.net.theta.detach() if self.population is None else self.population
        factors = {k: v.to(state.x.dtype) for k, v in self.net.schedule(theta, state.t).items()}
        teacher = self.net.teacher
        direction = window_direction(state, self.net.pairs)
        has_direction = (direction != 0).any(dim=1, keepdim=True)
        qn = torch.where(
            has_direction,
            teacher["lr"] * factors["qn"] * direction,
            -teacher["gd_lr"] * factors["gd"] * state.grad,
        )
        limit = teacher["max_step"] * factors["clip"]
        qn = torch.maximum(torch.minimum(qn, limit), -limit)
        return qn - factors["adam"] * self.adam_direction(state)


load = WindowBlendOptimizer.load  # the loader `agents.runtime.saved_rules.load_rule` finds for kind "window_blend"
