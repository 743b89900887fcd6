"""What an env step's contract costs by itself, without any env logic: the cheapest Python or numpy
that builds what a step must return (SB3's info dicts, fresh observation arrays, the ended envs'
terminal dicts). `benchmarks.env_overhead` prints each against the same run's bare loop.

Each function takes `timer` (seconds per call of a function) and returns seconds per call."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Timer = Callable[[Callable[[], object]], float]


def shared_over(values: list, repeats: int) -> list:
    """values [n] as [n · repeats]: each value `repeats` times in a row (the same object), by
    `repeats` slice assignments."""
    out: list = [None] * (len(values) * repeats)
    for i in range(repeats):
        out[i::repeats] = values
    return out


def _instance_columns(batch: int) -> tuple[np.ndarray, ...]:
    """objective, step, diverged, suboptimality [B] as an env holds them."""
    rng = np.random.default_rng(0)
    return rng.random(batch), np.zeros(batch, np.int64), np.zeros(batch, bool), rng.random(batch)


def _instance_infos(columns: tuple[np.ndarray, ...]) -> list[dict]:
    """One dict per instance from numpy columns [B]: one four-key dict display each (the fastest
    construction measured; dict(zip(keys, values)) and template copies were 2.5–2.8× slower)."""
    objective, step, diverged, gap = (column.tolist() for column in columns)
    return [
        {"objective": o, "step": s, "diverged": v, "suboptimality": g}
        for o, s, v, g in zip(objective, step, diverged, gap, strict=True)
    ]


def info_dicts(timer: Timer, batch: int, dim: int) -> float:
    """SB3's infos for B · d coordinate envs: B per-instance dicts, each shared by its d envs."""
    columns = _instance_columns(batch)
    return timer(lambda: shared_over(_instance_infos(columns), dim))


def terminal_dicts(timer: Timer, batch: int, dim: int, width: int) -> float:
    """Every one of the B · d envs ended: a dict of its own holding its instance's values,
    ``TimeLimit.truncated`` and a view of its row of one [B · d, F] array (one template per
    instance, copied per env with its row: the cheapest construction measured)."""
    per_instance = _instance_infos(_instance_columns(batch))
    rows = np.random.default_rng(1).random((batch * dim, width), dtype=np.float32)

    def build() -> list[dict]:
        templates = [{**info, "terminal_observation": None, "TimeLimit.truncated": True} for info in per_instance]
        per_env = zip(shared_over(templates, dim), rows, strict=True)  # iterating rows gives views
        return [dict(template, terminal_observation=row) for template, row in per_env]

    return timer(build)


def fresh_copies(timer: Timer, shapes: list[tuple[int, ...]]) -> float:
    """Fresh float32 arrays of these shapes, each filled from a same-sized source (np.copyto)."""
    sources = [np.random.default_rng(2).random(shape, dtype=np.float32) for shape in shapes]

    def copy() -> list[np.ndarray]:
        out = [np.empty_like(source) for source in sources]
        for target, source in zip(out, sources, strict=True):
            np.copyto(target, source)
        return out

    return timer(copy)


def in_place_copy(timer: Timer, shape: tuple[int, ...]) -> float:
    """One float32 array of this shape written in place from a same-sized source (np.copyto)."""
    source = np.random.default_rng(3).random(shape, dtype=np.float32)
    target = np.empty_like(source)
    return timer(lambda: np.copyto(target, source))
