"""MAML's few-shot classification on the 40 digit pseudo-classes as a task family: l2o/MAMLDigits-v0.

An instance is one N-way K-shot episode (`tasks.digits_data`): N classes of the split ("train":
the 24 training classes; "validation" / "test": held-out classes never seen in meta-training),
K support and `n_query` query images per class, labels 0..N-1 in a random order. The parameters
are an MLP classifier 64-32-32-N (ReLU; d = 3,301 for N = 5) starting from a shared MAML
initialisation meta-trained on the training classes (`tasks.maml_training`, cached on disk).

Objective: mean cross-entropy on the N*K support images. Metrics: ``query_accuracy`` and
``query_loss`` [B] on the N*Q query images (`query_loss`, the held-out objective of
``objective="query"``).
Shapes: support_x [B, N*K, 64], support_y [B, N*K]; query_x [B, N*Q, 64], query_y [B, N*Q].

``init``: "maml" (second order), "fomaml" (first order), "pretrained" (cross-entropy on episodes
without adaptation) or "random". Meta-training: one inner step α = `inner_lr` (0.4, MAML's Omniglot
value), meta-batch 32, Adam 1e-3, `meta_iterations` iterations.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int
from tasks.batched_mlp import BatchedMLP
from tasks.checked_settings import keep_checked
from tasks.classification import HeldOutClassificationProblem
from tasks.digits_data import NUM_FEATURES, digit_classes
from tasks.maml_training import MAMLConfig, MAMLInitialised, start_instances
from tasks.split_family import SplitTaskFamily

HIDDEN = (32, 32)


class MAMLDigitsProblem(HeldOutClassificationProblem):
    """B episodes; loss = support cross-entropy [B]; metrics on the query images."""

    instance_fields = ("support_x", "support_y", "query_x", "query_y")
    held_out_name = "query"


class MAMLDigitsFamily(MAMLInitialised, SplitTaskFamily):
    """N-way K-shot digit episodes from a meta-learned initialisation."""

    description = "N-way K-shot classification on 40 digit pseudo-classes, MLP from a MAML init (Finn et al. 2017)"
    default_action_scale = 0.1
    has_optimum = False
    has_query = True  # query_loss: cross-entropy on the N*Q query images

    def __init__(
        self,
        n_way: int = 5,
        k_shot: int = 1,
        n_query: int = 15,
        init: str = "maml",
        meta_iterations: int = 3000,
        inner_lr: float = 0.4,
        cache_dir: str | Path | None = None,
        on_corrupt: str = "rebuild",
    ) -> None:
        keep_checked(self, check_positive_int, n_way=n_way, k_shot=k_shot, n_query=n_query)
        if not inner_lr > 0:
            raise ValueError(f"inner_lr must be > 0, got {inner_lr!r}")
        self.inner_lr = float(inner_lr)
        self.set_initialisation(init, meta_iterations, cache_dir, on_corrupt)
        self.net = BatchedMLP((NUM_FEATURES, *HIDDEN, n_way))
        self.dim = self.net.num_params

    def sample_tasks(self, n: int, generator: torch.Generator, split: str) -> MAMLDigitsProblem:
        """n episodes of `split`'s classes, starting at zero parameters (the caller sets x0)."""
        episodes = digit_classes(split).sample_episodes(n, self.n_way, self.k_shot, self.n_query, generator)
        return MAMLDigitsProblem(self.net, *episodes, torch.zeros(n, self.dim))

    def maml_config(self) -> MAMLConfig:
        steps = 0 if self.init == "pretrained" else 1
        return MAMLConfig(
            iterations=self.meta_iterations,
            meta_batch=32,
            inner_steps=steps,
            inner_lr=self.inner_lr,
            first_order=self.init == "fomaml",
        )

    def initial_parameters(self) -> Tensor:
        """The shared initialisation [d] meta-trained on the training classes (cached)."""
        key = {"task": "digits", "net": list(self.net.sizes), "k_shot": self.k_shot, "n_query": self.n_query}
        name = f"digits{self.n_way}way-{self.init}"
        return self.cached_initial_parameters(name, key, lambda m, g: self.sample_tasks(m, g, "train"))

    def sample_split_instances(
        self, n: int, generator: torch.Generator, split: str, device: torch.device
    ) -> MAMLDigitsProblem:
        return start_instances(self.sample_tasks(n, generator, split), self, n, generator, device)
