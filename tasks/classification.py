"""Per-instance classification losses and accuracies of batched classifiers (B instances at once)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def batched_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy per instance: logits [B, n, C], labels [B, n] -> [B]."""
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)


def batched_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions per instance: logits [B, n, C], labels [B, n] -> [B]."""
    return (logits.argmax(dim=2) == labels).float().mean(dim=1)
