"""tanh as 2·sigmoid(2x) − 1: the same function, several times faster on CPU in this torch.

torch's CPU `tanh` kernel costs about 2.3 ns per float32 element here (AVX-512, one thread), ten
times its `sigmoid`; in a 64-64 tanh actor-critic it was a quarter of PPO's update. `SigmoidTanh`
computes the same function through one sigmoid (forward within 2.4e-7 absolute of `torch.tanh`,
whose outputs lie in [−1, 1]) and back-propagates as tanh does, g·(1 − y²), from the output it
saved. It has no parameters, so a policy trained with it saves the same state_dict and is
rebuilt (and evaluated) with `nn.Tanh`. `use_sigmoid_tanh(module)` swaps it in for every
`nn.Tanh` inside a module, in place.
"""

from __future__ import annotations

import torch
from torch import nn


class _SigmoidTanhFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def sigmoid_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) (any shape) as 2·sigmoid(2x) − 1, with tanh's gradient."""
    return _SigmoidTanhFunction.apply(x)


class SigmoidTanh(nn.Module):
    """`nn.Tanh` computed by `sigmoid_tanh`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sigmoid_tanh(x)


def use_sigmoid_tanh(module: nn.Module) -> int:
    """Replace every `nn.Tanh` inside `module` by `SigmoidTanh`, in place; returns how many."""
    found = [
        (parent, name)
        for parent in module.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Tanh
    ]
    for parent, name in found:
        setattr(parent, name, SigmoidTanh())
    return len(found)


__all__ = ["SigmoidTanh", "sigmoid_tanh", "use_sigmoid_tanh"]
