"""Module-level objectives and a family for the plug-in tests (module level so envs pickle)."""

import torch

from l2o_gym.problem import Problem, TaskFamily


def sphere(x: torch.Tensor) -> torch.Tensor:
    return (x - 1.0).pow(2).sum()


def not_scalar(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0


class ShiftedSphereProblem(Problem):
    instance_fields = ("center",)

    def __init__(self, center, x0):
        super().__init__(x0)
        self.center = center

    def loss(self, x):
        return (x - self.center).pow(2).sum(dim=1)


class ShiftedSphereFamily(TaskFamily):
    description = "spheres with random centres"

    def __init__(self, dim: int = 3):
        self.dim = dim

    def sample_instances(self, n, generator, device):
        center = torch.randn(n, self.dim, generator=generator)
        return ShiftedSphereProblem(center.to(device), torch.zeros(n, self.dim, device=device))
