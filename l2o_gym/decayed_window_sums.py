"""Exponentially weighted sums over a history window, kept up to date in O(n·D) per push.

For each β of `betas` the sum over the window's H items (newest age 0, zero-filled items adding
nothing) Σ_a β^a · item_a^p, p = `power` (1 or 2), over items [B, H, D] (the window's trailing
dimensions flattened). A sliding sum that adds the new item and subtracts the leaving one loses
small late items to cancellation against large early ones; nothing is subtracted here. The sums
are kept as a queue of two stacks, in float64:

* the *front*: the k0 = H - k items the window held when it was last rebuilt (at push count k),
  as running sums newest first, front[j] = Σ_{r <= j} β^r · item_{k0-1-r}, so that after k' more
  pushes (k' >= k) the share of the items still in the window is β^{k'} · front[H - 1 - k'];
* the *back*: the items pushed since, as back = β · back + item per push.

Every H pushes the back holds the whole window and the front is rebuilt from it (O(H·D) once per
H pushes, three passes). A row whose window is rewritten (a frozen, diverged row; an autoreset)
is rebuilt from its window at once (O(H·D) for that row only). Every sum is then one of
nonnegatively weighted terms added in float64: within float64 rounding of the exact sum.
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym import native_kernel

SUM_DTYPE = torch.float64


class DecayedWindowSums:
    """front [H, n, B, D] (position-major, then β-major: each position's sums for one β one
    contiguous [B, D] block), back [n, B, D] (float64) for a window of H items [D] (see module).

    β-major, so that the per-β weights broadcast over whole [B·D] blocks (a per-β weight in the
    innermost dimensions makes every elementwise operation loop over runs of only D elements)."""

    def __init__(self, items: Tensor, betas: tuple[float, ...], power: int, filled: int | None = None) -> None:
        """items: the window [B, H, ...] (oldest first) these sums start from; filled: how many of
        its newest items may be nonzero (the older ones zero-filled, as in a fresh window; None:
        all), so that a fresh window starts in O(filled·D): its zero items form the front."""
        if power not in (1, 2):
            raise ValueError(f"power must be 1 or 2, got {power!r}")
        self.betas, self.power, self.length = tuple(betas), power, items.shape[1]
        self.item_shape = tuple(items.shape[2:])
        beta = torch.tensor(self.betas, dtype=SUM_DTYPE, device=items.device)
        self.beta = beta.view(-1, 1, 1)  # [n, 1, 1]
        ages = torch.arange(self.length + 1, dtype=SUM_DTYPE, device=items.device)
        self.beta_powers = beta.unsqueeze(1) ** ages  # [n, H + 1]
        self.powers_by_age = self.beta_powers.T.contiguous()  # [H + 1, n]
        self.pushed = 0  # pushes since the front was rebuilt: k
        self.front: Tensor | None = None  # None: every front sum is 0 (zero-filled items)
        if filled is not None and 0 < filled < self.length:
            self.pushed = filled
            self.back = self._back_sums(self._terms(items[:, self.length - filled :]))
        else:
            self.front, self.back = self._built(items)

    def _terms(self, items: Tensor) -> Tensor:
        """items [m, H', ...] as float64 terms [H', m, D] (time-major, contiguous): as they are, or
        squared (power 2)."""
        flat = items.detach().reshape(items.shape[0], items.shape[1], -1).transpose(0, 1)
        terms = torch.empty(flat.shape, dtype=SUM_DTYPE, device=flat.device).copy_(flat)
        return terms.square_() if self.power == 2 else terms

    def _built(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """front [H, n, m, D] and back [n, m, D] of the windows items [m, H, ...], as k splits them."""
        terms = self._terms(items)  # [H, m, D]
        k, length = self.pushed, self.length
        kept = length - k  # the oldest H - k items form the front, the newest k the back
        n, m, width = len(self.betas), terms.shape[1], terms.shape[2]
        front = torch.empty((length, n, m, width), dtype=SUM_DTYPE, device=terms.device)  # [kept:] unread
        weights = self.beta_powers[:, :kept].T.reshape(kept, n, 1, 1)  # β^r
        torch.mul(terms[kept - 1].unsqueeze(0), weights[0], out=front[0])
        for r in range(1, kept):  # running sums, newest first: one pass per position
            torch.addcmul(front[r - 1], terms[kept - 1 - r].unsqueeze(0), weights[r], out=front[r])
        return front, self._back_sums(terms[kept:])

    def _rebuild_front(self, items: Tensor) -> None:
        """The front from the whole window items [B, H, ...] (its buffer reused), the back 0: as
        `_built` with k = 0, one item at a time (no float64 copy of the window)."""
        length, n = self.length, len(self.betas)
        shape = (length, n, items.shape[0], self.back.shape[2])
        if self.front is None or self.front.shape != shape:
            self.front = torch.empty(shape, dtype=SUM_DTYPE, device=self.back.device)
        weights = self.beta_powers[:, :length].T.reshape(length, n, 1, 1)  # β^r
        for r in range(length):  # running sums, newest first
            term = items[:, length - 1 - r].detach().reshape(1, shape[2], shape[3])
            if self.power == 2:
                term = term.to(SUM_DTYPE, copy=True).square_()
            if r == 0:
                torch.mul(term, weights[0], out=self.front[0])
            else:
                torch.addcmul(self.front[r - 1], term, weights[r], out=self.front[r])
        self.back.zero_()

    def _back_sums(self, terms: Tensor) -> Tensor:
        """Σ_j β^{k-1-j} terms_j [n, m, D] of the newest k terms [k, m, D] (oldest first)."""
        back_weights = self.beta_powers[:, : terms.shape[0]].flip(1)  # [n, k]
        return torch.einsum("kmd,nk->nmd", terms, back_weights).contiguous()

    def rebuild(self, items: Tensor, rows: Tensor) -> None:
        """Recompute the sums of `rows` (an index [m] or a mask [B]) from their window items
        [m, H, ...] (oldest first)."""
        front, self.back[:, rows] = self._built(items)
        if self.front is None:
            self.front = front.new_zeros((front.shape[0], *self.back.shape))
        self.front[:, :, rows] = front

    def push(self, item: Tensor, window_items: Tensor) -> None:
        """The window took item [B, ...] as its newest (window_items [B, H, ...]: the window now)."""
        self.pushed += 1
        if self.pushed == self.length:  # the back holds the whole window: rebuild the front
            self.pushed = 0
            self._rebuild_front(window_items)
            return
        lib = self._native(item)
        if lib is not None:
            native_kernel.decayed_push(lib, self.back, self.beta, item, self.power)
            return
        term = item.detach().reshape(1, item.shape[0], -1)  # [1, B, D] (may share the item's memory)
        if self.power == 2:
            term = term.to(SUM_DTYPE).square()
        self.back.mul_(self.beta).add_(term)

    def sums(self) -> Tensor:
        """Σ_a β^a item_a^p [n, B, ...] (float64, β-major, contiguous), newest age 0."""
        k = self.pushed
        if self.front is None:
            total = self.back.clone()
        else:
            older = self.front[self.length - 1 - k]  # [n, B, D], contiguous
            lib = self._native() if older.is_contiguous() else None
            if lib is not None:
                total = native_kernel.decayed_total(lib, self.back, older, self.powers_by_age[k])
            else:
                total = torch.addcmul(self.back, older, self.beta_powers[:, k].view(-1, 1, 1))
        return total.view(total.shape[0], total.shape[1], *self.item_shape)

    def _native(self, item: Tensor | None = None):
        """The compiled kernels (`l2o_gym.native_kernel`) where they can do this push (`item`
        [B, ...]: float32, contiguous, no autograd graph) or the sums: CPU, the back contiguous."""
        back = self.back
        if back.device.type != "cpu" or not back.is_contiguous():
            return None
        if item is not None:
            if item.dtype != torch.float32 or not item.is_contiguous() or item.requires_grad:
                return None
            if item.numel() * back.shape[0] != back.numel() or item.device.type != "cpu":
                return None
        return native_kernel.library()
