"""evaluate(): every rule sees the same held-out instances; write_report(): complete files."""

import json

import matplotlib.image
import pytest
import torch

import l2o_gym.report as report_module
from l2o_gym.evaluation import evaluate
from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.report import markdown_table, write_report
from l2o_gym.update_rule import UpdateRule
from tasks.quadratic import QuadraticFamily


class GD(UpdateRule):
    def __init__(self, lr: float) -> None:
        self.lr = lr

    def step(self, state):
        return -self.lr * state.grad


class SignGD(UpdateRule):
    def __init__(self, lr: float) -> None:
        self.lr = lr

    def step(self, state):
        return -self.lr * state.grad.sign()


class Recorder(GD):
    """Records what it was given at reset; `vandal=True` also overwrites its problem's data."""

    def __init__(self, lr: float, vandal: bool = False) -> None:
        super().__init__(lr)
        self.vandal = vandal

    def reset(self, state):
        self.x0 = state.x.clone()
        self.W = state.problem.W.clone()
        self.problem = state.problem
        if self.vandal:
            state.problem.W.mul_(100.0)


class CountingFamily(QuadraticFamily):
    calls = 0

    def sample_instances(self, n, generator, device):
        CountingFamily.calls += 1
        return super().sample_instances(n, generator, device)


def rules():
    return {"adam_like": SignGD(0.01), "gd": GD(0.02), "gd_fast": GD(0.05)}


def test_every_rule_sees_identical_instances_on_its_own_copy():
    first, second, vandal = Recorder(0.02), Recorder(0.05), Recorder(0.02, vandal=True)
    result = evaluate(
        {"vandal": vandal, "first": first, "second": second},
        "l2o/Quadratic-v0",
        instances=6,
        horizon=5,
        reference=None,
    )
    assert torch.equal(first.x0, second.x0) and torch.equal(first.x0, vandal.x0)
    assert torch.equal(first.W, second.W) and torch.equal(first.W, vandal.W)
    assert first.problem is not second.problem
    # the vandal scaled its own copy; the others still ran on the untouched data
    assert torch.equal(first.problem.W, first.W) and not torch.equal(vandal.problem.W, vandal.W)
    c = result.curves
    assert torch.equal(c["first"].objectives[0], c["second"].objectives[0])
    assert c["first"].objectives.shape == (6, 6)
    # two rules with the same settings give the same curve (deterministic, same instances)
    twin = evaluate({"a": GD(0.02), "b": GD(0.02)}, "l2o/Quadratic-v0", instances=6, horizon=5, reference=None)
    assert torch.equal(twin.curves["a"].objectives, twin.curves["b"].objectives)
    assert torch.equal(twin.curves["a"].objectives, result.curves["first"].objectives)


def test_seed_and_split_choose_the_instances():
    def start(**kw):
        return (
            evaluate({"gd": GD(0.02)}, "l2o/Quadratic-v0", instances=4, horizon=2, reference=None, **kw)
            .curves["gd"]
            .objectives[0]
        )

    assert torch.equal(start(seed=3), start(seed=3))
    assert not torch.equal(start(seed=3), start(seed=4))
    assert not torch.equal(start(split="test"), start(split="validation"))


def test_result_holds_suboptimality_and_the_metrics_table():
    result = evaluate(rules(), "l2o/Quadratic-v0", instances=8, horizon=10, reference="adam_like")
    assert result.has_optimum and result.value_name == "f - f*"
    assert result.methods == ["adam_like", "gd", "gd_fast"]
    assert set(result.metrics) == set(result.methods)
    assert result.metrics["adam_like"].win_rate is None
    assert result.metrics["gd"].win_rate is not None
    assert result.quantiles("gd").shape == (3, 11)
    assert result.dim == 10 and result.family_kwargs == {}
    ood = evaluate(
        {"gd": GD(0.01)}, "l2o/Quadratic-v0", instances=3, horizon=2, reference=None, family_kwargs={"dim": 4}
    )
    assert ood.dim == 4 and ood.curves["gd"].objectives.shape == (3, 3)


