"""Evaluation reports: JSON, a markdown table and PNG plots, written into one folder.

`write_report(results, out_dir)` writes, for one or several `EvaluationResult`s:
- one PNG per result (median curve with a 25-75 % quartile band per method, log scale, of the
  suboptimality f - f* where f* is known, else of f), plus ``all_families.png`` with one panel
  per result when there are several;
- ``<name>_evaluations.png`` per result: the same against objective/gradient evaluations
  (line-search trials included), where the curves count them;
- ``report.md``: a table per result (rows = methods), its paired comparisons by cost, and for
  families with a held-out query set a table of the task metrics (query loss, query MSE,
  accuracy) after 1, 5, 10 and T steps;
- ``report.json``: every metric, the quartile and mean curves [T + 1] and the margin-of-victory
  curve per method, and the run's settings.

Completeness: every file is written atomically (`l2o_gym.atomic_io`), and ``report.json`` is
removed first and written LAST: it is the completion marker. A folder without ``report.json``
holds an unfinished report; one with it holds a complete one.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import l2o_gym
from l2o_gym.atomic_io import atomic_write, atomic_write_json, atomic_write_text
from l2o_gym.evaluation import EvaluationResult
from l2o_gym.metrics import values_at_evaluations

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
ALL_FAMILIES_PNG = "all_families.png"

METRIC_DEFINITIONS = {
    "value": "suboptimality f - f* where each instance's optimum f* is known, else the objective f",
    "mean_final": "mean over instances of the value after T steps",
    "median_final": "median over instances of the value after T steps",
    "mean_cost": "Li & Malik's cost: sum of the values at steps 1..T, averaged over instances",
    "margin_mean": "Li & Malik's margin of victory (lowest value among the other methods on the same instance "
    "minus ours, averaged over instances; > 0 = we win), averaged over steps 1..T",
    "margin_final": "the margin of victory at step T",
    "reference_steps_median": "median over instances of the first step s such that the reference (tuned Adam, run "
    "for reference_horizon steps on the same instances) is at or below the method's final value at every step from "
    "s up to T (past T: at step s); null when it is not within reference_horizon steps for at least half the "
    "instances",
    "speedup_median": "median of (reference steps / T); null = more than reference_horizon / T",
    "reference_never_rate": "fraction of instances where the reference never reaches the method's final value",
    "win_rate": "fraction of instances where the method did not diverge and either the reference diverged or the "
    "method's final value is strictly lower than the reference's (null for the reference itself)",
    "divergence_rate": "fraction of instances whose run diverged (non-finite or exploding objective); "
    "a diverged run keeps its last finite value in the curves",
    "evaluations_mean": "objective/gradient evaluations used in T steps (x_0's included; line-search trials of "
    "L-BFGS and CG included), mean over instances; a one-evaluation-per-step rule uses T + 1",
    "budget_median": "median over instances of the value after at most T + 1 evaluations (the budget of a "
    "one-evaluation-per-step rule's T steps)",
    "paired comparison": "a method against another on the same instances by cost: wins = instances where it did "
    "not diverge and either the other diverged or its cost is strictly lower (ties count for neither); the win "
    "fraction with its 95 % Wilson interval; p-values of the two-sided exact sign test (wins against losses) "
    "and of Wilcoxon's signed-rank test on the cost differences",
}


def _check_results(results: EvaluationResult | Sequence[EvaluationResult]) -> list[EvaluationResult]:
    if isinstance(results, EvaluationResult):
        return [results]
    results = list(results)
    if not results or not all(isinstance(r, EvaluationResult) for r in results):
        raise ValueError("results must be an EvaluationResult or a non-empty sequence of them")
    return results


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def _steps(value: float | None, horizon: int) -> str:
    if value is None:
        return "—"
    return f">{horizon}" if math.isinf(value) else f"{value:g}"


def _speedup(value: float | None, bound: float) -> str:
    if value is None:
        return "—"
    return f">{bound:g}×" if math.isinf(value) else f"{value:.2f}×"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def result_title(result: EvaluationResult) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in result.family_kwargs.items())
    return f"{result.env_id}" + (f" ({extra})" if extra else "")


def markdown_table(result: EvaluationResult) -> str:
    """The result's metrics as a markdown table, one row per method, with a heading line."""
    v = result.value_name
    ref = result.reference or "reference"
    header = [
        "method",
        f"final {v} mean",
        f"final {v} median",
        f"cost Σ {v}",
        "margin (mean)",
        "margin (t=T)",
        f"{ref} steps to match",
        f"speed-up vs {ref}",
        f"wins vs {ref}",
        "diverged",
        "evals in T (mean)",
        f"{v} at T+1 evals (median)",
    ]
    reference_note = (
        f" Speed-up: steps {ref} (run for {result.reference_horizon} steps) needs to match the final value, over T."
        if result.reference is not None
        else ""
    )
    lines = [
        f"### {result_title(result)}: {result.split} split, {result.instances} instances, "
        f"T = {result.horizon}, seed {result.seed}",
        "",
        f"{result.description} (d = {result.dim}). Values are {v}; lower is better; margin > 0 = ahead of the "
        f"best other method.{reference_note}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for name, m in result.metrics.items():
        row = [
            name,
            _fmt(m.mean_final),
            _fmt(m.median_final),
            _fmt(m.mean_cost),
            _fmt(m.margin_mean),
            _fmt(m.margin_final),
            _steps(m.reference_steps_median, result.reference_horizon),
            _speedup(m.speedup_median, (result.reference_horizon or result.horizon) / result.horizon),
            _percent(m.win_rate),
            _percent(m.divergence_rate),
            _fmt(m.evaluations_mean),
            _fmt(m.budget_median),
        ]
        lines.append("| " + " | ".join(row) + " |")
    if result.comparisons:
        lines += ["", comparisons_table(result)]
    return "\n".join(lines) + "\n"


def _p_value(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "<1e-4"


def comparisons_table(result: EvaluationResult) -> str:
    """The result's paired comparisons by cost as a markdown table (empty string without any)."""
    if not result.comparisons:
        return ""
    header = ["method", "against", "mean cost", "their mean cost", "wins / losses / ties", "win fraction (95 %)"]
    lines = [
        f"Paired by cost Σ {result.value_name} over steps 1..T on the same {result.instances} instances:",
        "",
        "| " + " | ".join(header + ["sign test p", "Wilcoxon p"]) + " |",
        "|---|---|" + "---:|" * (len(header) - 2 + 2),
    ]
    for c in result.comparisons:
        row = [
            c.method,
            c.against,
            _fmt(c.mean_cost),
            _fmt(c.against_mean_cost),
            f"{c.wins} / {c.losses} / {c.ties}",
            f"{_percent(c.win_fraction)} ({_percent(c.win_low)}–{_percent(c.win_high)})",
            _p_value(c.sign_test_p),
            _p_value(c.wilcoxon_p),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


HELD_OUT_STEPS = (1, 5, 10)


def mean_interval(values: torch.Tensor) -> tuple[float, float]:
    """Mean of values [B] and the half-width of its normal 95 % interval (1.96 standard errors)."""
    values = values.double()
    n = values.numel()
    half = 1.96 * float(values.std()) / math.sqrt(n) if n > 1 else float("nan")
    return float(values.mean()), half


def held_out_curves(result: EvaluationResult, method: str) -> dict[str, torch.Tensor]:
    """The method's held-out curves [T + 1, B]: the query loss and the task metrics per step."""
    c = result.curves[method]
    curves = {} if c.query is None else {"query_loss": c.query}
    curves.update(c.metric_curves)
    return curves


def held_out_table(result: EvaluationResult) -> str:
    """Per method and held-out metric, the mean ± 95 % interval after 1, 5, 10 and T steps ('' if none)."""
    steps = sorted({t for t in HELD_OUT_STEPS if t < result.horizon} | {result.horizon})
    rows = []
    for name in result.methods:
        for metric, values in held_out_curves(result, name).items():
            cells = ["{:.3g} ± {:.2g}".format(*mean_interval(values[t])) for t in steps]
            rows.append("| " + " | ".join([name, metric, *cells]) + " |")
    if not rows:
        return ""
    header = ["method", "held-out metric", *(f"t = {t}" for t in steps)]
    return (
        "\n".join(
            [
                f"Held-out part of each task (query set), mean ± 95 % interval over the {result.instances} instances:",
                "",
                "| " + " | ".join(header) + " |",
                "|" + "|".join(["---", "---"] + ["---:"] * len(steps)) + "|",
                *rows,
            ]
        )
        + "\n"
    )


def markdown_report(results: EvaluationResult | Sequence[EvaluationResult]) -> str:
    """All results' tables, with the metric definitions at the end."""
    results = _check_results(results)
    parts = ["# l2o_gym evaluation", ""]
    for r in results:
        parts += [markdown_table(r)] + ([held_out_table(r)] if held_out_table(r) else [])
    parts += ["## Definitions", ""] + [f"- **{k}**: {d}" for k, d in METRIC_DEFINITIONS.items()]
    return "\n".join(parts) + "\n"


def _as_list(t: torch.Tensor) -> list[float | None]:
    return [None if not math.isfinite(x) else x for x in t.double().tolist()]


def result_dict(result: EvaluationResult, plot: str | None = None) -> dict[str, Any]:
    """JSON-safe dict of one result: settings, metrics and summary curves per method."""
    curves = {}
    for name in result.methods:
        q = result.quantiles(name)
        margin = result.margin_curve(name)
        c = result.curves[name]
        curves[name] = {
            "q25": _as_list(q[0]),
            "median": _as_list(q[1]),
            "q75": _as_list(q[2]),
            "mean": _as_list(result.values(name).double().mean(dim=1)),
            "margin_of_victory": None if margin is None else _as_list(margin),
            "diverged_at": c.diverged_at[c.diverged].tolist(),
            "held_out_mean": {k: _as_list(v.double().mean(dim=1)) for k, v in held_out_curves(result, name).items()},
        }
    return {
        "env_id": result.env_id,
        "description": result.description,
        "dim": result.dim,
        "family_kwargs": {
            k: v if isinstance(v, (int, float, str, bool)) else repr(v) for k, v in result.family_kwargs.items()
        },
        "split": result.split,
        "instances": result.instances,
        "horizon": result.horizon,
        "seed": result.seed,
        "reference": result.reference,
        "reference_horizon": result.reference_horizon,
        "value": result.value_name,
        "method_order": result.methods,  # JSON keys are sorted; this is the order given
        "methods": {name: m.to_dict() for name, m in result.metrics.items()},
        "curves": curves,
        "comparisons": [c.to_dict() for c in result.comparisons],
        "plot": plot,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "result"


def _colors(methods: list[str], reference: str | None) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    others = [m for m in methods if m != reference]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(others)}
    if reference is not None:
        colors[reference] = "black"
    return colors


def _draw_panel(ax, result: EvaluationResult, colors: dict[str, Any]) -> None:
    values = {m: result.values(m).double() for m in result.methods}
    steps = torch.arange(result.horizon + 1)
    floor = None
    if result.has_optimum:
        # suboptimality below the objective's float resolution is noise: draw it at that floor
        f_star = next(iter(result.curves.values())).f_star
        eps = torch.finfo(next(iter(result.curves.values())).objectives.dtype).eps
        floor = eps * (float(f_star.abs().median()) + 1.0)
    all_values = torch.cat([v.flatten() for v in values.values()])
    log_scale = floor is not None or bool((all_values > 0).all())
    at_floor = False
    for name, v in values.items():
        if floor is not None:
            v = v.clamp_min(floor)
        q = torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=1)
        dashed = name == result.reference
        ax.plot(steps, q[1], color=colors[name], lw=2.0, ls="--" if dashed else "-", label=name)
        ax.fill_between(steps, q[0], q[2], color=colors[name], alpha=0.12, lw=0)
        at_floor = at_floor or (floor is not None and bool((q[1] <= floor).any()))
    ax.set_yscale("log" if log_scale else "symlog")
    ax.set_xlim(0, result.horizon)
    ax.set_xlabel("iteration t")
    ylabel = "suboptimality f − f*" if result.has_optimum else "objective f"
    ax.set_ylabel(f"{ylabel} (median, 25–75 % band)")
    diverged = [f"{m} {100 * x.divergence_rate:.0f}%" for m, x in result.metrics.items() if x.divergence_rate > 0]
    subtitle = f"{result.split} split, {result.instances} instances"
    if diverged:
        subtitle += "; diverged: " + ", ".join(diverged)
    ax.set_title(f"{result_title(result)}\n" + textwrap.fill(subtitle, 70), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if at_floor:
        ax.axhline(floor, color="grey", lw=0.8, ls=":")
        ax.annotate(
            "float resolution (values below drawn here)",
            (result.horizon, floor),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )


def _value_floor(result: EvaluationResult) -> float | None:
    """Suboptimality below the objective's float resolution is noise: it is drawn at this floor."""
    if not result.has_optimum:
        return None
    first = next(iter(result.curves.values()))
    return torch.finfo(first.objectives.dtype).eps * (float(first.f_star.abs().median()) + 1.0)


def _draw_evaluation_panel(ax, result: EvaluationResult, colors: dict[str, Any]) -> None:
    """Median value (25-75 % band) against objective/gradient evaluations, each method drawn up to
    the evaluations every instance reached within its T steps."""
    floor = _value_floor(result)
    right = 1
    for name in result.methods:
        evaluations = result.curves[name].evaluations
        if evaluations is None:
            continue
        budgets = torch.arange(1, int(evaluations[-1].min()) + 1)
        v = values_at_evaluations(result.values(name).double(), evaluations, budgets)
        v = v.clamp_min(floor) if floor is not None else v
        q = torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=1)
        dashed = name == result.reference
        ax.plot(budgets, q[1], color=colors[name], lw=2.0, ls="--" if dashed else "-", label=name)
        ax.fill_between(budgets, q[0], q[2], color=colors[name], alpha=0.12, lw=0)
        right = max(right, int(budgets[-1]))
    ax.set_yscale("log" if floor is not None else "symlog")
    ax.set_xlim(1, right)
    ax.axvline(result.horizon + 1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("objective/gradient evaluations (line searches included; dotted: T + 1)")
    ylabel = "suboptimality f − f*" if result.has_optimum else "objective f"
    ax.set_ylabel(f"{ylabel} (median, 25–75 % band)")
    ax.set_title(f"{result_title(result)}\n{result.split} split, {result.instances} instances", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def plot_evaluation_results(results: EvaluationResult | Sequence[EvaluationResult], path: str | Path) -> Path:
    """Like `plot_results` with function evaluations on the x-axis; a PNG at `path`."""
    return plot_results(results, path, draw=_draw_evaluation_panel)


def plot_results(
    results: EvaluationResult | Sequence[EvaluationResult], path: str | Path, draw: Callable | None = None
) -> Path:
    """One panel per result (`draw(ax, result, colors)`, default: values against steps), a shared
    legend below; written atomically as a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    draw = _draw_panel if draw is None else draw
    results = _check_results(results)
    methods = list(dict.fromkeys(m for r in results for m in r.methods))
    references = {r.reference for r in results if r.reference is not None}
    colors = _colors(methods, next(iter(references)) if len(references) == 1 else None)
    cols = min(3, len(results))
    rows = math.ceil(len(results) / cols)
    fig = Figure(figsize=(5.5 * cols, 4.3 * rows + 0.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, result in zip(axes, results, strict=False):
        draw(ax, result, colors)
    for ax in axes[len(results) :]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[: len(results)]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncol=min(len(handles), 8 if cols > 1 else 3),
        frameon=False,
    )
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_report(results: EvaluationResult | Sequence[EvaluationResult], out_dir: str | Path) -> Path:
    """Write the PNG(s), report.md and (last, the completion marker) report.json; return report.json's path."""
    results = _check_results(results)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    marker = out / REPORT_JSON
    marker.unlink(missing_ok=True)

    plots, evaluation_plots, used = [], [], set()
    for i, result in enumerate(results):
        name = _slug(result_title(result))
        name = name if name not in used else f"{name}_{i}"
        used.add(name)
        plots.append(plot_results(result, out / f"{name}.png").name)
        if any(c.evaluations is not None for c in result.curves.values()):
            evaluation_plots.append(plot_evaluation_results(result, out / f"{name}_evaluations.png").name)
    combined = plot_results(results, out / ALL_FAMILIES_PNG).name if len(results) > 1 else None
    atomic_write_text(out / REPORT_MARKDOWN, markdown_report(results))
    report = {
        "format": "l2o_gym evaluation report",
        "library_version": l2o_gym.__version__,
        "complete": True,
        "definitions": METRIC_DEFINITIONS,
        "files": {
            "markdown": REPORT_MARKDOWN,
            "plots": plots,
            "evaluation_plots": evaluation_plots,
            "all_families_plot": combined,
        },
        "results": [result_dict(r, plot) for r, plot in zip(results, plots, strict=True)],
    }
    return atomic_write_json(marker, report)
