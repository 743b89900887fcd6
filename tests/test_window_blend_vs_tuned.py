"""The mean-cost benchmark's pairing and page figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.meta.window_blend_rule import WindowBlendOptimizer, WindowBlendParameters
from benchmarks.beyond_warm_start import FAMILIES
from benchmarks.window_blend_vs_tuned import (
    FAMILY_NAMES,
    TEACHER_SETTINGS,
    TEACHERS,
    goal_lines,
    paired_rows,
    parse_args,
    teacher_label,
    teacher_settings,
    up_to,
    write_page,
)
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
        parse_args(["--family", "mnist"])
    with pytest.raises(SystemExit):
        parse_args(["--sigma", "0"])


@pytest.mark.parametrize("family", ["two_layer", "robust", "logistic", "quadratic", "rosenbrock"])
def test_every_classic_family_is_accepted_with_a_window_qn_teacher_and_a_section(family: str) -> None:
    assert parse_args(["--family", family, "--collect"]).family == family
    assert TEACHERS[family][0] == "window_qn" and TEACHERS[family][1] in (40, 100)
    assert family in FAMILIES and f"{FAMILIES[family]})" in FAMILY_NAMES[family]


def test_a_teacher_given_by_its_settings_is_a_window_qn_setting_labelled_on_the_page() -> None:
    for family, (label, hparams) in TEACHER_SETTINGS.items():
        assert family in TEACHERS and teacher_label(family) == label
        settings = teacher_settings(family)
        assert settings == hparams and settings is not hparams  # a copy: the rule may not change the table
        WindowBlendParameters(settings, horizon=100)  # the blend accepts it as its teacher
    assert teacher_label("two_layer") == "window_qn@100"


def test_the_es_scale_is_the_familys_unless_given() -> None:
    assert parse_args(["--family", "quadratic"]).sigma == 0.05  # σ = 0.2 raised its validation cost
    assert parse_args(["--family", "rosenbrock"]).sigma == 0.2
    assert parse_args(["--family", "quadratic", "--sigma", "0.3"]).sigma == 0.3
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--family", "quadratic", "--sigma", "-1"])
    assert exit_info.value.code == 2


def test_an_unknown_family_exits_2_naming_the_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--family", "Rosenbrock"])
    assert exit_info.value.code == 2
    assert "--family" in capsys.readouterr().err.strip().splitlines()[-1]


def teacher_result(seed: int) -> dict:
    """A results.json of the teacher itself (θ = 0) against tuned window_qn on 4 two-layer instances."""
    problem = l2o_gym.make_family("l2o/TwoLayerNet-v0").sample(4, torch.Generator().manual_seed(0), "validation")
    hand = {f"window_qn@{h}": make_optimizer("window_qn", **TEACHER) for h in (40, 100)} | {
        f"adam@{h}": make_optimizer("adam", lr=0.3) for h in (40, 100)
    }
    rule = WindowBlendOptimizer(WindowBlendParameters(TEACHER, horizon=100))
    rows = paired_rows(rule, problem, hand, problem.optimum())
    training = {
        "seed": seed, "cpu_s": 1.0, "iterations": 1, "instances": 2, "sigma": 0.2, "meta_lr": 0.01,
        "es_validation_instances": 4, "best_iteration": 0, "validations": [[0, 1.0]],
        "theta": [0.0] * 12, "teacher": "window_qn@100", "hparams": TEACHER,
    }  # fmt: skip
    return {"seed": seed, "training": training, "validation": rows, "test": rows}


def test_the_page_keeps_the_sections_of_families_without_results_and_replaces_the_others(tmp_path: Path) -> None:
    docs = tmp_path / "page.md"
    robust, two_layer = f"## {FAMILY_NAMES['robust']}", f"## {FAMILY_NAMES['two_layer']}"
    old_robust = f"{robust}\n\nold robust table\n\n### Training\n\n| 0 | 49 |\n"
    docs.write_text(f"# old title\n\n{two_layer}\n\nold net table\n\n{old_robust}\n## Notes\n\nkept notes\n")
    args = parse_args(["--collect", "--runs", str(tmp_path / "runs"), "--docs", str(docs)])
    page = write_page(args)  # no results at all: both sections kept as they were
    assert "old net table" in page and old_robust in page and page.endswith("## Notes\n\nkept notes\n")
    assert page.index(two_layer) < page.index(robust) < page.index("## Notes")
    folder = tmp_path / "runs" / "two_layer" / "seed3"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(teacher_result(3)))
    page = write_page(args)  # the net re-run: its section replaced, robust's kept, nothing else added
    assert "old net table" not in page and "| 3 | 40 |" in page and old_robust in page
    assert page.count(two_layer) == 1 and page.count(robust) == 1 and page.count("## Notes") == 1
    assert FAMILY_NAMES["logistic"] not in page and page.endswith("kept notes\n")
    assert docs.read_text() == page
