"""Tuning: picks the obviously best learning rate on the same instances, saves and reuses settings,
and rejects bad input before any work."""

from __future__ import annotations

import json

import pytest
import torch

import agents.hand_designed.tuning as tuning
from agents.hand_designed import make_optimizer
from agents.hand_designed.tuning import (
    DIVERGED_COST_PER_STEP,
    TunedSetting,
    default_cache_path,
    li_malik_cost,
    load_tuned,
    save_tuned,
    tune,
    tuned_optimizer,
)
from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.unroll import Curves, unroll


class HalfSquareProblem(Problem):
    """f(x) = ½ s ||x||²  per instance (Hessian s I): gradient descent with lr = 1/s solves it in one step."""

    instance_fields = ()

    def __init__(self, x0, scale):
        super().__init__(x0)
        self.scale = scale

    def loss(self, x):
        return 0.5 * self.scale * x.pow(2).sum(dim=1)


class HalfSquareFamily(TaskFamily):
    """Counts how often it is sampled."""

    def __init__(self, dim=3, scale=4.0):
        self.dim, self.scale = dim, scale
        self.samples = 0

    def sample_instances(self, n, generator, device):
        self.samples += 1
        return HalfSquareProblem(torch.randn(n, self.dim, generator=generator) + 1.0, self.scale)


def test_tune_picks_the_obvious_learning_rate():
    family = HalfSquareFamily(scale=4.0)
    grid = {"lr": [0.01, 0.05, 0.25, 0.45, 1.0]}  # 0.25 = 1/s is exact; 1.0 diverges
    setting = tune("gd", family, grid=grid, instances=8, horizon=10, seed=3)
    assert setting.hparams == {"lr": 0.25}
    assert setting.score == pytest.approx(0.0, abs=1e-6)
    assert family.samples == 1  # every grid point ran on the same instances
    assert (setting.name, setting.horizon, setting.split, setting.env_id) == ("gd", 10, "validation", None)
    assert setting.family.endswith(":HalfSquareFamily") and setting.family_kwargs["scale"] == 4.0


def test_tune_momentum_grid_and_score_is_the_mean_cost():
    family = HalfSquareFamily(scale=1.0)
    grid = {"lr": [0.1, 0.5], "momentum": [0.0, 0.5]}
    setting = tune("momentum", family, grid=grid, instances=4, horizon=5, seed=0)
    problem = HalfSquareFamily(scale=1.0).sample(4, torch.Generator().manual_seed(0), "validation")
    scores = {
        (lr, m): float(li_malik_cost(unroll(make_optimizer("momentum", lr=lr, momentum=m), problem, 5)).mean())
        for lr in grid["lr"]
        for m in grid["momentum"]
    }
    best = min(scores, key=scores.get)
    assert (setting.hparams["lr"], setting.hparams["momentum"]) == best
    assert setting.score == pytest.approx(scores[best])


def test_li_malik_cost_counts_divergence():
    objectives = torch.tensor([[2.0, 4.0], [1.0, 4.0], [0.5, 4.0]])
    curves = Curves(objectives, torch.tensor([False, True]), torch.tensor([-1, 1]), None, {})
    cost = li_malik_cost(curves)
    assert cost[0].item() == pytest.approx(0.75)
    assert cost[1].item() == pytest.approx(2.0 + DIVERGED_COST_PER_STEP * 2)


def test_save_load_round_trip(tmp_path):
    a = TunedSetting("adam", {"lr": 0.1}, 3.5, "l2o/LogisticRegression-v0", 40, "validation", "m:C", {"dim": 3}, 100, 0)
    b = TunedSetting("gd", {"lr": 1.0}, 7.0, None, 20, "validation", "m:D", {}, 10, 1)
    path = save_tuned([a, b], tmp_path / "sub" / "tuned.json")
    assert load_tuned(path) == [a, b]
    assert json.loads(path.read_text())["format"] == tuning.CACHE_FORMAT


def test_cache_reused_without_retuning(tmp_path, monkeypatch):
    path = tmp_path / "tuned.json"
    calls = []
    real_tune = tuning.tune

    def counting_tune(*args, **kwargs):
        calls.append(kwargs)
        return real_tune(*args, **kwargs)

    monkeypatch.setattr(tuning, "tune", counting_tune)
    grid = {"lr": [0.1, 1.0]}
    first = tuned_optimizer("adam", "l2o/Quadratic-v0", 5, path, family_kwargs={"dim": 3}, grid=grid, instances=4)
    again = tuned_optimizer("adam", "l2o/Quadratic-v0", 5, path, family_kwargs={"dim": 3}, grid=grid, instances=4)
    assert len(calls) == 1 and first.hparams == again.hparams
    tuned_optimizer("adam", "l2o/Quadratic-v0", 6, path, family_kwargs={"dim": 3}, grid=grid, instances=4)
    tuned_optimizer("adam", "l2o/Quadratic-v0", 5, path, family_kwargs={"dim": 4}, grid=grid, instances=4)
    tuned_optimizer("gd", "l2o/Quadratic-v0", 5, path, family_kwargs={"dim": 3}, grid=grid, instances=4)
    assert len(calls) == 4  # another horizon, family kwargs or optimizer is another key
    settings = load_tuned(path)
    assert len(settings) == 4 and {s.env_id for s in settings} == {"l2o/Quadratic-v0"}


def test_default_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("L2O_GYM_CACHE", str(tmp_path))
    assert default_cache_path() == tmp_path / "tuned.json"
    monkeypatch.delenv("L2O_GYM_CACHE")
    assert default_cache_path().parts[-3:] == (".cache", "l2o_gym", "tuned.json")


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("sgd", {}, "unknown optimizer"),
        ("gd", {"grid": {}}, "non-empty"),
        ("gd", {"grid": {"lr": []}}, "non-empty"),
        ("gd", {"grid": {"momentum": [0.9]}}, "unknown hyperparameter"),
        ("gd", {"grid": {"lr": [-1.0]}}, "lr"),
        ("gd", {"horizon": 0}, "horizon"),
        ("gd", {"instances": 0}, "instances"),
        ("gd", {"split": "dev"}, "split"),
    ],
)
def test_bad_input_errors_before_any_work(name, kwargs, match):
    family = HalfSquareFamily()
    with pytest.raises(ValueError, match=match):
        tune(name, family, **kwargs)
    assert family.samples == 0


def test_bad_cache_and_family(tmp_path):
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a tuned-settings file"):
        load_tuned(foreign)
    with pytest.raises(ValueError, match="not a tuned-settings JSON"):
        (tmp_path / "bad.json").write_text("{")
        load_tuned(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="unknown optimizer"):
        tuned_optimizer("nope", "l2o/Quadratic-v0", 5, foreign)
    with pytest.raises(TypeError, match="family"):
        tune("gd", 42)
