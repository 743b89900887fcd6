"""The last H items of B streams, written once per step: a ring buffer kept twice over.

Slot k of the ring is stored at positions k and k + H of a buffer [B, 2H, ...], so the window,
oldest first, is always the contiguous slice ``buffer[:, p : p + H]`` (a view, no copy) where p is
the oldest slot. A push writes the new item [B, ...] at slot p (both copies) and moves p on: O(1)
per step whatever H. The head p is shared by all rows; a row that must not move (a diverged,
frozen instance) or that starts afresh (autoreset) has its whole window rewritten instead, O(H)
for that row only.

The buffer is written in place: `view()` is valid until the next `push`; `ordered()` is a copy.
Where an item carries an autograd graph, the buffer is copied before the write, so that views
saved for a backward pass stay intact.
"""

from __future__ import annotations

import torch
from torch import Tensor


class HistoryWindow:
    """buffer [B, 2H, ...] (slot k at k and k + H), head p: the oldest slot (the next written)."""

    def __init__(self, buffer: Tensor, head: int) -> None:
        if buffer.dim() < 2 or buffer.shape[1] % 2 or not 0 <= head < buffer.shape[1] // 2:
            raise ValueError(f"buffer must be [B, 2H, ...] and 0 <= head < H, got {tuple(buffer.shape)}, {head}")
        self.buffer, self.head = buffer, head

    @classmethod
    def from_ordered(cls, items: Tensor) -> HistoryWindow:
        """A window holding items [B, H, ...] (oldest first)."""
        return cls(torch.cat([items, items], dim=1), 0)

    @classmethod
    def starting_with(cls, newest: Tensor, length: int) -> HistoryWindow:
        """A zero-filled window of `length` items whose newest is `newest` [B, ...]."""
        buffer = newest.new_zeros((newest.shape[0], 2 * length, *newest.shape[1:]))
        window = cls(buffer, 0)
        window.push(newest)
        return window

    @property
    def length(self) -> int:
        return self.buffer.shape[1] // 2

    def view(self) -> Tensor:
        """The window [B, H, ...], oldest first: a view, valid until the next push."""
        return self.buffer[:, self.head : self.head + self.length]

    def newest(self, count: int) -> Tensor:
        """The newest `count` items [B, count, ...], oldest first (a view)."""
        end = self.head + self.length
        return self.buffer[:, end - count : end]

    def ordered(self) -> Tensor:
        """The window [B, H, ...], oldest first, as a copy."""
        return self.view().clone()

    def push(self, new: Tensor, frozen: Tensor | None = None) -> None:
        """Append new [B, ...] as the newest item of every row but `frozen` (an index [n] of rows
        whose window stays as it is; None for none)."""
        if new.requires_grad or self.buffer.requires_grad:
            self.buffer = self.buffer.clone()
        kept = None if frozen is None else self.view()[frozen].clone()
        slot, length = self.head, self.length
        self.buffer[:, slot] = new
        self.buffer[:, slot + length] = new
        self.head = (slot + 1) % length
        if kept is not None:
            self.set_rows(frozen, kept)

    def set_rows(self, rows: Tensor, items: Tensor) -> None:
        """Make the window of rows (an index [n] or a mask [B]) hold items [n, H, ...] (oldest first)."""
        if self.buffer.requires_grad or items.requires_grad:
            self.buffer = self.buffer.clone()
        twice = torch.cat([items, items], dim=1).to(self.buffer)
        self.buffer[rows] = torch.roll(twice, shifts=self.head, dims=1)

    def replace_rows(self, mask: Tensor, other: HistoryWindow) -> None:
        """Rows where mask [B] is true take `other`'s windows (other has mask.sum() rows)."""
        self.set_rows(mask, other.view())
