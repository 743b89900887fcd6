"""Held-out validation during SB3 training: the policy as an optimizer on validation instances,
against tuned Adam on the very same instances; logged to TensorBoard, best model kept."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.learned_optimizer import LearnedOptimizer
from l2o_gym.problem import Problem
from l2o_gym.unroll import Curves, unroll
from l2o_gym.update_rule import UpdateRule


def win_rate(curves: Curves, reference: Curves) -> float:
    """Share of instances whose final objective is strictly below the reference's."""
    return float((curves.final < reference.final).float().mean())


class ValidationCallback(BaseCallback):
    """Every `eval_freq` env steps: mean final objective and win rate against `reference`."""

    def __init__(
        self,
        problem: Problem,
        reference: UpdateRule,
        meta: dict[str, Any],
        horizon: int,
        eval_freq: int,
        on_best: Callable[[BaseCallback], None] | None = None,
    ) -> None:
        super().__init__()
        self.problem = problem
        self.meta = meta
        self.horizon = horizon
        self.eval_freq = eval_freq
        self.on_best = on_best
        self.reference_curves = unroll(reference, copy.deepcopy(problem), horizon, history=meta["history"])
        self.best_score: tuple[float, float] | None = None
        self.last_eval = 0
        self.history: list[dict[str, float]] = []

    def evaluate(self) -> dict[str, float]:
        rule = LearnedOptimizer(self.model.policy, self.meta)
        self.model.policy.set_training_mode(False)
        curves = unroll(rule, copy.deepcopy(self.problem), self.horizon, history=self.meta["history"])
        final = torch.where(curves.diverged, torch.full_like(curves.final, float("inf")), curves.final)
        result = {
            "timesteps": float(self.num_timesteps),
            "mean_final_objective": float(curves.final.mean()),
            "reference_mean_final_objective": float(self.reference_curves.final.mean()),
            "win_rate_vs_reference": float((final < self.reference_curves.final).float().mean()),
            "divergence_rate": float(curves.diverged.float().mean()),
        }
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
