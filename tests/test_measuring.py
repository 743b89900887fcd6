"""Measuring learning: paired statistics against known values, costs and evaluation budgets on
hand-made curves, the speed-up of the reference against itself, and honest evaluation counts."""

import json
import math

import pytest
import torch

from agents.hand_designed import make_optimizer
from l2o_gym.evaluation import best_one_evaluation_rule, compare, evaluate
from l2o_gym.metrics import (
    method_metrics,
    one_evaluation_per_step,
    paired_comparison,
    speedup,
    steps_to_reach,
    values_at_evaluations,
)
from l2o_gym.paired_statistics import average_ranks, sign_test_p, wilcoxon_signed_rank_p, wilson_interval
from l2o_gym.problem import Problem
from l2o_gym.report import markdown_table, write_report
from l2o_gym.unroll import Curves, unroll


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_wilson_interval_known_values():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(3.8414588 / 13.8414588, rel=1e-6)  # z² / (n + z²)
    low, high = wilson_interval(81, 263)
    assert (low, high) == (pytest.approx(0.2552885, abs=1e-6), pytest.approx(0.3662096, abs=1e-6))
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(1 - wilson_interval(3, 10)[1]) and high == pytest.approx(1 - wilson_interval(3, 10)[0])
    assert wilson_interval(5, 5)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(6, 5)


def test_sign_test_exact_binomial():
    assert sign_test_p(9, 1) == pytest.approx(22 / 1024)  # 2 (C(10,0) + C(10,1)) / 2^10
    assert sign_test_p(1, 9) == sign_test_p(9, 1)
    assert sign_test_p(5, 5) == 1.0 and sign_test_p(0, 0) == 1.0
    assert sign_test_p(20, 0) == pytest.approx(2 / 2**20)


def test_wilcoxon_exact_and_normal_approximation():
    # five positive differences: W+ = 15 is the largest of 2^5 equally likely sums -> p = 2 / 32
    assert wilcoxon_signed_rank_p(t([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(2 / 32)
    # zeros are dropped; signs flipped give the same two-sided p
    assert wilcoxon_signed_rank_p(t([0.0, -1.0, -2.0, -3.0, -4.0, -5.0])) == pytest.approx(2 / 32)
    assert wilcoxon_signed_rank_p(t([0.0, 0.0])) == 1.0
    assert torch.equal(average_ranks(t([3.0, 1.0, 3.0, 2.0])), t([3.5, 1.0, 3.5, 2.0]))
    # with ties: normal approximation, W+ = 1+2.5+2.5 = 6 of n = 4 ... checked by hand:
    d = t([1.0, 2.0, 2.0, -4.0])  # ranks 1, 2.5, 2.5, 4 -> W+ = 6, mean 5, var 7.5 - (8 - 2)/48
    z = (6 - 5) / math.sqrt(7.5 - 6 / 48)
    assert wilcoxon_signed_rank_p(d) == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(z / math.sqrt(2)))))


def test_wilcoxon_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    for n in (12, 40, 90):
        d = torch.randn(n, generator=g, dtype=torch.float64) + 0.4
        assert wilcoxon_signed_rank_p(d) == pytest.approx(float(stats.wilcoxon(d.numpy()).pvalue), rel=1e-6)


def test_paired_comparison_by_cost_with_divergence_and_ties():
    # steps t = 0, 1, 2; four instances; costs ours (3, 2, 5, 1), theirs (4, 2, 3, 9)
    ours = t([[9.0, 9.0, 9.0, 9.0], [2.0, 1.0, 3.0, 0.5], [1.0, 1.0, 2.0, 0.5]])
    theirs = t([[9.0, 9.0, 9.0, 9.0], [3.0, 1.0, 2.0, 8.0], [1.0, 1.0, 1.0, 1.0]])
    no = torch.tensor([False, False, False, False])
    c = paired_comparison("ours", ours, no, "theirs", theirs, no)
    assert (c.wins, c.losses, c.ties, c.instances) == (2, 1, 1, 4)
    assert c.mean_cost == pytest.approx(11 / 4) and c.against_mean_cost == pytest.approx(18 / 4)
    assert c.win_fraction == 0.5 and (c.win_low, c.win_high) == pytest.approx(wilson_interval(2, 4))
    assert c.sign_test_p == pytest.approx(sign_test_p(2, 1))
    # our run on instance 3 diverged: a loss whatever its (low) cost; both diverged: a tie
    c = paired_comparison("ours", ours, torch.tensor([False, False, False, True]), "theirs", theirs, no)
    assert (c.wins, c.losses, c.ties) == (1, 2, 1)
    both = torch.tensor([False, False, False, True])
    c = paired_comparison("ours", ours, both, "theirs", theirs, both)
    assert (c.wins, c.losses, c.ties) == (1, 1, 2)


