"""Task families whose instances depend on the split itself, not only on its seed stream.

The digits families draw "train" instances from the training classes and "validation" / "test"
instances from held-out classes (`tasks.digits_data`). `TaskFamily.sample_instances` is not told
the split, so these families implement `sample_split_instances(n, generator, split, device)`;
`sample` derives the split's generator exactly as `TaskFamily.sample` does (disjoint streams).
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from l2o_gym.problem import Problem, TaskFamily, check_split, split_seed


class SplitTaskFamily(TaskFamily):
    """A TaskFamily whose instances come from split-specific data (e.g. held-out classes)."""

    @abstractmethod
    def sample_split_instances(self, n: int, generator: torch.Generator, split: str, device: torch.device) -> Problem:
        """Draw n instances of `split` from `generator` onto `device`."""

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> Problem:
        """Training-split instances (use `sample` to choose the split)."""
        return self.sample_split_instances(n, generator, "train", device)

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        split: str = "train",
        device: str | torch.device = "cpu",
    ) -> Problem:
        """n instances of `split`, from a generator seeded in that split's stream (as TaskFamily.sample)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        check_split(split)
        base = int(torch.randint(0, 2**62, (1,), generator=generator))
        instance_generator = torch.Generator().manual_seed(split_seed(base, split))
        problem = self.sample_split_instances(n, instance_generator, split, torch.device(device))
        if problem.dim != self.dim or problem.batch_size != n:
            raise RuntimeError(f"{type(self).__name__} returned {problem!r}, expected batch_size={n}, dim={self.dim}")
        return problem
