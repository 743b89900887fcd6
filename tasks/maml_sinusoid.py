"""MAML's sinusoid regression as a task family (Finn et al., 2017): l2o/MAMLSinusoid-v0.

An instance is one sine task y = A sin(x - φ), A ~ U[0.1, 5], φ ~ U[0, π], inputs x ~ U[-5, 5].
The parameters are those of a 1-40-40-1 ReLU network (d = 1761, `tasks.batched_mlp` layout);
every instance starts from the same initialisation, by default MAML's, meta-trained by
`tasks.maml_training` on the family's own tasks and cached on disk (a missing cache is built).

Objective: the MSE of the network on the task's K support points (`k_shot`, 5 or 10).
Metric: ``query_mse`` [B], the MSE on `n_query` held-out points of the same sine; it is also the
problem's `query_loss` (the env option ``objective="query"`` pays the reward on it).
Shapes: support_x, support_y [B, K, 1]; query_x, query_y [B, Q, 1]; amplitude, phase [B].

``init``: "maml" (second-order MAML, one inner step α = 0.01, meta-batch 25, Adam 1e-3, as in the
paper), "fomaml" (first-order MAML), "pretrained" (regression on all tasks, no adaptation) or
"random" (a fresh nn.Linear-style init per instance). `meta_iterations` defaults to 20,000 (the
paper: 70,000); the first use of a configuration meta-trains it (about a minute on one CPU core for
second-order MAML) and caches it. Plain gradient steps of α = 0.01 from the second-order MAML init
are unstable on a few large-amplitude tasks after several steps (see
benchmarks/maml_sinusoid_reproduction.py, which counts them).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from tasks.batched_mlp import BatchedMLP
from tasks.maml_training import MAMLConfig, MAMLInitialised, start_instances

SINE_NET = (1, 40, 40, 1)
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)
META_TRAIN_QUERY = 10
DEFAULT_META_ITERATIONS = 20000


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)


class MAMLSinusoidProblem(Problem):
    """B sine tasks; loss = support MSE [B]; `query_loss` and metrics' query_mse on held-out points."""

    instance_fields = ("support_x", "support_y", "query_x", "query_y", "amplitude", "phase")
    has_query = True

    def __init__(
        self,
        net: BatchedMLP,
        support_x: Tensor,
        support_y: Tensor,
        query_x: Tensor,
        query_y: Tensor,
        amplitude: Tensor,
        phase: Tensor,
        x0: Tensor,
    ) -> None:
        super().__init__(x0)
        self.net = net
        self.support_x, self.support_y = support_x, support_y
        self.query_x, self.query_y = query_x, query_y
        self.amplitude, self.phase = amplitude, phase

    def mse(self, x: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        return (self.net.forward(x, inputs) - targets).pow(2).mean(dim=(1, 2))

    def loss(self, x: Tensor) -> Tensor:
        return self.mse(x, self.support_x, self.support_y)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The support MSE [B] and its gradient [B, d], backpropagated by the network itself."""
        targets = self.support_y

        def mse_and_grad(outputs: Tensor) -> tuple[Tensor, Tensor]:
            diff = outputs - targets
            return diff.pow(2).mean(dim=(1, 2)), diff.mul(2.0 / (diff.shape[1] * diff.shape[2]))

        return self.net.loss_and_grad(x, self.support_x, mse_and_grad)

    def query_loss(self, x: Tensor) -> Tensor:
        return self.mse(x, self.query_x, self.query_y)

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return {"query_mse": self.query_loss(x)}


class MAMLSinusoidFamily(MAMLInitialised, TaskFamily):
    """K-shot sine regression from a meta-learned initialisation."""

    description = "K-shot sinusoid regression, 1-40-40-1 ReLU net from a MAML init (Finn et al. 2017)"
    default_action_scale = 0.01
    has_optimum = False
    has_query = True  # query_loss: MSE on the n_query held-out points

    def __init__(
        self,
        k_shot: int = 5,
        n_query: int = 100,
        init: str = "maml",
        meta_iterations: int = DEFAULT_META_ITERATIONS,
        cache_dir: str | Path | None = None,
        on_corrupt: str = "rebuild",
    ) -> None:
        self.k_shot = check_positive_int("k_shot", k_shot)
        self.n_query = check_positive_int("n_query", n_query)
        self.set_initialisation(init, meta_iterations, cache_dir, on_corrupt)
        self.net = BatchedMLP(SINE_NET)
        self.dim = self.net.num_params

    def sample_tasks(self, n: int, generator: torch.Generator, n_query: int | None = None) -> MAMLSinusoidProblem:
        """n sine tasks, all starting at zero parameters (the caller sets x0)."""
        n_query = self.n_query if n_query is None else n_query
        amplitude = _uniform((n,), AMPLITUDE_RANGE, generator)
        phase = _uniform((n,), PHASE_RANGE, generator)
        support_x = _uniform((n, self.k_shot, 1), INPUT_RANGE, generator)
        query_x = _uniform((n, n_query, 1), INPUT_RANGE, generator)

        def sine(inputs: Tensor) -> Tensor:
            return amplitude.view(-1, 1, 1) * torch.sin(inputs - phase.view(-1, 1, 1))

        x0 = torch.zeros(n, self.dim)
        return MAMLSinusoidProblem(self.net, support_x, sine(support_x), query_x, sine(query_x), amplitude, phase, x0)

    def maml_config(self) -> MAMLConfig:
        if self.init == "pretrained":
            return MAMLConfig(iterations=self.meta_iterations, inner_steps=0)
        return MAMLConfig(iterations=self.meta_iterations, first_order=self.init == "fomaml")

    def initial_parameters(self) -> Tensor:
        """The shared initialisation [d] ("maml", "fomaml", "pretrained"), from the cache or meta-trained."""
        key = {"task": "sinusoid", "net": list(SINE_NET), "k_shot": self.k_shot, "meta_query": META_TRAIN_QUERY}
        return self.cached_initial_parameters(
            "sinusoid-" + self.init, key, lambda m, g: self.sample_tasks(m, g, META_TRAIN_QUERY)
        )

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> MAMLSinusoidProblem:
        return start_instances(self.sample_tasks(n, generator), self, n, generator, device)
