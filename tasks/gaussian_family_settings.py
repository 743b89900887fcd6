"""The keyword settings that Li & Malik's families on random Gaussian clusters share, declared and
checked once: the scales (`GaussianScales`) and, for the families fitted to clustered points with a
best-of-several-starts optimum, the cluster counts and the number of starts (`GaussianClusterSettings`).

A family is a keyword-only dataclass that inherits one of them and adds its own fields, so its
signature (what `l2o_gym.family_loader` reads to check keyword arguments) lists every setting.
`__post_init__` checks each value (a one-line ValueError naming it) and keeps the checked value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from l2o_gym.problem import check_positive_int
from tasks.checked_settings import keep_checked
from tasks.gaussian_data import check_positive_float

SettingsClass = TypeVar("SettingsClass", bound=type)


def family_dataclass(cls: SettingsClass) -> SettingsClass:
    """`cls` as a keyword-only dataclass that keeps identity comparison (no generated `__eq__`, so
    families stay hashable) and the `__repr__` it inherits."""
    return dataclass(cls, kw_only=True, eq=False, repr=False)


@family_dataclass
class GaussianScales:
    """Scales of the cluster means (`mean_std`), of the points around them (`spread`) and of the
    starting points x0 ~ N(0, init_std²); each a finite number > 0."""

    mean_std: float = 1.0
    spread: float = 1.0
    init_std: float = 1.0

    def __post_init__(self) -> None:
        keep_checked(self, check_positive_float, mean_std=self.mean_std, spread=self.spread, init_std=self.init_std)


@family_dataclass
class GaussianClusterSettings(GaussianScales):
    """The scales, `clusters` Gaussians of `points_per_cluster` points each, and the number of
    L-BFGS starts whose best gives the optimum (`optimum_starts`); each count a positive int."""

    clusters: int = 4
    points_per_cluster: int = 25
    optimum_starts: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        keep_checked(
            self,
            check_positive_int,
            clusters=self.clusters,
            points_per_cluster=self.points_per_cluster,
            optimum_starts=self.optimum_starts,
        )
