"""l2o_gym: optimization problems as Gymnasium environments, for learned optimizers.

Importing it registers the environment ids that installed packages declare in the ``l2o_gym.envs``
entry-point group (the project's own tasks among them) without importing any task family
(see `l2o_gym.registry`).
"""

from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.evaluation import EvaluationResult, evaluate
from l2o_gym.problem import SPLITS, Problem, TaskFamily
from l2o_gym.registry import (
    l2o_env_ids,
    make_family,
    make_sb3_vec_env,
    register_envs_from_entry_points,
    register_family,
    register_objective,
)
from l2o_gym.state import OptimizationState

__version__ = "0.4.0"  # 0.4: rows may carry time features; 0.3: quasi-Newton features; 0.2: 2H + 9 features

register_envs_from_entry_points()

__all__ = [
    "SPLITS",
    "EpisodeBatch",
    "EvaluationResult",
    "evaluate",
    "OptimizationState",
    "Problem",
    "TaskFamily",
    "l2o_env_ids",
    "make_family",
    "make_sb3_vec_env",
    "register_family",
    "register_objective",
    "__version__",
]
