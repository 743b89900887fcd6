"""Andrychowicz et al.'s "LogAndSign" gradient preprocessing (their appendix A), p = 10.

Each scalar g becomes two features:

    (log|g| / p, sign(g))   if |g| >= e^-p
    (-1,         e^p · g)   otherwise

so inputs spanning many orders of magnitude land in a range an LSTM can read. Shapes: g [...]
-> features [..., 2]. Differentiable: d/dg = (1 / (p g), 0) on the first branch and (0, e^p) on
the second; it is finite everywhere (at g = 0 too).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_P = 10.0


def log_and_sign(g: Tensor, p: float = DEFAULT_P) -> Tensor:
    """Preprocess g [...] into [..., 2] features (log-magnitude, sign) with threshold e^-p."""
    if not isinstance(g, Tensor) or not g.is_floating_point():
        raise TypeError(f"g must be a floating-point Tensor, got {type(g).__name__}")
    if not (isinstance(p, (int, float)) and p > 0 and math.isfinite(p)):
        raise ValueError(f"p must be a positive finite number, got {p!r}")
    threshold = math.exp(-p)
    magnitude = g.abs()
    large = magnitude >= threshold
    log_part = torch.where(large, torch.log(magnitude.clamp_min(threshold)) / p, torch.full_like(g, -1.0))
    sign_part = torch.where(large, torch.sign(g), math.exp(p) * g)
    return torch.stack([log_part, sign_part], dim=-1)
