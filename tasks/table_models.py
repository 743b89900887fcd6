"""Held-out models on scikit-learn's bundled tables: linear models and small MLPs, full-batch or
minibatch (stochastic gradients). Test-only: the "train" split is refused (`tasks.sklearn_tables`).

Each instance is N rows of the split's pool (`tasks.sklearn_tables.sample_rows`) and a network
`tasks.batched_mlp.BatchedMLP` (F, hidden, C) — or (F, C), a linear model, when hidden = 0 — with
its own starting weights (torch.nn.Linear's default initialisation).
Classification: softmax cross-entropy; regression (diabetes): half the mean squared error.
Objective: data term + (λ/2)||x||² (every parameter, biases included).

Minibatch (``batch_size`` > 0): every evaluation draws `batch_size` of the instance's N rows with
replacement from the problem's own seeded generator (`stochastic = True`); `metrics` report the
full-batch objective ("full_objective") and accuracy or MSE at x, so methods can be compared on the
objective they actually minimise in expectation. f* (linear models, convex): the full-batch
optimum by batched L-BFGS; MLPs have none (raw objectives are compared).

Shapes: a [B, N, F], y [B, N], x [B, d] with d = BatchedMLP(...).num_params.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.solve import minimize_batched
from tasks.batched_mlp import BatchedMLP
from tasks.sklearn_tables import check_dataset, check_heldout_split, load_table, sample_rows


class TableProblem(Problem):
    """a [B, N, F] rows, y [B, N] targets; the network `mlp`; `minibatch` rows per evaluation (0: all)."""

    instance_fields = ("a", "y")

    def __init__(
        self,
        a: Tensor,
        y: Tensor,
        x0: Tensor,
        mlp: BatchedMLP,
        regression: bool,
        lam: float,
        batch_size: int,
        generator: torch.Generator | None,
    ) -> None:
        super().__init__(x0, generator)
        self.a, self.y, self.mlp = a, y, mlp
        self.regression, self.lam, self.minibatch = regression, lam, batch_size
        self.stochastic = batch_size > 0

    def objective(self, x: Tensor, a: Tensor, y: Tensor) -> Tensor:
        """Data term on rows a [B, n, F], y [B, n] plus the L2 penalty -> [B]."""
        out = self.mlp.forward(x, a)
        if self.regression:
            data = 0.5 * (out.squeeze(2) - y).pow(2).mean(dim=1)
        else:
            data = F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(dim=1)
        return data + 0.5 * self.lam * x.pow(2).sum(dim=1)

    def loss(self, x: Tensor) -> Tensor:
        if not self.stochastic:
            return self.objective(x, self.a, self.y)
        batch, n = self.y.shape
        rows = torch.randint(0, n, (batch, self.minibatch), generator=self.generator, device=self.generator.device)
        a = torch.gather(self.a, 1, rows.unsqueeze(2).expand(-1, -1, self.a.shape[2]))
        return self.objective(x, a, torch.gather(self.y, 1, rows))

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            out = self.mlp.forward(x, self.a)
            figures = {"full_objective": self.objective(x, self.a, self.y)}
            if self.regression:
                figures["mse"] = (out.squeeze(2) - self.y).pow(2).mean(dim=1)
            else:
                figures["accuracy"] = (out.argmax(dim=2) == self.y).to(x.dtype).mean(dim=1)
        return figures

    def compute_optimum(self) -> Tensor | None:
        if len(self.mlp.sizes) > 2:
            return None  # non-convex: no certified optimum
        full = copy.copy(self)
        full.stochastic, full.minibatch = False, 0
        return minimize_batched(full)[1]


class TableModelFamily(TaskFamily):
    """A linear model (hidden = 0) or a one-hidden-layer ReLU MLP on `dataset` (test-only)."""

    test_only = True  # held out from training: every id of this family is test-only

    default_action_scale = 0.1

    def __init__(
        self,
        dataset: str = "iris",
        hidden: int = 0,
        batch_size: int = 0,
        n_points: int = 200,
        lam: float = 1e-3,
    ) -> None:
        self.dataset = check_dataset(dataset)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an int >= 0 (0: a linear model), got {hidden!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0 (0: full batch), got {batch_size!r}")
        self.hidden, self.batch_size = hidden, batch_size
        self.n_points = check_positive_int("n_points", n_points)
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam < float("inf"):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        self.lam = float(lam)
        table = load_table(dataset)
        outputs = 1 if table.regression else table.classes
        features = table.features.shape[1]
        self.mlp = BatchedMLP((features, hidden, outputs) if hidden else (features, outputs))
        self.dim = self.mlp.num_params
        self.regression = table.regression
        self.has_optimum = hidden == 0
        model = f"MLP({features}-{hidden}-{outputs})" if hidden else f"linear({features}->{outputs})"
        loss = "squared error" if table.regression else "cross-entropy"
        batch = f"minibatch {batch_size}" if batch_size else "full batch"
        self.description = f"[held-out, test-only] {dataset} {model} {loss}, {batch}, λ={self.lam:g}"

    def sample_split_instances(self, n: int, generator: torch.Generator, split: str, device: torch.device) -> Problem:
        a, y = sample_rows(self.dataset, check_heldout_split(split), n, self.n_points, generator)
        x0 = self.mlp.init(n, generator)
        minibatches = None
        if self.batch_size:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            minibatches = torch.Generator(device=device).manual_seed(seed)
        return TableProblem(
            a.to(device), y.to(device), x0.to(device), self.mlp, self.regression, self.lam, self.batch_size, minibatches
        )

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> Problem:
        """Refused: a held-out family has no training split (use `sample(..., split="test")`)."""
        return self.sample_split_instances(n, generator, "train", device)
