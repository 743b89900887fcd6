"""Task families whose instances depend on the split itself, not only on its seed stream.

The digits families draw "train" instances from the training classes and "validation" / "test"
instances from held-out classes (`tasks.digits_data`): they implement
`sample_split_instances(n, generator, split, device)`, which `TaskFamily.sample` calls with the
split's own generator (disjoint seed streams).
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from l2o_gym.problem import Problem, TaskFamily


class SplitTaskFamily(TaskFamily):
    """A TaskFamily whose instances come from split-specific data (e.g. held-out classes)."""

    @abstractmethod
    def sample_split_instances(self, n: int, generator: torch.Generator, split: str, device: torch.device) -> Problem:
        """Draw n instances of `split` from `generator` onto `device`."""

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> Problem:
        """Training-split instances (use `sample` to choose the split)."""
        return self.sample_split_instances(n, generator, "train", device)
