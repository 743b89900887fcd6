"""Metrics on hand-made curves give the answers worked out by hand."""

import math

import pytest
import torch

from l2o_gym.metrics import (
    MethodMetrics,
    cost,
    curve_quantiles,
    curve_values,
    divergence_rate,
    margin_of_victory,
    median,
    method_metrics,
    speedup,
    steps_to_reach,
    win_rate,
)
from l2o_gym.unroll import Curves


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def curves(rows, diverged=(False, False), f_star=None):
    objectives = t(rows)
    return Curves(
        objectives=objectives,
        diverged=torch.tensor(diverged),
        diverged_at=torch.tensor([2 if d else -1 for d in diverged]),
        f_star=None if f_star is None else t(f_star),
        metrics={},
    )


# rows are steps t = 0, 1, 2; columns are two instances
OURS = [[4.0, 4.0], [2.0, 3.0], [1.0, 1.0]]
OTHER = [[4.0, 4.0], [3.0, 1.0], [2.0, 0.5]]
THIRD = [[4.0, 4.0], [5.0, 2.0], [0.5, 3.0]]


def test_suboptimality_subtracts_each_instances_optimum():
    values = curve_values(t(OURS), t([1.0, 0.5]))
    assert torch.equal(values, t([[3.0, 3.5], [1.0, 2.5], [0.0, 0.5]]))
    assert curve_values(t(OURS), None) is not None and torch.equal(curve_values(t(OURS), None), t(OURS))
    with pytest.raises(ValueError, match="f_star"):
        curve_values(t(OURS), t([1.0, 2.0, 3.0]))


def test_cost_sums_steps_one_to_T():
    assert torch.equal(cost(t(OURS)), t([3.0, 4.0]))


def test_margin_of_victory_against_the_single_competitor():
    margin = margin_of_victory({"ours": t(OURS), "other": t(OTHER)}, "ours")
    # t=1: (3-2, 1-3) -> -0.5 ; t=2: (2-1, 0.5-1) -> 0.25
    assert torch.allclose(margin, t([0.0, -0.5, 0.25]))
    assert torch.allclose(margin_of_victory({"ours": t(OURS), "other": t(OTHER)}, "other"), -margin)


def test_margin_of_victory_takes_the_best_competitor_per_instance():
    margin = margin_of_victory({"ours": t(OURS), "other": t(OTHER), "third": t(THIRD)}, "ours")
    # best other: t=1 (3, 1), t=2 (0.5, 0.5) -> margins t=1 (1, -2) -> -0.5, t=2 (-0.5, -0.5) -> -0.5
    assert torch.allclose(margin, t([0.0, -0.5, -0.5]))


def test_margin_needs_two_methods_and_a_known_name():
    with pytest.raises(ValueError, match="two methods"):
        margin_of_victory({"ours": t(OURS)}, "ours")
    with pytest.raises(ValueError, match="not among"):
        margin_of_victory({"ours": t(OURS), "other": t(OTHER)}, "nobody")


def test_steps_to_reach_and_speedup_with_a_never_reached_instance():
    reference = t([[4.0, 4.0], [2.0, 3.0], [1.0, 2.0]])
    assert torch.equal(steps_to_reach(reference, t([1.5, 2.5])), t([2.0, 2.0]))
    assert torch.equal(steps_to_reach(reference, t([4.0, 2.0])), t([0.0, 2.0]))  # reached at the start
    steps = steps_to_reach(reference, t([1.5, 1.0]))
    assert steps[0] == 2.0 and math.isinf(steps[1])
    method = t([[4.0, 4.0], [3.0, 3.0], [1.5, 1.0]])
    ratio = speedup(reference, method)
    assert ratio[0] == 1.0 and math.isinf(ratio[1])


def test_median_is_the_middle_and_knows_infinity():
    assert median(t([7.0, 1.0, 5.0, 3.0])) == 4.0
    assert median(t([3.0, 1.0, 2.0])) == 2.0
    assert math.isinf(median(t([1.0, math.inf])))
    assert median(t([1.0, 2.0, math.inf])) == 2.0


