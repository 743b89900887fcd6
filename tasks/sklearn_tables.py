"""scikit-learn's bundled tabular datasets (offline: nothing downloads) as standardized tensors, with
a fixed split of their rows into a "validation" pool and a "test" pool, and no "train" pool.

Datasets: iris (150 rows, 4 features, 3 classes), wine (178, 13, 3), breast_cancer (569, 30, 2),
digits (1,797, 64, 10) — classification; diabetes (442, 10) — regression. Features are
standardized per column over the whole dataset (a constant column becomes 0); a regression target
is standardized too.

Row split (fixed, the same for every seed): a permutation of the rows drawn from
``torch.Generator().manual_seed(ROW_SPLIT_SEED)``; its first VALIDATION_FRACTION are the
"validation" pool (where baselines are tuned), the rest the "test" pool. The families built on
these tables are held out from training: asking for a "train" split is an error.

Shapes: `Table.features` [n, F], `Table.target` [n] (long class indices, or float);
`sample_rows` draws B instances of N rows each, without replacement within an instance:
a [B, N, F], y [B, N].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int, check_split

LOADERS: dict[str, str] = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}
REGRESSION = ("diabetes",)
ROW_SPLIT_SEED = 0
VALIDATION_FRACTION = 0.4
HELDOUT_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class Table:
    """features [n, F] standardized; target [n]; classes (0 for regression)."""

    name: str
    features: Tensor
    target: Tensor
    classes: int

    @property
    def regression(self) -> bool:
        return self.classes == 0


def check_dataset(name: str) -> str:
    if name not in LOADERS:
        raise ValueError(f"dataset must be one of {sorted(LOADERS)}, got {name!r}")
    return name


@cache
def load_table(name: str) -> Table:
    """The dataset `name` as a standardized Table (loaded once)."""
    import sklearn.datasets

    data = getattr(sklearn.datasets, LOADERS[check_dataset(name)])()
    features = torch.as_tensor(data.data, dtype=torch.float32)
    features = (features - features.mean(dim=0)) / features.std(dim=0).clamp_min(1e-6)
    if name in REGRESSION:
        target = torch.as_tensor(data.target, dtype=torch.float32)
        return Table(name, features, (target - target.mean()) / target.std(), 0)
    target = torch.as_tensor(data.target, dtype=torch.long)
    return Table(name, features, target, int(target.max()) + 1)


def check_heldout_split(split: str) -> str:
    """`split` if it is "validation" or "test"; "train" is refused (these tasks are held out)."""
    if check_split(split) not in HELDOUT_SPLITS:
        raise ValueError(
            f"this is a held-out (test-only) task: split must be one of {HELDOUT_SPLITS} "
            f"(validation only to tune baselines), got {split!r}; it never serves training"
        )
    return split


@cache
def split_rows(name: str, split: str) -> Tensor:
    """Row indices [n_split] of the dataset's `split` pool (disjoint pools, fixed)."""
    check_heldout_split(split)
    n = load_table(name).features.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(ROW_SPLIT_SEED))
    cut = int(round(VALIDATION_FRACTION * n))
    return order[:cut] if split == "validation" else order[cut:]


def sample_rows(
    name: str, split: str, instances: int, points: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """a [B, N, F], y [B, N]: each instance N rows of the split's pool, drawn without replacement
    (N = min(points, pool size))."""
    check_positive_int("instances", instances)
    check_positive_int("points", points)
    table, rows = load_table(name), split_rows(name, split)
    n = min(points, rows.numel())
    chosen = rows[torch.rand(instances, rows.numel(), generator=generator).argsort(dim=1)[:, :n]]
    return table.features[chosen], table.target[chosen]
