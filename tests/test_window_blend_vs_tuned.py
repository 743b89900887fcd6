"""The mean-cost benchmark's pairing and page figures."""

from __future__ import annotations

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.meta.window_blend_rule import WindowBlendOptimizer, WindowBlendParameters
from benchmarks.window_blend_vs_tuned import goal_lines, paired_rows, parse_args, up_to
from l2o_gym.unroll import Curves

TEACHER = {"lr": 1.0, "max_step": 0.25, "gd_lr": 1.0}


def test_the_teacher_itself_ties_and_is_not_ahead() -> None:
    problem = l2o_gym.make_family("l2o/TwoLayerNet-v0").sample(6, torch.Generator().manual_seed(0), "validation")
    hand = {
        f"{name}@{horizon}": make_optimizer(name, **(TEACHER if name == "window_qn" else {"lr": 0.3}))
        for name in ("window_qn", "adam")
        for horizon in (40, 100)
    }
    rule = WindowBlendOptimizer(WindowBlendParameters(TEACHER, horizon=100))  # θ = 0: window_qn exactly
    rows = paired_rows(rule, problem, hand, problem.optimum())
    assert {(r["against"], r["horizon"]) for r in rows} == {(name, h) for name in hand for h in (40, 100)}
    for row in rows:
        if row["against"].startswith("window_qn"):
            assert row["difference"] == 0 and row["se"] == 0 and row["wins"] == 0 and row["ties"] == 6
    line = goal_lines([{"seed": 0, "test": rows}]).splitlines()
    assert len(line) == 2 and all(row.endswith("| no |") for row in line)  # equal to the lowest: not ahead


def test_a_curve_cut_at_a_horizon_counts_only_the_divergence_before_it() -> None:
    objectives = torch.ones(101, 2)
    curves = Curves(objectives, torch.tensor([True, False]), torch.tensor([60, -1]), None, {})
    assert up_to(curves, 40).diverged.tolist() == [False, False]
    assert up_to(curves, 100).diverged.tolist() == [True, False]
    assert up_to(curves, 40).objectives.shape == (41, 2)


def test_bad_arguments_exit_2_with_one_line() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--seeds", "a,b"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        parse_args(["--family", "logistic"])
    with pytest.raises(SystemExit):
        parse_args(["--sigma", "0"])
