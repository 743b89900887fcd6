"""Leave-one-family-out: the families a saved policy was trained on, read from its metadata.

A policy trained on the training mixture with ``env: {leave_out: ID}`` (tasks/mixture_family.py)
has seen the mixture id and every member it kept, never ID; `trained_families` reads that from the
policy's metadata (``env_id``, ``env_ids``, ``env_kwargs``) and the mixture's registered members,
and `check_unseen` (tasks/heldout_suite.py) refuses evaluating a policy on any of them.
"""

from __future__ import annotations

from typing import Any


def left_out_ids(leave_out: Any) -> list[str]:
    """`leave_out` (None, one id or a list of ids) as a list."""
    if leave_out is None:
        return []
    return [leave_out] if isinstance(leave_out, str) else [str(m) for m in leave_out]


def mixture_members(env_id: str, env_kwargs: dict[str, Any]) -> list[str]:
    """The member ids a mixture id samples with `env_kwargs` (its registered members without those
    left out); [] for an id that is not a registered mixture."""
    import gymnasium as gym

    if env_id not in gym.registry:
        return []
    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs}
    members = kwargs.get("members")
    if not isinstance(members, (list, tuple)):
        return []
    left_out = left_out_ids(kwargs.get("leave_out"))
    return [m for m in members if isinstance(m, str) and m not in left_out]


def trained_families(meta: dict[str, Any]) -> set[str]:
    """Every registered id a policy trained on: its env_id (and env_ids), and for a mixture the
    members it kept."""
    ids = set(meta.get("env_ids", [])) | ({meta["env_id"]} if meta.get("env_id") else set())
    env_kwargs = meta.get("env_kwargs") or {}
    return ids | {m for env_id in ids for m in mixture_members(env_id, env_kwargs)}


def left_out_families(meta: dict[str, Any]) -> list[str]:
    """The mixture members a policy's run left out (its env_kwargs' leave_out)."""
    return left_out_ids((meta.get("env_kwargs") or {}).get("leave_out"))
