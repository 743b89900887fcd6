"""The signed log-magnitude transform of gradients and steps (Li & Malik's scale-keeping input)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SIGNED_LOG_EPS = 1e-8
_SIGNED_LOG_NORM = math.log1p(1.0 / SIGNED_LOG_EPS)
SIGNED_LOG_BOUND = 6.0  # > signed_log(float32 max) ≈ 5.8


def signed_log(v: Tensor) -> Tensor:
    """sign(v) · log(1 + |v| / 1e-8) / log(1 + 1e8): 1e-8 -> 0.04, 1e-3 -> 0.63, 1 -> 1, 1e4 -> 1.5."""
    # log1p(|v| / eps) as logaddexp(log|v| - log eps, 0): no overflow for |v| up to float32's max;
    # |v| is floored at the smallest normal number (log(0) and denormals take slow paths; the
    # result there is 0 either way, to within 1e-30)
    log_ratio = torch.log(v.abs().clamp_min(torch.finfo(v.dtype).tiny)) - math.log(SIGNED_LOG_EPS)
    return torch.sign(v) * torch.logaddexp(log_ratio, torch.zeros_like(v)) / _SIGNED_LOG_NORM
