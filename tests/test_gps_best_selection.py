"""How train_gps chooses best/ with `select_best: wins_vs_adam` (agents.gps.best_selection)."""

from __future__ import annotations

import pytest
import torch

from agents.gps.best_selection import WinsAgainstAdam, paired_win_rate, step_costs
from agents.gps.family_options import FamilyOptions
from agents.gps.options import GPSOptions
from agents.gps.training import train_gps
from agents.hand_designed import Momentum
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym.registry import make_family
from tests.test_gps_training import TINY

ENV = "l2o/LogisticRegression-v0"  # TINY's family


def test_bad_selection_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match=r"select_best must be one of \('cost', 'wins_vs_adam'\), got 'median'"):
        GPSOptions(select_best="median")
    with pytest.raises(ValueError, match="selection_instances must be a positive integer, got 0"):
        GPSOptions(selection_instances=0)
    with pytest.raises(ValueError, match="select_best") as err:
        FamilyOptions.from_mapping({"shared": {"select_best": "wins"}}, [ENV]).options_for(ENV, 0)
    assert "\n" not in str(err.value)
    assert GPSOptions.from_dict({"select_best": "wins_vs_adam"}).select_best == "wins_vs_adam"


def test_paired_win_rate_counts_ties_half() -> None:
    ours = torch.tensor([1.0, 2.0, 3.0, float("inf")])
    theirs = torch.tensor([2.0, 2.0, 1.0, float("inf")])
    assert paired_win_rate(ours, theirs) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)


def test_step_costs_are_prefix_sums_and_a_diverged_run_costs_inf() -> None:
    problem = make_family(ENV).sample(4, torch.Generator().manual_seed(0), "validation")
    costs = step_costs(Momentum(lr=0.1, momentum=0.5), problem, 7, 25)
    assert costs.shape == (7, 4)
    assert torch.isfinite(costs).all() and (costs[1:] > costs[:-1]).all()
    blown = step_costs(Momentum(lr=1e6, momentum=0.9), problem, 7, 25)
    assert torch.isinf(blown[-1]).all()


def test_selection_instances_are_not_the_benchmarks_validation_instances(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("L2O_GYM_CACHE", str(tmp_path))
    family = make_family(ENV)
    selector = WinsAgainstAdam(ENV, family, 8, (5, 3), seed=0, history=25)
    assert selector.horizons == (3, 5) and len(selector.adam) == 2
    benchmark = family.sample(200, torch.Generator().manual_seed(0), "validation")
    distances = torch.cdist(selector.problem.x0.double(), benchmark.x0.double())
    assert distances.min() > 1e-6


def test_wins_vs_adam_chooses_best_by_its_score(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("L2O_GYM_CACHE", str(tmp_path / "cache"))
    choice = {"iterations": 2, "validation_horizon": 9, "select_best": "wins_vs_adam", "selection_instances": 12}
    options = GPSOptions(**{**TINY, **choice})
    best = train_gps(ENV, tmp_path / "run", options, progress=False)
    recorded = read_meta(best)["training"]
    selector = WinsAgainstAdam(ENV, make_family(ENV), 12, (6, 9), seed=0, history=25)
    assert recorded["selection_score"] == pytest.approx(-selector.score(load_rule(best)))
    final = read_meta(tmp_path / "run" / "final")["training"]
    assert final["selection_score"] >= recorded["selection_score"]
