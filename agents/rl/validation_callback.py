"""Held-out validation during SB3 training: the policy as an optimizer on validation instances,
against tuned Adam on the very same instances; logged to TensorBoard, best model kept."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.runtime.learned_optimizer import LearnedOptimizer
from l2o_gym.metrics import win_rate
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.problem import Problem
from l2o_gym.unroll import unroll
from l2o_gym.update_rule import UpdateRule


class ValidationCallback(BaseCallback):
    """Every `eval_freq` env steps: mean final objective and win rate against the reference, at
    each validation horizon (`references` maps horizon -> reference rule). The best model is the
    one with the highest win rate averaged over the horizons (ties: the lower mean final
    objective, averaged likewise). Logged keys carry the horizon (``win_rate_vs_reference_T40``);
    the unsuffixed keys hold the averages."""

    def __init__(
        self,
        problem: Problem,
        references: dict[int, UpdateRule],
        meta: dict[str, Any],
        eval_freq: int,
        on_best: Callable[[BaseCallback], None] | None = None,
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
        for key in (
            "mean_final_objective",
            "reference_mean_final_objective",
            "win_rate_vs_reference",
            "divergence_rate",
        ):
            values = [result[f"{key}_T{horizon}"] for horizon in self.reference_curves]
            result[key] = sum(values) / len(values)
        for key, value in result.items():
            if key != "timesteps":
                self.logger.record(f"validation/{key}", value)
        self.history.append(result)
        return result

    def evaluate_and_keep_best(self) -> dict[str, float]:
        """Evaluate; call `on_best` if this is the best score so far (win rate, then mean final)."""
        result = self.evaluate()
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
