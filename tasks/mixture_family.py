"""A mixture of task families: each instance drawn from one of several families, padded to one dimension.

`MixtureFamily(members, weights)` draws, for each of the n instances, a member family with
probability `weights` (default uniform), then samples each member's instances in one call (so a
batch holds instances of several families and dimensions). Instances share the dimension
D = max member dimension: an instance of a d-dimensional family uses x[:, :d]; its padding
coordinates x[:, d:] start at 0, do not enter the objective (zero gradient) and so cannot change
it, whatever an optimizer does to them. A coordinatewise (dimension-free) policy thus trains on
every member at once, in every env form (single, native vector, SB3 VecEnv), since they all draw
through `TaskFamily.sample` and replace rows through `Problem.replace_rows`.

`leave_out` (a member id or a list of them) drops members: `l2o-gym train --env
l2o/TrainingMixture-v0` with ``env: {leave_out: l2o/TwoLayerNet-v0}`` in its YAML trains without
that family, which then serves as an unseen test family (tasks/leave_one_out.py,
benchmarks/leave_one_family_out.py).

f* is known where every member knows it; task metrics are those every member reports. The action
scale defaults to the smallest member default (set `action_scale` in the episode options or the
YAML to choose another). Shapes: member_of [B] (the member index of each instance); the k-th
member problem holds the rows with member_of == k, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.registry import make_family


class MixtureProblem(Problem):
    """B instances, row i from member problem member_of[i]; x [B, D] padded (see the module)."""

    def __init__(self, members: list[Problem | None], member_of: Tensor, dims: tuple[int, ...], dim: int) -> None:
        self.members, self.member_of, self.dims = members, member_of, dims
        x0 = torch.zeros(member_of.numel(), dim, dtype=self._dtype(), device=member_of.device)
        for k, rows in self._groups():
            x0[rows, : dims[k]] = members[k].x0.to(x0)
        super().__init__(x0)
        self.stochastic = any(m is not None and m.stochastic for m in members)

    def _dtype(self) -> torch.dtype:
        return next((m.x0.dtype for m in self.members if m is not None), torch.get_default_dtype())

    def _groups(self) -> list[tuple[int, Tensor]]:
        """(member index, its rows [n_k]) for every member holding instances."""
        groups = []
        for k, member in enumerate(self.members):
            if member is not None:
                groups.append((k, (self.member_of == k).nonzero().squeeze(1)))
        return groups

    def loss(self, x: Tensor) -> Tensor:
        f = x.new_zeros(x.shape[0])
        for k, rows in self._groups():
            f = f.index_put((rows,), self.members[k].loss(x[rows, : self.dims[k]]).to(x.dtype))
        return f

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f, grad = x.new_zeros(x.shape[0]), torch.zeros_like(x)
        for k, rows in self._groups():
            fk, gk = self.members[k].loss_and_grad(x[rows, : self.dims[k]])
            f[rows], grad[rows, : self.dims[k]] = fk.to(x.dtype), gk.to(x.dtype)
        return f, grad

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        per_member = {k: self.members[k].metrics(x[rows, : self.dims[k]]) for k, rows in self._groups()}
        common = set.intersection(*(set(m) for m in per_member.values())) if per_member else set()
        figures = {}
        for name in sorted(common):
            values = x.new_zeros(x.shape[0])
            for k, rows in self._groups():
                values[rows] = per_member[k][name].to(x.dtype)
            figures[name] = values
        return figures

    def compute_optimum(self) -> Tensor | None:
        f_star = self.x0.new_zeros(self.batch_size)
        for k, rows in self._groups():
            member_star = self.members[k].optimum()
            if member_star is None:
                return None
            f_star[rows] = member_star.to(f_star)
        return f_star

    def select_rows(self, index: Tensor) -> MixtureProblem:
        """The instances at `index` [n], in that order (their members' rows selected alike)."""
        index = index.to(self.member_of.device)
        local = self._local_index()
        chosen = self.member_of[index]
        members = [
            None if m is None or not (chosen == k).any() else m.select_rows(local[index[chosen == k]])
            for k, m in enumerate(self.members)
        ]
        selected = MixtureProblem(members, chosen, self.dims, self.dim)
        selected.f_star = None if self.f_star is None else self.f_star[index]
        return selected

    def _local_index(self) -> Tensor:
        """Each row's position within its member problem [B]."""
        one_hot = torch.nn.functional.one_hot(self.member_of, len(self.members))
        return (one_hot.cumsum(dim=0) - 1).gather(1, self.member_of.unsqueeze(1)).squeeze(1)

    def cat_rows(self, other: Problem) -> MixtureProblem:
        if not isinstance(other, MixtureProblem) or other.dims != self.dims:
            raise TypeError("other must be a MixtureProblem of the same members")
        members = [
            b if a is None else a if b is None else a.cat_rows(b)
            for a, b in zip(self.members, other.members, strict=True)
        ]
        both = MixtureProblem(
            members, torch.cat([self.member_of, other.member_of.to(self.device)]), self.dims, self.dim
        )
        if self.f_star is not None and other.f_star is not None:
            both.f_star = torch.cat([self.f_star, other.f_star.to(self.device)])
        return both

    def replace_rows(self, mask: Tensor, other: Problem) -> None:
        """Replace the instances where mask [B] is true by `other`'s (in place)."""
        if not isinstance(other, MixtureProblem):
            raise TypeError(f"other must be a MixtureProblem, got {type(other).__name__}")
        if int(mask.sum()) != other.batch_size:
            raise ValueError(f"mask selects {int(mask.sum())} rows, other has {other.batch_size}")
        if self.f_star is not None:
            other.optimum()
        index = torch.arange(self.batch_size, device=self.device)
        index[mask] = self.batch_size + torch.arange(other.batch_size, device=self.device)
        replaced = self.cat_rows(other).select_rows(index)
        self.members, self.member_of, self.x0 = replaced.members, replaced.member_of, replaced.x0
        self.f_star, self.stochastic = replaced.f_star, replaced.stochastic


def remaining_members(
    members: Sequence[str | TaskFamily], weights: Sequence[float] | None, leave_out: str | Sequence[str] | None
) -> tuple[list[str | TaskFamily], list[float] | None]:
    """`members` (and their weights) without the ids in `leave_out` (one id or a list), or a
    ValueError naming the allowed ids; at least one member must remain."""
    left_out = [] if leave_out is None else [leave_out] if isinstance(leave_out, str) else list(leave_out)
    ids = [m for m in members if isinstance(m, str)]
    unknown = [m for m in left_out if m not in ids]
    if unknown:
        raise ValueError(f"leave_out {unknown[0]!r} is not a member id: allowed {', '.join(ids)}")
    keep = [k for k, m in enumerate(members) if not (isinstance(m, str) and m in left_out)]
    if not keep:
        raise ValueError(f"leave_out leaves no member: allowed at most {len(ids) - 1} of {', '.join(ids)}")
    kept_weights = None if weights is None else [list(weights)[k] for k in keep]
    return [members[k] for k in keep], kept_weights


class MixtureFamily(TaskFamily):
    """Instances from `members` (registered ids or TaskFamily objects) with probabilities `weights`;
    `leave_out` (a member id or a list of them) drops those members (leave-one-family-out training)."""

    def __init__(
        self,
        members: Sequence[str | TaskFamily],
        weights: Sequence[float] | None = None,
        leave_out: str | Sequence[str] | None = None,
    ) -> None:
        if isinstance(members, (str, bytes)) or not members:
            raise ValueError(f"members must be a non-empty list of env ids or TaskFamily objects, got {members!r}")
        if weights is not None and len(list(weights)) != len(members):
            raise ValueError(f"weights must be {len(members)} numbers >= 0 with a positive sum, got {weights!r}")
        members, weights = remaining_members(members, weights, leave_out)
        self.member_ids = [m for m in members if isinstance(m, str)]
        self.families = [make_family(m) if isinstance(m, str) else m for m in members]
        if not all(isinstance(f, TaskFamily) for f in self.families):
            raise ValueError("members must be registered env ids or TaskFamily objects")
        weights = [1.0] * len(self.families) if weights is None else list(weights)
        if len(weights) != len(self.families) or not all(w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be {len(self.families)} numbers >= 0 with a positive sum, got {weights!r}")
        self.weights = torch.tensor(weights, dtype=torch.float64) / sum(weights)
        self.dims = tuple(f.dim for f in self.families)
        self.dim = max(self.dims)
        self.has_optimum = all(f.has_optimum for f in self.families)
        self.default_action_scale = min(f.default_action_scale for f in self.families)
        names = [m if isinstance(m, str) else type(m).__name__ for m in members]
        self.description = f"mixture of {', '.join(names)} (padded to d = {self.dim})"

    def sample_split_instances(self, n: int, generator: torch.Generator, split: str, device: torch.device) -> Problem:
        member_of = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        members: list[Problem | None] = []
        for k, family in enumerate(self.families):
            count = int((member_of == k).sum())
            members.append(family.sample(count, generator, split, device) if count else None)
        return MixtureProblem(members, member_of.to(device), self.dims, self.dim)

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> Problem:
        return self.sample_split_instances(n, generator, "train", device)