def test_values_at_an_evaluation_budget():
    values = t([[5.0, 5.0], [3.0, 4.0], [1.0, 2.0]])
    evaluations = torch.tensor([[1, 1], [2, 6], [3, 11]])
    at = values_at_evaluations(values, evaluations, torch.tensor([0, 1, 3, 6, 20]))
    assert math.isnan(at[0, 0]) and math.isnan(at[0, 1])  # not even x_0's evaluation
    assert torch.equal(at[1:], t([[5.0, 5.0], [1.0, 5.0], [1.0, 4.0], [1.0, 2.0]]))
    assert one_evaluation_per_step(evaluations[:, :1]) and not one_evaluation_per_step(evaluations)


def test_the_reference_against_itself_reads_one_despite_an_overshoot():
    # tuned Adam's typical curve: down, overshoot back up, then down slowly to its final value
    adam = t([[4.0], [0.5], [2.0], [1.5], [1.0]])
    assert speedup(adam, adam).item() == 1.0  # first touch (step 1) would read 0.25
    # a method ending at 0.5 is reached at step 1 by first touch, but Adam only stays there later
    longer = t([[4.0], [0.5], [2.0], [1.5], [1.0], [0.6], [0.4], [0.3], [0.2]])
    assert steps_to_reach(longer, t([0.5]), horizon=4).item() == 6.0
    # after T a step counts by itself; up to T the reference must stay there until T
    assert steps_to_reach(t([[4.0], [0.5], [2.0], [1.0], [3.0], [0.4]]), t([1.0]), horizon=3).item() == 3.0
    assert steps_to_reach(t([[4.0], [0.5], [2.0], [1.5], [3.0], [0.4]]), t([1.0]), horizon=3).item() == 5.0
    # Adam rebounding after T does not change its own speed-up
    rebound = torch.cat([adam, t([[1.2], [1.1], [0.9]])])
    assert speedup(rebound, adam).item() == 1.0
    curves = {
        "adam": Curves(adam, torch.tensor([False]), torch.tensor([-1]), None, {}),
        "other": Curves(t([[4.0], [3.0], [2.5], [2.2], [2.0]]), torch.tensor([False]), torch.tensor([-1]), None, {}),
    }
    long = Curves(longer, torch.tensor([False]), torch.tensor([-1]), None, {})
    table = method_metrics(curves, "adam", long)
    # Adam stays <= 2.0 (the other's final value) from step 1 on: 1 / 4
    assert table["adam"].speedup_median == 1.0 and table["other"].speedup_median == pytest.approx(1 / 4)


class CountingBowl(Problem):
    """f(x) = ½ ||x||² with every objective or gradient evaluation counted (B = 1: per instance)."""

    def __init__(self, x0):
        super().__init__(x0)
        self.calls = 0

    def loss(self, x):
        self.calls += 1
        return 0.5 * x.pow(2).sum(dim=1)

    def loss_and_grad(self, x):
        self.calls += 1
        return 0.5 * x.pow(2).sum(dim=1), x.clone()


def test_lbfgs_line_search_evaluations_are_counted():
    # x0 = 4: g = 4, first trial step 1/||g||₁ = 0.25 is accepted, then doubled while f falls:
    # trials at x = 3, 2, 0, -4 (4 evaluations), step to 0; then g = 0: no descent, and only the
    # line search's first trial (the implementation makes it for every row) each step.
    problem = CountingBowl(t([[4.0]]))
    curves = unroll(make_optimizer("lbfgs", lr=1.0), problem, 3)
    assert curves.evaluations[:, 0].tolist() == [1, 6, 8, 10]
    assert problem.calls == 10  # every call of the objective, counted by the problem itself
    assert curves.objectives[1, 0] == 0.0


def test_batched_evaluation_counts_equal_each_instance_run_alone():
    starts = t([[4.0, -1.0], [0.3, 2.0], [-7.0, 0.5]])
    for name in ("lbfgs", "cg"):
        batched = unroll(make_optimizer(name), CountingBowl(starts), 5).evaluations
        for i in range(3):
            alone = CountingBowl(starts[i : i + 1])
            assert torch.equal(unroll(make_optimizer(name), alone, 5).evaluations[:, 0], batched[:, i])
            assert alone.calls == batched[-1, i]
    assert unroll(make_optimizer("adam"), CountingBowl(starts), 5).evaluations[:, 0].tolist() == list(range(1, 7))


