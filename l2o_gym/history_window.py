"""The last H items of B streams, written once per step: a ring buffer kept twice over.

Slot k of the ring is stored at positions k and k + H of the buffer's time dimension, so the
window, oldest first, is always one slice ``p : p + H`` of it (a view, no copy, seen as
[B, H, ...]) where p is the oldest slot. A push writes the new item [B, ...] at slot p (both
copies) and moves p on: O(1) per step whatever H. The layout follows what reads the window:

* ``time_first`` [2H, B, ...]: a push writes two contiguous blocks (the cheapest push); for
  windows read by their newest items or through decayed sums;
* ``batch_first`` [B, 2H, ...]: each instance's window contiguous (the dict observation copies it
  whole); a push writes two short runs per instance;
* ``time_last`` [B, ..., 2H]: each coordinate's window contiguous (coordinatewise rows); a push
  writes one float per coordinate and copy.

(Once the buffer outgrows the cache, each run a push writes costs a cache miss: measured in
docs/speed.md.) The head p is shared by all rows; a row that must not move (a diverged, frozen
instance) or that starts afresh (autoreset) has its whole window rewritten instead, O(H) for that
row only.

The buffer is written in place: `view()` is valid until the next `push`; `ordered()` is a copy.
Where an item carries an autograd graph, the buffer is copied before the write, so that views
saved for a backward pass stay intact.

`decayed_sums(betas, power)` gives exponentially weighted sums over the window, kept up to date
from then on by every push and row rewrite (`l2o_gym.decayed_window_sums`: O(D) per push instead
of O(H·D), in float64, detached).
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.decayed_window_sums import DecayedWindowSums

LAYOUTS = ("time_first", "batch_first", "time_last")


def time_dim_of(layout: str, dims: int) -> int:
    """The time dimension of a buffer of `dims` dimensions in `layout` (one of LAYOUTS)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return {"time_first": 0, "batch_first": 1, "time_last": dims - 1}[layout]


def reusable(buffer: Tensor | None, shape: list[int], like: Tensor) -> bool:
    """Whether `buffer` can hold a window of `shape` with items like `like` (dtype, device), with
    no autograd graph and contiguous."""
    return (
        buffer is not None
        and list(buffer.shape) == shape
        and buffer.dtype == like.dtype
        and buffer.device == like.device
        and buffer.is_contiguous()
        and not (buffer.requires_grad or like.requires_grad)
    )