def test_the_reference_runs_longer_for_the_speedup():
    result = evaluate(rules(), "l2o/Quadratic-v0", instances=5, horizon=8, reference="adam_like")
    assert result.reference_horizon == 32
    long = result.reference_long.objectives
    assert long.shape == (33, 5)
    assert torch.equal(long[:9], result.curves["adam_like"].objectives)  # same instances, same rule
    same = evaluate(rules(), "l2o/Quadratic-v0", instances=5, horizon=8, reference="adam_like", reference_horizon=8)
    assert same.reference_long is None and same.reference_horizon == 8
    assert "adam_like steps to match" in markdown_table(result) and "32 steps" in markdown_table(result)
    with pytest.raises(ValueError, match="reference_horizon"):
        evaluate(rules(), "l2o/Quadratic-v0", instances=5, horizon=8, reference="adam_like", reference_horizon=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rules": {}}, "non-empty"),
        ({"rules": {"gd": object()}}, "UpdateRule"),
        ({"horizon": 0}, "horizon"),
        ({"instances": 0}, "instances"),
        ({"split": "holdout"}, "split"),
        ({"reference": "adam"}, "reference"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_fails_before_any_instance_is_drawn(kwargs, match):
    CountingFamily.calls = 0
    args = {"rules": {"gd": GD(0.01)}, "reference": None, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        evaluate(args.pop("rules"), CountingFamily(), **args)
    assert CountingFamily.calls == 0
    evaluate({"gd": GD(0.01)}, CountingFamily(), instances=2, horizon=1, reference=None)
    assert CountingFamily.calls == 1


def test_report_files_hold_every_method(tmp_path):
    result = evaluate(rules(), "l2o/Quadratic-v0", instances=16, horizon=12, reference="adam_like")
    out = tmp_path / "report"
    path = write_report(result, out)
    assert path == out / "report.json"
    report = json.loads(path.read_text())
    assert report["complete"] is True
    (entry,) = report["results"]
    assert entry["method_order"] == ["adam_like", "gd", "gd_fast"] == sorted(entry["methods"])
    assert entry["env_id"] == "l2o/Quadratic-v0" and entry["value"] == "f - f*"
    assert len(entry["curves"]["gd"]["median"]) == 13
    assert entry["methods"]["gd"]["mean_final"] == pytest.approx(result.metrics["gd"].mean_final)
    table = (out / "report.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [r.split("|")[1].strip() for r in rows] == ["adam_like", "gd", "gd_fast"]
    assert markdown_table(result) in table
    png = out / entry["plot"]
    assert png.stat().st_size > 10_000
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # drawn, not blank


def test_several_families_give_one_panel_each_and_a_combined_figure(tmp_path):
    class NoOptimumProblem(Problem):
        def loss(self, x):
            return (x - 3.0).pow(2).sum(dim=1) + 1.0

    class NoOptimumFamily(TaskFamily):
        description = "shifted bowl without a known optimum"
        dim = 2

        def sample_instances(self, n, generator, device):
            return NoOptimumProblem(torch.randn(n, 2, generator=generator))

    quad = evaluate(rules(), "l2o/Quadratic-v0", instances=8, horizon=6, reference="adam_like")
    bowl = evaluate(rules(), NoOptimumFamily(), instances=8, horizon=6, reference="adam_like")
    assert not bowl.has_optimum and bowl.value_name == "f"
    write_report([quad, bowl], tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["env_id"] for r in report["results"]] == ["l2o/Quadratic-v0", "NoOptimumFamily"]
    assert report["files"]["all_families_plot"] == "all_families.png"
    assert (tmp_path / "all_families.png").stat().st_size > 10_000
    for entry in report["results"]:
        assert (tmp_path / entry["plot"]).exists()


def test_a_failed_report_leaves_no_completion_marker(tmp_path, monkeypatch):
    result = evaluate(rules(), "l2o/Quadratic-v0", instances=4, horizon=3, reference="adam_like")
    write_report(result, tmp_path)
    assert (tmp_path / "report.json").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "plot_results", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(result, tmp_path)
    assert not (tmp_path / "report.json").exists()  # the stale complete-looking report is gone
    assert not list(tmp_path.glob(".*.tmp"))
