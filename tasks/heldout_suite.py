"""The held-out task suite: test-only ids that no training family contains.

Problems built from scikit-learn's bundled tables (`tasks.table_models`: linear models and small
MLPs, classification and regression, full-batch and minibatch) and shifted standard test functions
in several dimensions (`tasks.test_functions`). Every family refuses the "train" split, so no
policy can be trained on them; "validation" (disjoint rows, or its own seed stream) serves only to
tune the baselines, "test" to score. `SUITE_GROUPS` sorts the ids into the task families the
suite's report gives one row each (docs/heldout_suite.md, benchmarks/heldout_suite.py).

This module imports nothing heavy: `register_heldout_suite` registers string entry points with
their keyword arguments; the families are built only when an id is made.
"""

from __future__ import annotations

from typing import Any

TABLES = "tasks.table_models:TableModelFamily"
FUNCTIONS = "tasks.test_functions:ShiftedTestFunctionFamily"

# id -> (entry point, family keywords)
HELDOUT_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    "l2o/HeldoutIrisSoftmax-v0": (TABLES, {"dataset": "iris"}),
    "l2o/HeldoutWineSoftmax-v0": (TABLES, {"dataset": "wine"}),
    "l2o/HeldoutBreastCancerLogistic-v0": (TABLES, {"dataset": "breast_cancer"}),
    "l2o/HeldoutDiabetesRidge-v0": (TABLES, {"dataset": "diabetes"}),
    "l2o/HeldoutBreastCancerLogisticMinibatch-v0": (TABLES, {"dataset": "breast_cancer", "batch_size": 32}),
    "l2o/HeldoutDigitsSoftmaxMinibatch-v0": (TABLES, {"dataset": "digits", "batch_size": 64}),
    "l2o/HeldoutDiabetesRidgeMinibatch-v0": (TABLES, {"dataset": "diabetes", "batch_size": 32}),
    "l2o/HeldoutIrisMLP-v0": (TABLES, {"dataset": "iris", "hidden": 8}),
    "l2o/HeldoutWineMLP-v0": (TABLES, {"dataset": "wine", "hidden": 8}),
    "l2o/HeldoutDiabetesMLP-v0": (TABLES, {"dataset": "diabetes", "hidden": 16}),
    "l2o/HeldoutBreastCancerMLPMinibatch-v0": (TABLES, {"dataset": "breast_cancer", "hidden": 16, "batch_size": 32}),
    "l2o/HeldoutRastrigin2-v0": (FUNCTIONS, {"kind": "rastrigin", "dim": 2}),
    "l2o/HeldoutRastrigin10-v0": (FUNCTIONS, {"kind": "rastrigin", "dim": 10}),
    "l2o/HeldoutStyblinskiTang2-v0": (FUNCTIONS, {"kind": "styblinski_tang", "dim": 2}),
    "l2o/HeldoutStyblinskiTang10-v0": (FUNCTIONS, {"kind": "styblinski_tang", "dim": 10}),
    "l2o/HeldoutBeale-v0": (FUNCTIONS, {"kind": "beale", "dim": 2}),
}

# The training side of the protocol: one policy trained on a mixture of the training families
# (tasks/mixture_family.py), then scored on the held-out ids above, which it never saw.
TRAINING_MIXTURE_ID = "l2o/TrainingMixture-v0"
TRAINING_MIXTURE: tuple[str, dict[str, Any]] = (
    "tasks.mixture_family:MixtureFamily",
    {
        "members": [
            "l2o/LogisticRegression-v0",
            "l2o/RobustLinearRegression-v0",
            "l2o/TwoLayerNet-v0",
            "l2o/Quadratic-v0",
        ],
        "action_scale": 1.0,
    },
)

