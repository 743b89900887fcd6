"""Your own optimizer (a torch.optim class or an UpdateRule, by import path) evaluated like the baselines."""

import copy

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.runtime.cli_rules import parse_rule_options
from agents.runtime.user_rules import TorchOptimizerRule, parse_rule_spec, rule_from_spec, tune_rule
from l2o_gym.unroll import unroll
from l2o_gym.update_rule import UpdateRule
from train_agent import main


def _problem(n: int = 6):
    family = l2o_gym.make_family("l2o/LogisticRegression-v0")
    return family.sample(n, torch.Generator().manual_seed(0), split="test")


def test_a_torch_optim_class_by_path_matches_the_built_in_rule():
    problem = _problem()
    ours = unroll(rule_from_spec("torch.optim.Adam(lr=0.05)"), copy.deepcopy(problem), 30)
    built_in = unroll(make_optimizer("adam", lr=0.05), copy.deepcopy(problem), 30)
    assert torch.equal(ours.objectives, built_in.objectives)


def test_a_non_elementwise_torch_optimizer_runs_each_instance_on_its_own():
    problem = _problem(4)
    rule = rule_from_spec("torch.optim.Adafactor(lr=0.05)")
    assert not rule.shared_parameter
    together = unroll(rule, copy.deepcopy(problem), 10).objectives
    alone = unroll(rule, problem.select_rows(torch.tensor([2])), 10).objectives
    torch.testing.assert_close(together[:, 2:3], alone)


def test_an_update_rule_class_by_module_colon_class():
    rule = rule_from_spec("agents.hand_designed:Momentum(lr=0.1, momentum=0.5)")
    assert rule.hparams["momentum"] == 0.5 and rule.name == "Momentum(lr=0.1,momentum=0.5)"


def test_a_list_is_a_grid_tuned_on_the_validation_split():
    spec = parse_rule_spec("torch.optim.SGD(lr=[1e-4, 1.0], momentum=0.9)")
    assert spec.grid == {"lr": [1e-4, 1.0]} and spec.settings == {"momentum": 0.9}
    best, cost = tune_rule(
        torch.optim.SGD, spec.grid, "l2o/LogisticRegression-v0", settings=spec.settings, horizon=20, instances=8
    )
    assert best == {"momentum": 0.9, "lr": 1.0} and cost > 0
    with pytest.raises(ValueError, match="give the family"):
        rule_from_spec(spec)


@pytest.mark.parametrize(
    "text, match",
    [
        ("torch.nn.Linear", "neither a torch.optim.Optimizer subclass nor an l2o_gym UpdateRule"),
        ("torch.optim.LBFGS", "needs a closure"),
        ("no_such_module.X", "cannot import"),
        ("torch.optim:NoSuch", "has no attribute"),
        ("torch.optim.SGD(lr=-1)", "Invalid learning rate"),
        ("torch.optim.SGD(0.1)", "keywords"),
        ("torch.optim.SGD(lr=x)", "not a Python literal"),
        ("torch.optim.SGD(lr=[])", "grid of lr is empty"),
        ("torch.optim.Adam(lr=[0.1, -1])", "Invalid learning rate"),
        ("SGD", "import path"),
    ],
)
def test_bad_specs_are_one_line_errors_before_any_work(text, match):
    with pytest.raises(ValueError, match=match):
        parse_rule_options([text])


def test_names_must_not_clash():
    with pytest.raises(ValueError, match="taken"):
        parse_rule_options(["torch.optim.Adam"], taken={"Adam"})
    with pytest.raises(TypeError, match="torch.optim.Optimizer subclass"):
        TorchOptimizerRule(torch.nn.Linear)


def test_evaluate_cli_runs_a_rule_spec_and_refuses_bad_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("L2O_GYM_CACHE", str(tmp_path / "cache"))
    args = ["evaluate", "--env", "l2o/Quadratic-v0", "--optimizers", "adam", "--instances", "4"]
    args += ["--tune-instances", "4", "--horizon", "5", "--out", str(tmp_path / "report")]
    assert main([*args, "--rule", "torch.optim.SGD(lr=[0.01, 0.1])", "--rule", "torch.optim.RMSprop(lr=0.01)"]) == 0
    table = capsys.readouterr().out
    assert "| SGD(lr=[0.01,0.1]) |" in table and "| RMSprop(lr=0.01) |" in table
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--rule", "os.path:join"])
    assert exit_info.value.code == 2
    assert "--rule os.path:join" in capsys.readouterr().err


def test_evaluation_counts_failures():
    class Blowup(UpdateRule):
        name = "blowup"

        def step(self, state):
            return torch.where(
                state.t.unsqueeze(1) < 2, 10.0 * torch.ones_like(state.x), 1e6 * torch.ones_like(state.x)
            )

    result = l2o_gym.evaluate(
        {
            "adam": make_optimizer("adam", lr=0.05),
            "blowup": Blowup(),
            "up": rule_from_spec("torch.optim.SGD(lr=0.5, maximize=True)"),
        },
        "l2o/LogisticRegression-v0",
        instances=5,
        horizon=5,
    )
    failures = result.failures()
    assert failures["blowup"]["diverged"] == 5
    assert failures["adam"] == {"diverged": 0, "above_start": 0}
    assert failures["up"] == {"diverged": 0, "above_start": 5}
