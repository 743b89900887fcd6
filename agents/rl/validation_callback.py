"""Held-out validation during SB3 training: the policy as an optimizer on validation instances,
against tuned Adam on the very same instances (and, given a teacher, against the policy's own
imitation teacher by Li & Malik's cost); logged to TensorBoard, best model kept."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.runtime.learned_optimizer import LearnedOptimizer
from l2o_gym.metrics import curve_values, paired_comparison, win_rate
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.problem import Problem
from l2o_gym.unroll import unroll
from l2o_gym.update_rule import UpdateRule


class ValidationCallback(BaseCallback):
    """Every `eval_freq` env steps: mean final objective and win rate against the reference, at
    each validation horizon (`references` maps horizon -> reference rule). The best model is the
    one with the highest win rate averaged over the horizons (ties: the lower mean final
    objective, averaged likewise). Logged keys carry the horizon (``win_rate_vs_reference_T40``);
    the unsuffixed keys hold the averages.

    With a `teacher` (the imitation teacher, the policy's warm start) it also logs, per horizon,
    the policy's and the teacher's mean cost (Σ_t f − f*) and the policy's cost win fraction
    against it (``cost_win_rate_vs_teacher_T40``: 0.5 is the warm start's line); with
    ``select_best="teacher_cost"`` the best model is the one with the most net wins (wins − losses,
    over instances: 0 for the warm start itself) averaged over the horizons (ties: the lower mean cost)."""

    def __init__(
        self,
        problem: Problem,
        references: dict[int, UpdateRule],
        meta: dict[str, Any],
        eval_freq: int,
        on_best: Callable[[BaseCallback], None] | None = None,
        teacher: UpdateRule | None = None,
        select_best: str = "adam_final",
    ) -> None:
        super().__init__()
        if not references:
            raise ValueError("references must map at least one validation horizon to a reference rule")
        self.problem = problem
        self.meta = meta
        self.observation_spec = ObservationSpec.from_saved_meta(meta)
        history = self.observation_spec.history
        self.eval_freq = eval_freq
        self.on_best = on_best
        self.reference_curves = {
            horizon: unroll(rule, copy.deepcopy(problem), horizon, history=history)
            for horizon, rule in sorted(references.items())
        }
        if select_best not in ("adam_final", "teacher_cost") or (select_best == "teacher_cost" and teacher is None):
            raise ValueError(f"select_best must be adam_final, or teacher_cost with a teacher; got {select_best!r}")
        self.select_best = select_best
        self.teacher_curves = (
            {
                horizon: unroll(teacher, copy.deepcopy(problem), horizon, history=history, with_optimum=True)
                for horizon in sorted(references)
            }
            if teacher is not None
            else {}
        )
        self.best_score: tuple[float, float] | None = None
        self.last_eval = 0
        self.history: list[dict[str, float]] = []

    def evaluate(self) -> dict[str, float]:
        rule = LearnedOptimizer(self.model.policy, self.meta, observation_spec=self.observation_spec)
        self.model.policy.set_training_mode(False)
        result = {"timesteps": float(self.num_timesteps)}
        for horizon, reference in self.reference_curves.items():
            curves = unroll(rule, copy.deepcopy(self.problem), horizon, history=self.observation_spec.history)
            result[f"mean_final_objective_T{horizon}"] = float(curves.final.mean())
            result[f"reference_mean_final_objective_T{horizon}"] = float(reference.final.mean())
            result[f"win_rate_vs_reference_T{horizon}"] = win_rate(
                curves.objectives, reference.objectives, curves.diverged, reference.diverged
            )
            result[f"divergence_rate_T{horizon}"] = float(curves.diverged.float().mean())
            if horizon in self.teacher_curves:
                result.update(self.against_teacher(curves, self.teacher_curves[horizon], horizon))
        for key in (
            "mean_final_objective",
            "reference_mean_final_objective",
            "win_rate_vs_reference",
            "divergence_rate",
        ):
            values = [result[f"{key}_T{horizon}"] for horizon in self.reference_curves]
            result[key] = sum(values) / len(values)
        if self.teacher_curves:
            for key in ("cost_win_rate_vs_teacher", "cost_net_wins_vs_teacher", "mean_cost", "teacher_mean_cost"):
                values = [result[f"{key}_T{horizon}"] for horizon in self.teacher_curves]
                result[key] = sum(values) / len(values)
        for key, value in result.items():
            if key != "timesteps":
                self.logger.record(f"validation/{key}", value)
        self.history.append(result)
        return result

    @staticmethod
    def against_teacher(curves: Any, teacher: Any, horizon: int) -> dict[str, float]:
        """The policy's curves against the teacher's on the same instances, by cost."""
        f_star = teacher.f_star
        comparison = paired_comparison(
            "policy",
            curve_values(curves.objectives, f_star),
            curves.diverged,
            "teacher",
            curve_values(teacher.objectives, f_star),
            teacher.diverged,
        )
        return {
            f"cost_win_rate_vs_teacher_T{horizon}": comparison.win_fraction,
            f"cost_net_wins_vs_teacher_T{horizon}": (comparison.wins - comparison.losses) / comparison.instances,
            f"mean_cost_T{horizon}": comparison.mean_cost,
            f"teacher_mean_cost_T{horizon}": comparison.against_mean_cost,
        }

    def evaluate_and_keep_best(self) -> dict[str, float]:
        """Evaluate; call `on_best` if this is the best score so far (win rate against tuned Adam,
        then mean final; or with select_best teacher_cost, net cost wins against the teacher, then mean cost)."""
        result = self.evaluate()
        if self.select_best == "teacher_cost":
            score = (result["cost_net_wins_vs_teacher"], -result["mean_cost"])
        else:
            score = (result["win_rate_vs_reference"], -result["mean_final_objective"])
        if self.best_score is None or score > self.best_score:
            self.best_score = score
            if self.on_best is not None:
                self.on_best(self)
        return result

    def _on_training_start(self) -> None:
        # the starting policy competes too (after an imitation warm start it may be the best)
        if self.num_timesteps == 0:
            self.evaluate_and_keep_best()

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_eval < self.eval_freq:
            return True
        self.last_eval = self.num_timesteps
        self.evaluate_and_keep_best()
        return True
