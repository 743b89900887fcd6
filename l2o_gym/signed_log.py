"""The signed log-magnitude transform of gradients and steps (Li & Malik's scale-keeping input)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SIGNED_LOG_EPS = 1e-8
_SIGNED_LOG_NORM = math.log1p(1.0 / SIGNED_LOG_EPS)
_LOG_EPS = math.log(SIGNED_LOG_EPS)
SIGNED_LOG_BOUND = 6.0  # > signed_log(float32 max) ≈ 5.8


def signed_log(v: Tensor) -> Tensor:
    """sign(v) · log(1 + |v| / 1e-8) / log(1 + 1e8): 1e-8 -> 0.04, 1e-3 -> 0.63, 1 -> 1, 1e4 -> 1.5."""
    # log1p(|v| / eps) as softplus(log|v| - log eps) = log(1 + exp(.)): no overflow for |v| up to
    # float32's max (beyond 40, where softplus returns its argument, the two differ by < 1e-17);
    # |v| is floored at the smallest normal number (log(0) and denormals take slow paths; the
    # result there is 0 either way, to within 1e-30); in place where the tensors are fresh
    log_ratio = torch.log(v.abs().clamp_min_(torch.finfo(v.dtype).tiny)).sub_(_LOG_EPS)
    return F.softplus(log_ratio, threshold=40.0).div_(_SIGNED_LOG_NORM).mul_(torch.sign(v))
