"""The environment forms over the one batched core."""

from l2o_gym.envs.optimization_env import OptimizationEnv
from l2o_gym.envs.optimization_vector_env import OptimizationVectorEnv

__all__ = ["OptimizationEnv", "OptimizationVectorEnv"]
