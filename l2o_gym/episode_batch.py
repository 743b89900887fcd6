"""B optimization episodes advanced together: the batched core under every environment form.

The single env (B = 1), the Gymnasium vector env and the stable-baselines3 VecEnv are thin
adapters over `EpisodeBatch`; none of them carries dynamics of its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from l2o_gym import native_kernel
from l2o_gym.history_window import HistoryWindow
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.problem import Problem, TaskFamily, check_positive_int, check_split
from l2o_gym.rewards import LogSuboptimalityReward, make_reward
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, OptimizationState

DEFAULT_HORIZON = 40
DEFAULT_DIVERGENCE_PENALTY = 2.0
DEFAULT_INSTANCE_POOL = 64  # where the reward needs f*: one batched solve per 64 fresh instances


def check_horizon(horizon: int | tuple[int, int]) -> tuple[int, int]:
    """A horizon T, or a range (low, high) sampled uniformly per episode, as (low, high)."""
    if isinstance(horizon, (tuple, list)) and len(horizon) == 2:
        low, high = (check_positive_int("horizon", h) for h in horizon)
        if low > high:
            raise ValueError(f"horizon range must have low <= high, got {tuple(horizon)}")
        return low, high
    h = check_positive_int("horizon", horizon)
    return h, h


def observation_spec_from(
    observation: ObservationSpec | None, layout_options: dict[str, Any], default_action_scale: float
) -> ObservationSpec:
    """`observation` itself, or the spec the loose layout options describe (unset ones are None)."""
    if observation is None:
        return ObservationSpec.from_options(layout_options, default_action_scale)
    if not isinstance(observation, ObservationSpec):
        raise ValueError(f"observation must be an ObservationSpec, got {type(observation).__name__}")
    given = sorted(k for k, v in layout_options.items() if v is not None)
    if given:
        raise ValueError(
            f"give the layout as observation=ObservationSpec(...) or as options, not both; got {given} too"
        )
    return observation


class EpisodeBatch:
    """B episodes of optimizing instances of `family`.

    Actions are [B, d] in [-1, 1] (clipped there, as documented) and scaled by `action_scale`:
    the step is ``action_scale * action``. A non-finite action counts as a diverging step.
    With ``instance_pool = P > 0``, instances for ended episodes come from a pool sampled P at a
    time (one batched optimum solve per P instead of one per reset; for families whose f* is an
    expensive multistart solve, with staggered episode ends). Still one seeded stream: the pool's
    instances are those of ``family.sample(P, generator)``, handed out in order. The default
    (None) is `DEFAULT_INSTANCE_POOL` where the reward needs f*, so every instance's f* is solved
    once, in a batch; 0 samples each reset's instances directly (as every reset once did; the
    default where no f* is needed).
    The observation is `observation` (an `ObservationSpec`), or the spec the loose layout options
    describe (``coordinatewise``, ``history``, ``action_scale`` (default: the family's),
    ``quasi_newton_pairs``, ``time_features``; unset ones take their defaults), never both.
    ``objective="query"`` (families with ``has_query``) pays the reward on the held-out query loss;
    everything else (observation, state, divergence) stays that of the training objective.
    ``task_metrics=False`` leaves the family's task metrics (`Problem.metrics`: a meta-learning
    family's query loss or accuracy, a forward pass over its query set every step) out of `info`;
    evaluation reads them from the problem itself (`l2o_gym.unroll`), not from the env's info.
    ``window_views=True`` (set by an env that returns its dict observations as views, ``copy=False``)
    lays the observed windows out time first (`OptimizationState.start`'s ``time_major``).
    """

    def __init__(
        self,
        family: TaskFamily,
        num_instances: int,
        *,
        horizon: int | tuple[int, int] = DEFAULT_HORIZON,
        observation: ObservationSpec | None = None,
        history: int | None = None,
        reward: str = "auto",
        action_scale: float | None = None,
        coordinatewise: bool | None = None,
        split: str = "train",
        device: str | torch.device = "cpu",
        divergence_penalty: float = DEFAULT_DIVERGENCE_PENALTY,
        explode_ratio: float = DEFAULT_EXPLODE_RATIO,
        instance_pool: int | None = None,
        quasi_newton_pairs: int | None = None,
        time_features: bool | None = None,
        objective: str = "train",
        task_metrics: bool = True,
        window_views: bool = False,
    ) -> None:
        if not isinstance(family, TaskFamily):
            raise TypeError(f"family must be a TaskFamily, got {type(family).__name__}")
        self.family = family
        self.num_instances = check_positive_int("num_instances", num_instances)
        self.horizon_range = check_horizon(horizon)
        layout_options = {
            "coordinatewise": coordinatewise,
            "history": history,
            "action_scale": action_scale,
            "quasi_newton_pairs": quasi_newton_pairs,
            "time_features": time_features,
        }
        self.observation_spec = observation_spec_from(observation, layout_options, family.default_action_scale)
        # objective "query": the reward is paid on the held-out query loss (l2o_gym.rewards)
        self.objective = objective
        if not isinstance(task_metrics, bool):
            raise ValueError(f"task_metrics must be true or false, got {task_metrics!r}")
        self.task_metrics = task_metrics
        self.window_views = bool(window_views)
        self.reward_fn = make_reward(reward, family.has_optimum, objective=objective, has_query=family.has_query)
        self.split = check_split(split)
        self.device = torch.device(device)
        if not divergence_penalty >= 0:
            raise ValueError(f"divergence_penalty must be >= 0, got {divergence_penalty!r}")
        self.divergence_penalty = float(divergence_penalty)
        if not explode_ratio > 0:
            raise ValueError(f"explode_ratio must be > 0, got {explode_ratio!r}")
        self.explode_ratio = float(explode_ratio)
        if instance_pool is None:
            instance_pool = DEFAULT_INSTANCE_POOL if self.reward_fn.needs_optimum else 0
        if isinstance(instance_pool, bool) or not isinstance(instance_pool, int) or instance_pool < 0:
            raise ValueError(f"instance_pool must be an int >= 0 (or None for the default), got {instance_pool!r}")
        self.instance_pool = instance_pool
        self._pool: Problem | None = None
        self.dim = family.dim
        self.state: OptimizationState | None = None
        self.horizon: Tensor | None = None
        self._rows: Tensor | None = None  # the rows buffer of observe(copy=False)

    # -- episodes -------------------------------------------------------------------------
    def _sample(self, n: int, generator: torch.Generator) -> Problem:
        problem = self.family.sample(n, generator, self.split, self.device)
        if self.reward_fn.needs_optimum:
            problem.optimum()  # one batched solve for all n
        return problem

    def _draw(self, n: int, generator: torch.Generator) -> Problem:
        """n fresh instances: sampled now, or taken from the pool (refilled `instance_pool` at a time)."""
        if not self.instance_pool:
            return self._sample(n, generator)
        have = 0 if self._pool is None else self._pool.batch_size
        if have < n:
            fresh = self._sample(max(self.instance_pool, n - have), generator)
            self._pool = fresh if self._pool is None else self._pool.cat_rows(fresh)
        if self._pool.batch_size == n:  # the whole pool: handed out as it is, no copy
            problem, self._pool = self._pool, None
            return problem
        rows = torch.arange(self._pool.batch_size, device=self._pool.device)
        problem, self._pool = self._pool.select_rows(rows[:n]), self._pool.select_rows(rows[n:])
        return problem

    def _new_episodes(
        self, n: int, generator: torch.Generator, reuse: OptimizationState | None = None
    ) -> tuple[OptimizationState, Tensor]:
        """n fresh episodes' state and horizons [n] (`reuse`: a state they replace whole)."""
        problem = self._draw(n, generator)
        spec = self.observation_spec
        state = OptimizationState.start(
            problem,
            history=spec.history,
            explode_ratio=self.explode_ratio,
            coordinate_major=spec.coordinatewise,
            reuse=reuse,
            time_major=self.window_views,
        )
        low, high = self.horizon_range
        horizon = torch.randint(low, high + 1, (n,), generator=generator).to(self.device)
        return state, horizon

    def reset(self, generator: torch.Generator, fresh_pool: bool = True) -> None:
        """Start B fresh episodes on new instances drawn from `generator` (and the instance pool's
        remaining instances first, with ``fresh_pool=False``)."""
        if fresh_pool:
            self._pool = None
        self.state, self.horizon = self._new_episodes(self.num_instances, generator)
        self.reward_fn.start(self.state)

    def reset_rows(self, mask: Tensor, generator: torch.Generator) -> OptimizationState | None:
        """Start fresh episodes, on new instances, where mask [B] is true; returns the fresh
        episodes' own state (mask.sum() rows: their observation is that of the rows replaced),
        None where mask is all false."""
        n = int(mask.sum())
        if n == 0:
            return None
        if n == self.num_instances:  # every episode ended at once: the fresh ones replace them whole,
            # in the old windows' memory (observations returned before were copies, or views
            # documented as valid until the next step)
            self.state, self.horizon = self._new_episodes(n, generator, reuse=self.require_state())
            state = self.state
        else:
            state, horizon = self._new_episodes(n, generator)
            self.require_state().replace_rows(mask, state)
            self.horizon[mask] = horizon
        self.reward_fn.start(self.state, mask)
        return state

    def require_state(self) -> OptimizationState:
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        return self.state

    # -- transition -----------------------------------------------------------------------
    def check_action(self, action: Tensor) -> Tensor:
        """action as a [B, d] tensor on the device, or a ValueError naming the expected shape."""
        shape = (self.num_instances, self.dim)
        if tuple(action.shape) != shape:
            raise ValueError(f"action must have shape {shape}, got {tuple(action.shape)}")
        dtype = self.require_state().x.dtype
        if action.dtype == dtype and action.device == self.device:
            return action
        return action.to(device=self.device, dtype=dtype)

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Apply action [B, d]; return reward [B], terminated [B] (diverged), truncated [B]."""
        state = self.require_state()
        action = self.check_action(action)
        t_before, f_prev = state.t, state.f  # advance replaces these tensors, never writes into them
        # clipped to [-1, 1]; a non-finite entry becomes NaN (a - a is 0 where a is finite, NaN
        # elsewhere), so that the state counts the step as diverging
        scale = self.observation_spec.action_scale
        lib = native_kernel.library() if action.dtype == torch.float32 and action.device.type == "cpu" else None
        if lib is not None:
            step = native_kernel.scaled_actions(lib, action.contiguous(), scale)
        else:
            step = action.clamp(-1.0, 1.0).add_(action - action).mul_(scale)
        diverged_now = state.advance(step)
        if lib is not None and self._native_outcome(f_prev, state):
            objectives = (f_prev, state.f, state.f0, state.problem.optimum())
            steps = (diverged_now, t_before, state.t, self.horizon)
            return native_kernel.log_suboptimality_outcome(
                lib, objectives, self.reward_fn.eps, steps, -self.divergence_penalty
            )
        reward = self.reward_fn(f_prev, state)
        if bool(diverged_now.any()):
            penalty = -self.divergence_penalty * (self.horizon - t_before).to(reward.dtype)
            reward = torch.where(diverged_now, penalty, reward)
        terminated = diverged_now
        truncated = ~terminated & (state.t >= self.horizon)
        return reward, terminated, truncated

    def _native_outcome(self, f_prev: Tensor, state: OptimizationState) -> bool:
        """Whether `native_kernel.log_suboptimality_outcome` computes this step's reward and ends:
        the log-suboptimality reward itself, float32 objectives and int64 steps, contiguous."""
        if type(self.reward_fn) is not LogSuboptimalityReward:
            return False
        for t in (f_prev, state.f, state.f0, state.problem.optimum()):  # a loop, not all(...): every step
            if t.dtype != torch.float32 or not t.is_contiguous() or t.requires_grad:
                return False
        for t in (state.t, self.horizon):
            if t.dtype != torch.int64 or not t.is_contiguous():
                return False
        return True

    # -- what the agent and the user see --------------------------------------------------
    def observe(self, copy: bool = True) -> Tensor | dict[str, Tensor]:
        """Observation of every instance: [B, d, F] (coordinatewise) or a dict of [B, ...].

        ``copy=False``: the dict's tensors are views of the state's own tensors and windows (x
        [B, d], the signed-log gradient window [B, H, d] and the improvements [B, H], strided), no
        O(H·d) copy; rows are written into the same buffer every step (no fresh allocation). Either
        is valid until the next step or reset, which may write into it."""
        state = self.require_state()
        if copy:
            return self.observation_spec.observe(state)
        if self.observation_spec.coordinatewise:
            observer = self.observation_spec.observer(state.x.shape[1])
            self._rows = observer(state, self._rows)
            return self._rows
        return {
            name: item.view() if isinstance(item, HistoryWindow) else item.detach()
            for name, item in self.dict_parts().items()
        }

    def dict_parts(self) -> dict[str, Tensor | HistoryWindow]:
        """The dict observation's parts as the state holds them: ``location`` x [B, d], the windows
        of ``gradients`` (signed-log, items [B, d]) and ``improvements`` (items [B])."""
        state = self.require_state()
        return {"location": state.x, "gradients": state.log_grad_window, "improvements": state.change_window}

    def info(self) -> dict[str, Tensor]:
        """Per-instance figures [B]: raw objective, suboptimality where f* is known, task metrics
        (unless ``task_metrics=False``)."""
        state = self.require_state()
        info = {"objective": state.f, "step": state.t, "diverged": state.diverged}
        f_star = state.problem.f_star
        if f_star is not None:
            info["suboptimality"] = state.f - f_star
        if self.task_metrics:
            info.update(state.problem.metrics(state.x))
        return info
