"""A learned step-size schedule per parameter tensor on top of Adam's direction (or the gradient).

The rule is Δx_t = -exp(s[t, k(i)]) · u_t,i for coordinate i of x, where k(i) is the parameter
tensor that coordinate belongs to (the family's parameter layout, e.g. a MANN's W_in, W_hh, ...),
s [T, K] the learned log step sizes (one per step t < T and tensor k; steps beyond T reuse row
T - 1), and u_t the direction: Adam's bias-corrected m̂_t / (sqrt(v̂_t) + ε) (β1 = 0.9,
β2 = 0.999, ε = 1e-8, exactly torch.optim.Adam's step) or the plain gradient ("sgd").
With ``learn_betas`` the rule also learns Adam's β1 and β2 per tensor (logits b [2, K], started
at logit 0.9 and logit 0.999): a learned Adam variant.
Every entry of s starts at log(initial_lr), so the untrained rule *is* Adam (or SGD) with that
step size; meta-training (`agents.meta.step_schedule_training`) moves it. Like Meta-SGD (Li et
al., 2017) it learns step sizes rather than a network, so it needs few meta-iterations; unlike
Meta-SGD they are per tensor and per step (a learned learning-rate schedule per layer), which
keeps the parameter count at T·K whatever d is. It is tied to the family's layout (K, d).

Saved as a folder in `agents.runtime.saved_rules`' format: ``l2o_meta.json`` (kind
"step_schedule", the architecture) and ``weights.pt`` (s and b, loaded with weights_only=True).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from agents.meta.meta_sgd import StepSizeRule
from l2o_gym.problem import TaskFamily, check_positive_int
from l2o_gym.state import OptimizationState

DIRECTIONS = ("adam", "sgd")
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
TINY = 1e-30


def parameter_segments(family: TaskFamily) -> list[int]:
    """Sizes of the family's parameter tensors in x's layout (sum = d): `family.model.shapes` where
    the family has one (MANN, hypernetwork), else one segment of d."""
    shapes = getattr(getattr(family, "model", None), "shapes", None)
    if not shapes:
        return [family.dim]
    return [math.prod(shape) for shape in shapes.values()]


class PerTensorStepSchedule(nn.Module):
    """log step sizes s [horizon, K] for the K tensors of sizes `segments`, all at log(initial_lr);
    with `learn_betas` also Adam's β1, β2 per tensor as logits b [2, K]."""

    def __init__(
        self,
        segments: list[int],
        horizon: int,
        initial_lr: float,
        direction: str = "adam",
        learn_betas: bool = False,
    ) -> None:
        super().__init__()
        if not segments or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in segments):
            raise ValueError(f"segments must be a non-empty list of positive ints, got {segments!r}")
        self.segments = [int(n) for n in segments]
        self.horizon = check_positive_int("horizon", horizon)
        if not initial_lr > 0:
            raise ValueError(f"initial_lr must be > 0, got {initial_lr!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if learn_betas and direction != "adam":
            raise ValueError(f"learn_betas needs direction 'adam', got {direction!r}")
        self.initial_lr, self.direction, self.learn_betas = float(initial_lr), direction, bool(learn_betas)
        self.log_lr = nn.Parameter(torch.full((horizon, len(segments)), math.log(initial_lr)))
        if self.learn_betas:
            logits = torch.tensor([math.log(BETA1 / (1 - BETA1)), math.log(BETA2 / (1 - BETA2))])
            self.beta_logits = nn.Parameter(logits.unsqueeze(1).repeat(1, len(segments)))
        tensor_of = torch.repeat_interleave(torch.arange(len(segments)), torch.tensor(self.segments))
        self.register_buffer("tensor_of", tensor_of, persistent=False)

    @property
    def dim(self) -> int:
        return sum(self.segments)

    def step_sizes(self, t: int) -> Tensor:
        """Per-coordinate step sizes [d] at step t (0-based)."""
        return self.log_lr[min(t, self.horizon - 1)].exp()[self.tensor_of]

    def betas(self) -> tuple[Tensor | float, Tensor | float]:
        """Adam's (β1, β2): per-coordinate [d] when learned, else the constants 0.9, 0.999."""
        if not self.learn_betas:
            return BETA1, BETA2
        per_tensor = torch.sigmoid(self.beta_logits)[:, self.tensor_of]
        return per_tensor[0], per_tensor[1]

    def architecture(self) -> dict[str, Any]:
        return {
            "segments": self.segments,
            "horizon": self.horizon,
            "initial_lr": self.initial_lr,
            "direction": self.direction,
            "learn_betas": self.learn_betas,
        }


class StepScheduleOptimizer(StepSizeRule):
    """Δx [B, d] = -exp(s[t, k]) ⊙ u_t [B, d]; Adam's moments are its state (`reset` clears them)."""

    kind = "step_schedule"
    name = "step_schedule"
    network = PerTensorStepSchedule

    def __init__(self, net: PerTensorStepSchedule) -> None:
        super().__init__(net)
        self.t = 0
        self.first: Tensor | None = None
        self.second: Tensor | None = None

    def reset(self, state: OptimizationState) -> None:
        self.t = 0
        self.first = torch.zeros_like(state.x.detach())
        self.second = torch.zeros_like(state.x.detach())

    def direction(self, grad: Tensor) -> Tensor:
        """u_t [B, d] from the gradient (updating Adam's moments); t counts from 1 inside. With learned
        betas the moments carry the graph back to b (the gradients themselves are constants)."""
        if self.net.direction == "sgd":
            return grad
        if self.first is None or self.first.shape != grad.shape:
            raise RuntimeError("call reset(state) before the first step")
        beta1, beta2 = self.net.betas()
        self.first = beta1 * self.first + (1 - beta1) * grad
        self.second = beta2 * self.second + (1 - beta2) * grad * grad
        t = self.t + 1
        denom = (self.second / (1 - beta2**t)).clamp_min(TINY).sqrt() + EPS  # clamp: no inf derivative at v = 0
        return self.first / (1 - beta1**t) / denom

    def step(self, state: OptimizationState) -> Tensor:
        self.check_dim(state)
        u = self.direction(state.grad.detach())
        step = -(self.net.step_sizes(self.t).to(state.x.dtype) * u)
        self.t += 1
        return step


load = StepScheduleOptimizer.load  # the loader `agents.runtime.saved_rules.load_rule` finds for kind "step_schedule"
