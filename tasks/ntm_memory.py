"""NTM memory with least-recently-used access (Santoro et al., 2016; the seed's equations 1-5).

Batched over any number of leading "streams" N (instances x episodes, flattened). Shapes:
memory M [N, S, W] (S slots of width W), usage w^u [N, S], read weights w^r [N, R, S] (R heads),
least-used weights w^lu [N, S], keys k [N, R, W], write gates α [N, R], reads r [N, R, W].

One step `lru_step(state, keys, alpha, gamma)`, in this order:

    w^w_t   = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu_{t-1}                     (write weights, per head)
    M_{t-1}(argmin w^u_{t-1}) <- 0                        (the least used slot is zeroed first)
    M_t(i)  = M_{t-1}(i) + Σ_heads w^w_t(i) k_t                                          (eq. 5)
    K(k_t, M_t(i)) = k_t · M_t(i) / (||k_t|| ||M_t(i)||)                                  (eq. 1)
    w^r_t(i) = exp K(k_t, M_t(i)) / Σ_j exp K(k_t, M_t(j))                                 (eq. 2)
    r_t     = Σ_i w^r_t(i) M_t(i)                                                         (eq. 3)
    w^u_t   = γ w^u_{t-1} + Σ_heads w^r_t + Σ_heads w^w_t
    w^lu_t(i) = 1 if w^u_t(i) <= m(w^u_t, n) else 0,  m = the n-th smallest usage, n = R   (eq. 4)

Ties in eq. 4 are broken towards lower slot indices, so w^lu always has exactly n ones. The
cosine similarity divides by ``||k|| ||M(i)|| + 1e-8`` (a zeroed slot has similarity 0). The
start state: M_0 = 1e-6 everywhere, w^u_0 = 0, w^r_0 = 0, w^lu_0 = the first n slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

COSINE_EPS = 1e-8
MEMORY_INIT = 1e-6


@dataclass
class MemoryState:
    """memory [N, S, W], usage [N, S], read_weights [N, R, S], least_used [N, S], reads [N, R, W]."""

    memory: Tensor
    usage: Tensor
    read_weights: Tensor
    least_used: Tensor
    reads: Tensor


def initial_state(streams: int, slots: int, width: int, heads: int, like: Tensor) -> MemoryState:
    """The start state for `streams` memories of slots x width with `heads` read heads."""
    if heads > slots:
        raise ValueError(f"heads must be <= slots ({slots}), got {heads}")
    kwargs = {"dtype": like.dtype, "device": like.device}
    least_used = torch.zeros(streams, slots, **kwargs)
    least_used[:, :heads] = 1.0
    return MemoryState(
        memory=torch.full((streams, slots, width), MEMORY_INIT, **kwargs),
        usage=torch.zeros(streams, slots, **kwargs),
        read_weights=torch.zeros(streams, heads, slots, **kwargs),
        least_used=least_used,
        reads=torch.zeros(streams, heads, width, **kwargs),
    )


def cosine_similarity(keys: Tensor, memory: Tensor) -> Tensor:
    """K(k, M(i)) (eq. 1): keys [N, R, W], memory [N, S, W] -> [N, R, S]."""
    dots = torch.einsum("nrw,nsw->nrs", keys, memory)
    norms = keys.norm(dim=2).unsqueeze(2) * memory.norm(dim=2).unsqueeze(1)
    return dots / (norms + COSINE_EPS)


def least_used_weights(usage: Tensor, n: int) -> Tensor:
    """Eq. 4: 1 on the n slots of smallest usage (ties to lower indices), 0 elsewhere: [N, S]."""
    # a stable sort breaks ties towards lower slot indices
    order = torch.sort(usage, dim=1, stable=True).indices[:, :n]
    weights = torch.zeros_like(usage)
    weights.scatter_(1, order, 1.0)
    return weights


def lru_step(state: MemoryState, keys: Tensor, alpha: Tensor, gamma: float) -> MemoryState:
    """One write-then-read step of the LRU memory (equations in the module docstring)."""
    heads = keys.shape[1]
    gate = torch.sigmoid(alpha).unsqueeze(2)  # [N, R, 1]
    write_weights = gate * state.read_weights + (1 - gate) * state.least_used.unsqueeze(1)  # [N, R, S]
    least = state.usage.argmin(dim=1)  # first minimum: the least used slot
    keep = torch.ones_like(state.usage).scatter(1, least.unsqueeze(1), 0.0)
    memory = state.memory * keep.unsqueeze(2) + torch.einsum("nrs,nrw->nsw", write_weights, keys)
    read_weights = torch.softmax(cosine_similarity(keys, memory), dim=2)
    reads = torch.einsum("nrs,nsw->nrw", read_weights, memory)
    usage = gamma * state.usage + read_weights.sum(dim=1) + write_weights.sum(dim=1)
    return MemoryState(memory, usage, read_weights, least_used_weights(usage, heads), reads)
