"""What a learned policy is compared against, instance by instance: its own imitation teacher and
the best tuned one-evaluation-per-step hand-designed rule.

A policy saved by `agents.rl.sb3_training.train_sb3` lies in ``<run>/best_model`` or
``<run>/model``; the run folder's ``hyperparams.yaml`` holds the ``imitation`` settings its warm
start imitated. The teacher is rebuilt from them exactly as the warm start built it
(`imitation_teacher`: tuned on the run's env at the longest training horizon). Runs without an
imitation warm start have no teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from l2o_gym.evaluation import EvaluationResult, best_one_evaluation_rule, compare
from l2o_gym.metrics import PairedComparison
from l2o_gym.update_rule import UpdateRule

HYPERPARAMS_FILE = "hyperparams.yaml"
COMPARE_TEACHER = "teacher"
COMPARE_BEST = "best"


def run_settings(policy_path: str | Path) -> dict[str, Any] | None:
    """The training settings of the run a saved policy belongs to (its folder's parent's
    hyperparams.yaml), or None where there is none."""
    path = Path(policy_path).resolve().parent / HYPERPARAMS_FILE
    if not path.is_file():
        return None
    settings = yaml.safe_load(path.read_text())
    return settings if isinstance(settings, dict) else None


def teacher_label(policy_name: str, imitation: Mapping[str, Any]) -> str:
    """How a policy's teacher is named in reports, e.g. "ppo's teacher (nesterov)"."""
    teacher = str(imitation.get("teacher", "momentum"))
    if "opening" in imitation:
        teacher = f"{imitation['opening']} for {imitation.get('opening_steps', 20)} steps, then {teacher}"
    return f"{policy_name}'s teacher ({teacher})"


def run_teacher(policy_name: str, policy_path: str | Path) -> tuple[str, UpdateRule] | None:
    """(label, rule) of the teacher the policy's warm start imitated, or None (no imitation)."""
    from agents.rl.sb3_training import imitation_teacher

    settings = run_settings(policy_path)
    if settings is None or not isinstance(settings.get("imitation"), dict):
        return None
    horizon = settings.get("env", {}).get("horizon", 40)
    horizon = max(horizon) if isinstance(horizon, (list, tuple)) else int(horizon)
    imitation = settings["imitation"]
    return teacher_label(policy_name, imitation), imitation_teacher(imitation, settings["env_id"], horizon)


def teacher_rules(policy_paths: Mapping[str, str | Path]) -> dict[str, tuple[str, UpdateRule]]:
    """policy name -> (teacher label, teacher rule), for the policies whose run imitated a teacher."""
    teachers = {}
    for name, path in policy_paths.items():
        found = run_teacher(name, path)
        if found is not None:
            teachers[name] = found
    return teachers


def compare_policies(
    result: EvaluationResult,
    policies: Sequence[str],
    compare_to: Sequence[str],
    hand_designed: Sequence[str],
    teachers: Mapping[str, str] | None = None,
) -> list[PairedComparison]:
    """Pair every policy against each `compare_to` entry: a method of the result, `teacher` (the
    policy's own teacher, labelled by `teachers[policy]`, skipped where it has none) or `best` (the
    best of `hand_designed` by mean cost among those using one evaluation per step). The
    comparisons are kept in `result.comparisons` and returned."""
    teachers = dict(teachers or {})
    best = best_one_evaluation_rule(result, hand_designed)
    comparisons = []
    for policy in policies:
        for target in compare_to:
            against = {COMPARE_TEACHER: teachers.get(policy), COMPARE_BEST: best}.get(target, target)
            if against is None or against == policy:
                continue
            comparisons.append(compare(result, policy, against))
    return comparisons