class HistoryWindow:
    """buffer [2H, B, ...] (time_first), [B, 2H, ...] (batch_first) or [B, ..., 2H] (time_last);
    slot k at k and k + H; head p: the oldest slot (the next written)."""

    def __init__(self, buffer: Tensor, head: int, layout: str = "time_first") -> None:
        self.time_dim = time_dim_of(layout, buffer.dim())
        if buffer.dim() < 2 or buffer.shape[self.time_dim] % 2 or not 0 <= head < buffer.shape[self.time_dim] // 2:
            raise ValueError(f"buffer must hold 2H items and 0 <= head < H, got {tuple(buffer.shape)}, {head}")
        self.buffer, self.head, self.layout = buffer, head, layout
        self.tracked: dict[tuple[tuple[float, ...], int], DecayedWindowSums] = {}
        self.filled = self.length  # how many of the newest items may be nonzero (the rest: zeros)

    @classmethod
    def from_ordered(cls, items: Tensor, layout: str = "time_first") -> HistoryWindow:
        """A window holding items [B, H, ...] (oldest first)."""
        twice = torch.cat([items, items], dim=1)
        return cls(twice.movedim(1, time_dim_of(layout, twice.dim())).contiguous(), 0, layout)

    @classmethod
    def starting_with(
        cls, newest: Tensor, length: int, layout: str = "time_first", reuse: Tensor | None = None
    ) -> HistoryWindow:
        """A zero-filled window of `length` items whose newest is `newest` [B, ...].

        `reuse`: a buffer nothing reads any more (a replaced window's), written over where it has
        this window's shape, dtype and device instead of allocating (a fresh 2H-item buffer costs
        its page faults): only the H positions the window shows are zeroed, since a push writes both
        copies of its slot before either is shown."""
        time_dim = time_dim_of(layout, newest.dim() + 1)
        shape = list(newest.shape)
        shape.insert(time_dim, 2 * length)
        if reusable(reuse, shape, newest):
            reuse.narrow(time_dim, 0, length).zero_()
            buffer = reuse
        else:
            buffer = newest.new_zeros(shape)
        window = cls(buffer, 0, layout)
        window.filled = 0
        window.push(newest)
        return window

    @property
    def length(self) -> int:
        return self.buffer.shape[self.time_dim] // 2

    def _items(self, start: int, count: int) -> Tensor:
        return self.buffer.narrow(self.time_dim, start, count).movedim(self.time_dim, 1)

    def view(self) -> Tensor:
        """The window [B, H, ...], oldest first: a view, valid until the next push."""
        return self._items(self.head, self.length)

    def newest(self, count: int) -> Tensor:
        """The newest `count` items [B, count, ...], oldest first (a view)."""
        return self._items(self.head + self.length - count, count)

    def ordered(self) -> Tensor:
        """The window [B, H, ...], oldest first, as a (contiguous) copy."""
        return self.view().clone(memory_format=torch.contiguous_format)

    def push(self, new: Tensor, frozen: Tensor | None = None) -> None:
        """Append new [B, ...] as the newest item of every row but `frozen` (an index [n] of rows
        whose window stays as it is; None for none)."""
        if new.requires_grad or self.buffer.requires_grad:
            self.buffer = self.buffer.clone()
        kept = None if frozen is None else self.view()[frozen].clone()
        slot, length = self.head, self.length
        self.buffer.select(self.time_dim, slot).copy_(new)
        self.buffer.select(self.time_dim, slot + length).copy_(new)
        self.commit_push(new)
        if kept is not None:
            self.set_rows(frozen, kept)

    def commit_push(self, new: Tensor | None = None) -> None:
        """The new item [B, ...] has been written at the head slot (both copies, every row): make it
        the newest (the head moves on, the tracked sums take it; `new`: that item, else read back)."""
        length = self.length
        if new is None and self.tracked:
            new = self._items(self.head, 1).select(1, 0)
        self.head = (self.head + 1) % length
        self.filled = min(self.filled + 1, length)
        for sums in self.tracked.values():
            sums.push(new, self.view())

    def set_rows(self, rows: Tensor, items: Tensor) -> None:
        """Make the window of rows (an index [n] or a mask [B]) hold items [n, H, ...] (oldest first)."""
        if self.buffer.requires_grad or items.requires_grad:
            self.buffer = self.buffer.clone()
        items = items.to(self.buffer)
        # item j (oldest first) of slot (p + j) mod H lives at positions p + j and p + j ∓ H
        head, length = self.head, self.length
        twice = self.buffer.movedim(self.time_dim, 1)  # [B, 2H, ...] (a view)
        twice[rows, head : head + length] = items
        twice[rows, head + length :] = items[:, : length - head]
        twice[rows, :head] = items[:, length - head :]
        self.filled = length
        for sums in self.tracked.values():
            sums.rebuild(items, rows)

    def replace_rows(self, rows: Tensor, other: HistoryWindow) -> None:
        """Rows (a mask [B] or an index [n]) take `other`'s windows (other has n rows)."""
        self.set_rows(rows, other.view())

    def decayed_sums(self, betas: tuple[float, ...], power: int = 1, beta_major: bool = False) -> Tensor:
        """Σ_a β^a item_a^power [B, n, ...] (float64, detached; newest age 0) for each β of
        betas, kept from now on in O(D) per push; with ``beta_major`` as [n, B, ...] (contiguous;
        otherwise that tensor seen as [B, n, ...])."""
        key = (tuple(betas), power)
        if key not in self.tracked:
            self.tracked[key] = DecayedWindowSums(self.view(), key[0], power, self.filled)
        sums = self.tracked[key].sums()
        return sums if beta_major else sums.transpose(0, 1)