SUITE_GROUPS: dict[str, tuple[str, ...]] = {
    "linear, full batch": (
        "l2o/HeldoutIrisSoftmax-v0",
        "l2o/HeldoutWineSoftmax-v0",
        "l2o/HeldoutBreastCancerLogistic-v0",
        "l2o/HeldoutDiabetesRidge-v0",
    ),
    "linear, minibatch": (
        "l2o/HeldoutBreastCancerLogisticMinibatch-v0",
        "l2o/HeldoutDigitsSoftmaxMinibatch-v0",
        "l2o/HeldoutDiabetesRidgeMinibatch-v0",
    ),
    "MLP": (
        "l2o/HeldoutIrisMLP-v0",
        "l2o/HeldoutWineMLP-v0",
        "l2o/HeldoutDiabetesMLP-v0",
        "l2o/HeldoutBreastCancerMLPMinibatch-v0",
    ),
    "test functions": (
        "l2o/HeldoutRastrigin2-v0",
        "l2o/HeldoutRastrigin10-v0",
        "l2o/HeldoutStyblinskiTang2-v0",
        "l2o/HeldoutStyblinskiTang10-v0",
        "l2o/HeldoutBeale-v0",
    ),
}


def register_heldout_suite() -> None:
    """Register every held-out id and the training mixture (skipping ids already registered)."""
    import gymnasium as gym

    from l2o_gym.registry import register_family

    for env_id, (entry_point, kwargs) in HELDOUT_IDS.items():
        if env_id not in gym.registry:
            register_family(env_id, entry_point, split="test", **kwargs)
    if TRAINING_MIXTURE_ID not in gym.registry:
        register_family(TRAINING_MIXTURE_ID, TRAINING_MIXTURE[0], **TRAINING_MIXTURE[1])


def is_heldout(env_id: str) -> bool:
    """Whether `env_id` belongs to the held-out (test-only) suite."""
    return env_id in HELDOUT_IDS


SUITES: dict[str, tuple[str, ...]] = {"heldout": tuple(HELDOUT_IDS)}


def add_suite_option(parser: Any) -> None:
    """Register ``--suite NAME`` on an argparse parser (``l2o-gym evaluate``)."""
    parser.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default=None,
        help="evaluate on every id of a suite (heldout: the test-only held-out families, each with its own "
        "tuned baselines; policies must not have been trained on any of them)",
    )
    parser.add_argument(
        "--leave-one-out",
        action="store_true",
        help="refuse a policy evaluated on a family it was trained on (its metadata's env id, or a mixture "
        "member its run kept; train on l2o/TrainingMixture-v0 with env: {leave_out: ID} to evaluate on ID)",
    )


def suite_env_ids(suite: str | None, env_ids: list[str]) -> list[str]:
    """`env_ids` followed by the suite's ids (each once)."""
    extra = SUITES[suite] if suite is not None else ()
    return [*env_ids, *(e for e in extra if e not in env_ids)]


def check_unseen(policies: dict[str, Any], env_ids: list[str]) -> None:
    """Leave-one-family-out: a ValueError if a policy was trained on a family it is evaluated on
    (its metadata's env_id or env_ids, and for a mixture the members it kept:
    `tasks.leave_one_out.trained_families`)."""
    from tasks.leave_one_out import trained_families

    for name, rule in policies.items():
        seen = sorted(trained_families(getattr(rule, "meta", None) or {}) & set(env_ids))
        if seen:
            raise ValueError(
                f"policy {name!r} was trained on {', '.join(seen)}: a held-out evaluation needs families it never saw"
            )


def check_heldout_split(env_ids: list[str], split: str) -> None:
    """A ValueError if a held-out id is asked for its (non-existent) training split."""
    heldout = [e for e in env_ids if is_heldout(e)]
    if split == "train" and heldout:
        raise ValueError(f"{heldout[0]} is a held-out (test-only) task: use --split test (or validation)")


def check_trainable(env_id: str) -> str:
    """`env_id`, or a ValueError if it is a held-out id (its registered episodes serve the test split)."""
    if is_heldout(env_id):
        raise ValueError(
            f"{env_id} is a held-out (test-only) task: train on training families, e.g. {TRAINING_MIXTURE_ID}"
        )
    return env_id
