"""Per-instance model weights kept in one flat vector: x [B, d] <-> named tensors [B, *shape]."""

from __future__ import annotations

import math

from torch import Tensor


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    """d: the number of scalars the named shapes hold."""
    return sum(math.prod(shape) for shape in shapes.values())


def unflatten(x: Tensor, shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """Named per-instance tensors [B, *shape] as views into x [B, d], in the order of `shapes`."""
    d = parameter_count(shapes)
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape [B, {d}], got {tuple(x.shape)}")
    out, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        out[name] = x[:, start : start + size].view(-1, *shape)
        start += size
    return out