def test_evaluation_pairs_methods_and_reports_budgets(tmp_path):
    rules = {name: make_optimizer(name) for name in ("adam", "momentum", "lbfgs", "window_qn")}
    result = evaluate(rules, "l2o/Quadratic-v0", instances=12, horizon=8)
    assert result.metrics["adam"].evaluations_mean == 9.0
    assert result.metrics["lbfgs"].evaluations_mean > 9.0
    best = best_one_evaluation_rule(result, ["momentum", "lbfgs", "window_qn"])
    assert best in ("momentum", "window_qn")  # L-BFGS spends more than one evaluation a step
    assert best == min(("momentum", "window_qn"), key=lambda n: result.metrics[n].mean_cost)
    comparison = compare(result, "lbfgs", best)
    assert comparison.wins + comparison.losses + comparison.ties == 12
    compare(result, "lbfgs", best)  # the same pair again replaces the first
    assert len(result.comparisons) == 1
    with pytest.raises(ValueError, match="not among"):
        compare(result, "lbfgs", "nobody")
    table = markdown_table(result)
    assert "evals in T" in table and f"| lbfgs | {best} |" in table and "Wilcoxon p" in table
    write_report(result, tmp_path)
    assert (tmp_path / "l2o_Quadratic-v0_evaluations.png").stat().st_size > 10_000
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["files"]["evaluation_plots"] == ["l2o_Quadratic-v0_evaluations.png"]
    (entry,) = report["results"]
    assert entry["comparisons"][0]["method"] == "lbfgs" and entry["comparisons"][0]["instances"] == 12
    assert entry["methods"]["adam"]["evaluations_mean"] == 9.0


def test_evaluate_pairs_a_policy_with_its_teacher_and_the_best_rule(tmp_path, monkeypatch, capsys):
    import yaml

    import train_agent
    from agents.runtime import saved_rules
    from agents.runtime.saved_rules import write_meta
    from tests.test_cli import TEST_META

    monkeypatch.setitem(saved_rules.LOADERS, "test", "tests.test_cli:load_test_rule")
    run = tmp_path / "run"
    write_meta(run / "best_model", TEST_META)
    imitation = {"teacher": "momentum", "teacher_hparams": {"lr": 0.05, "momentum": 0.8}}
    settings = {"env_id": "l2o/Quadratic-v0", "algo": "ppo", "env": {"horizon": [5, 10]}, "imitation": imitation}
    (run / "hyperparams.yaml").write_text(yaml.safe_dump(settings))
    out = tmp_path / "report"
    argv = ["evaluate", "--env", "l2o/Quadratic-v0", "--optimizers", "adam,gd", "--policy", str(run / "best_model")]
    argv += ["--instances", "4", "--horizon", "5", "--tune-instances", "3", "--cache", str(tmp_path / "t.json")]
    assert train_agent.main([*argv, "--out", str(out), "--compare-to", "teacher,best,gd"]) == 0
    (entry,) = json.loads((out / "report.json").read_text())["results"]
    teacher = "best_model's teacher (momentum)"
    assert teacher in entry["method_order"]
    pairs = [(c["method"], c["against"]) for c in entry["comparisons"]]
    best = min(("adam", "gd"), key=lambda n: entry["methods"][n]["mean_cost"])
    assert pairs == [("best_model", teacher), ("best_model", best), ("best_model", "gd")][: 3 if best != "gd" else 2]
    assert "Wilcoxon p" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main([*argv, "--out", str(tmp_path / "other"), "--compare-to", "teacher,sgd9"])
    assert exit_info.value.code == 2 and "--compare-to" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_wilcoxon_far_tail_is_not_rounded_to_zero():
    # 169 of 200 equal-magnitude differences positive: z ≈ 9.76, p = 2·Φ(−z) ≈ 1.7e-22, not 0
    d = torch.full((200,), 1e-3, dtype=torch.float64)
    d[:31] = -1e-3
    p = wilcoxon_signed_rank_p(d)
    z = (169 * 100.5 - 200 * 201 / 4) / math.sqrt(200 * 201 * 401 / 24 - (200**3 - 200) / 48)
    assert 0 < p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert p < 1e-20