def test_win_rate_strictly_lower_and_divergence_loses():
    reference = t([[4.0, 4.0, 4.0], [2.0, 2.0, 2.0], [1.0, 2.0, 3.0]])
    method = t([[4.0, 4.0, 4.0], [2.0, 2.0, 2.0], [1.0, 1.0, 5.0]])
    none = torch.tensor([False, False, False])
    assert win_rate(method, reference, none, none) == pytest.approx(1 / 3)  # a tie is no win
    assert win_rate(method, reference, torch.tensor([False, True, False]), none) == 0.0
    assert win_rate(method, reference, none, torch.tensor([False, False, True])) == pytest.approx(2 / 3)


def test_divergence_rate():
    assert divergence_rate(torch.tensor([True, False, False, True])) == 0.5


def test_curve_quantiles_per_step():
    values = t([[0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 4.0, 4.0, 4.0, 4.0]])
    q = curve_quantiles(values)
    assert q.shape == (3, 2)
    assert torch.allclose(q[:, 0], t([1.0, 2.0, 3.0]))
    assert torch.allclose(q[:, 1], t([4.0, 4.0, 4.0]))


def test_method_metrics_table_with_reference_and_optimum():
    f_star = [0.5, 0.5]
    table = method_metrics(
        {
            "adam": curves([[4.0, 4.0], [2.0, 3.0], [1.0, 2.0]], f_star=f_star),
            "ours": curves([[4.0, 4.0], [3.0, 3.0], [1.5, 1.0]], diverged=(False, True), f_star=f_star),
        },
        reference="adam",
    )
    ours, adam = table["ours"], table["adam"]
    assert isinstance(ours, MethodMetrics)
    assert ours.mean_final == pytest.approx(0.75)  # suboptimalities (1.0, 0.5)
    assert ours.median_final == pytest.approx(0.75)
    assert ours.mean_cost == pytest.approx(((2.5 + 1.0) + (2.5 + 0.5)) / 2)
    assert ours.margin_final == pytest.approx(((0.5 - 1.0) + (1.5 - 0.5)) / 2)
    assert ours.margin_mean == pytest.approx(((-1.0 + 0.0) / 2 + 0.25) / 2)
    assert math.isinf(ours.reference_steps_median) and math.isinf(ours.speedup_median)
    assert ours.reference_never_rate == 0.5
    assert ours.win_rate == 0.0  # instance 0: 1.5 > 1.0; instance 1 diverged
    assert ours.divergence_rate == 0.5
    assert adam.win_rate is None and adam.speedup_median == 1.0 and adam.reference_never_rate == 0.0
    assert ours.to_dict()["speedup_median"] is None  # JSON-safe


def test_method_metrics_without_reference_or_competitor():
    table = method_metrics({"solo": curves(OURS)})
    solo = table["solo"]
    assert solo.margin_mean is None and solo.speedup_median is None and solo.win_rate is None
    assert solo.mean_final == 1.0


def test_method_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="reference"):
        method_metrics({"ours": curves(OURS)}, reference="adam")
    with pytest.raises(ValueError, match="at least one"):
        method_metrics({})
    with pytest.raises(ValueError, match="same instances"):
        method_metrics({"a": curves(OURS), "b": curves([[1.0, 1.0], [1.0, 1.0]])})


def test_a_longer_reference_run_measures_larger_speedups():
    method = t([[4.0, 4.0], [1.0, 3.0], [0.5, 0.1]])  # T = 2
    short = t([[4.0, 4.0], [2.0, 3.0], [1.0, 2.0]])
    long = t([[4.0, 4.0], [2.0, 3.0], [1.0, 2.0], [0.8, 1.0], [0.4, 0.5], [0.3, 0.4]])  # T_ref = 5
    assert torch.isinf(speedup(short, method)).all()
    assert torch.equal(speedup(long, method), t([2.0, math.inf]))  # 4 steps / 2; never within 5
    with pytest.raises(ValueError, match="at least the horizon"):
        speedup(long[:2], method)
    table = method_metrics(
        {"adam": curves(short.tolist()), "ours": curves(method.tolist())},
        reference="adam",
        reference_long=curves(long.tolist()),
    )
    assert math.isinf(table["ours"].speedup_median) and table["ours"].reference_never_rate == 0.5
    assert table["adam"].speedup_median == 1.0  # its own final value, reached at T
