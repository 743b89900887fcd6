"""The environment ids of the built-in task families, registered beside their code.

Each id points at its family by a string entry point ("module:Class"), so registering imports no
task module: a family is imported when an environment of its id is made. l2o_gym calls
`register_envs` when it is imported, through the ``l2o_gym.envs`` entry-point group that
pyproject.toml declares (``builtin = "tasks.registration:register_envs"``); a package of new tasks
registers its own ids the same way.
"""

from __future__ import annotations

from l2o_gym.registry import register_family

BUILTIN_TASKS: dict[str, str] = {
    "l2o/Quadratic-v0": "tasks.quadratic:QuadraticFamily",
    "l2o/Rosenbrock-v0": "tasks.rosenbrock:RosenbrockFamily",
    "l2o/LogisticRegression-v0": "tasks.logistic_regression:LogisticRegressionFamily",
    "l2o/RobustLinearRegression-v0": "tasks.robust_linear_regression:RobustLinearRegressionFamily",
    "l2o/TwoLayerNet-v0": "tasks.two_layer_net:TwoLayerNetFamily",
    "l2o/MAMLSinusoid-v0": "tasks.maml_sinusoid:MAMLSinusoidFamily",
    "l2o/MAMLDigits-v0": "tasks.maml_digits:MAMLDigitsFamily",
    "l2o/MANNDigits-v0": "tasks.mann_digits:MANNDigitsFamily",
    "l2o/HyperNetDigits-v0": "tasks.hypernet_digits:HyperNetDigitsFamily",
}


def register_envs() -> None:
    """Register every built-in id not registered yet (calling it again changes nothing)."""
    import gymnasium as gym

    for env_id, entry_point in BUILTIN_TASKS.items():
        if env_id not in gym.registry:
            register_family(env_id, entry_point)
    from tasks.heldout_suite import register_heldout_suite

    register_heldout_suite()  # the test-only ids, listed in tasks/heldout_suite.py
