"""Per-instance classification losses and accuracies of batched classifiers (B instances at once),
and the problem of training one on a set of images and testing it on held-out ones."""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o_gym.problem import Problem
from tasks.batched_mlp import BatchedMLP


def batched_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy per instance: logits [B, n, C], labels [B, n] -> [B]."""
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)


def cross_entropy_and_grad(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """`batched_cross_entropy` [B] and its gradient in the logits [B, n, C]: (softmax − one-hot) / n."""
    log_p = F.log_softmax(logits, dim=2)
    picked = log_p.gather(2, labels.unsqueeze(2))
    grad = log_p.exp().scatter_add_(2, labels.unsqueeze(2), torch.full_like(picked, -1.0))
    return -picked.squeeze(2).mean(dim=1), grad.div_(logits.shape[1])


def batched_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions per instance: logits [B, n, C], labels [B, n] -> [B]."""
    return (logits.argmax(dim=2) == labels).float().mean(dim=1)


class BatchedClassifier(Protocol):
    def forward(self, x: Tensor, inputs: Tensor) -> Tensor: ...


class HeldOutClassificationProblem(Problem):
    """B classification tasks of one batched classifier `model` (``forward(x [B, d], inputs [B, n, ...])
    -> logits [B, n, C]``): the loss is the cross-entropy on the images trained on, the query loss
    and metrics are on the held-out images. A subclass names its four `instance_fields` in the
    order (inputs trained on, their labels, held-out inputs, their labels) and the prefix of the
    held-out metrics (`held_out_name`: "<name>_accuracy", "<name>_loss")."""

    has_query = True
    held_out_name: ClassVar[str]

    def __init__(
        self, model: BatchedClassifier, fit_x: Tensor, fit_y: Tensor, held_out_x: Tensor, held_out_y: Tensor, x0: Tensor
    ) -> None:
        super().__init__(x0)
        self.model = model
        for name, value in zip(self.instance_fields, (fit_x, fit_y, held_out_x, held_out_y), strict=True):
            setattr(self, name, value)

    def fit_set(self) -> tuple[Tensor, Tensor]:
        """The images trained on [B, n, ...] and their labels [B, n]."""
        return getattr(self, self.instance_fields[0]), getattr(self, self.instance_fields[1])

    def held_out_set(self) -> tuple[Tensor, Tensor]:
        """The held-out images [B, m, ...] and their labels [B, m]."""
        return getattr(self, self.instance_fields[2]), getattr(self, self.instance_fields[3])

    def loss(self, x: Tensor) -> Tensor:
        inputs, labels = self.fit_set()
        return batched_cross_entropy(self.model.forward(x, inputs), labels)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The cross-entropy [B] and its gradient [B, d]: backpropagated by the model itself where
        it is a `BatchedMLP`, by autograd otherwise."""
        if not isinstance(self.model, BatchedMLP):
            return super().loss_and_grad(x)
        inputs, labels = self.fit_set()
        return self.model.loss_and_grad(x, inputs, lambda logits: cross_entropy_and_grad(logits, labels))

    def query_loss(self, x: Tensor) -> Tensor:
        """Cross-entropy on the held-out images [B]."""
        inputs, labels = self.held_out_set()
        return batched_cross_entropy(self.model.forward(x, inputs), labels)

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        inputs, labels = self.held_out_set()
        with torch.no_grad():
            logits = self.model.forward(x, inputs)
            return {
                f"{self.held_out_name}_accuracy": batched_accuracy(logits, labels),
                f"{self.held_out_name}_loss": batched_cross_entropy(logits, labels),
            }
