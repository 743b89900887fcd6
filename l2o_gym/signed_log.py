"""The signed log-magnitude transform of gradients and steps (Li & Malik's scale-keeping input)."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

SIGNED_LOG_EPS = 1e-8
SIGNED_LOG_NORM = math.log1p(1.0 / SIGNED_LOG_EPS)
SIGNED_LOG_BOUND = 6.0  # > signed_log(float32 max) ≈ 5.8


def signed_log(v: Tensor) -> Tensor:
    """sign(v) · log(1 + |v| / 1e-8) / log(1 + 1e8): 1e-8 -> 0.04, 1e-3 -> 0.63, 1 -> 1, 1e4 -> 1.5."""
    # log1p(|v| / eps) as log(|v| + eps) - log(eps): one transcendental function, no overflow for
    # |v| up to float32's max, no denormal or log(0) slow path, and exactly 0 at v = 0 (log(eps)
    # is taken in v's own precision); within 1e-7 of log1p wherever the result is nonzero
    log_eps = _log_eps(v.dtype)
    return torch.log(v.abs().add_(SIGNED_LOG_EPS)).sub_(log_eps).div_(SIGNED_LOG_NORM).mul_(torch.sign(v))


@lru_cache(maxsize=8)
def _log_eps(dtype: torch.dtype) -> float:
    """log(SIGNED_LOG_EPS) as computed in `dtype` (so that log(0 + eps) - log(eps) is exactly 0)."""
    return torch.log(torch.tensor(SIGNED_LOG_EPS, dtype=dtype)).item()
