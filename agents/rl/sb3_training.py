"""Train a learned optimizer with stable-baselines3 on an l2o_gym environment.

`train_sb3` reads like SB3's ``learn``: check the configuration and the run folder (before any
work), build the environment, build the model (or restore it from the run's checkpoint), warm
starts, callbacks, learn, save. Everything runs on the natively batched SB3 VecEnv. A run folder
holds ``best_model/`` (best on held-out validation), ``model/`` (final) and ``warm_start/`` (the
policy PPO starts from, after the warm starts): saved learned optimizers (l2o_meta.json +
policy.pth, loadable with `agents.runtime.saved_rules.load_rule`); ``checkpoint/`` (verified SB3
checkpoints for --resume, `agents.rl.checkpoints`), ``tb/`` (TensorBoard, with held-out validation
metrics) and ``hyperparams.yaml``. Every file is written atomically (a learned optimizer's metadata
last), so a crash loses nothing complete.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

import l2o_gym
from agents.rl.algorithms import algorithm_class, policy_name
from agents.rl.checkpoints import latest_checkpoint, restore, write_checkpoint
from agents.rl.config import (
    ALGOS,
    BackpropSettings,
    ConfigError,
    ImitationSettings,
    TrainingConfig,
    with_window_pairs,
)
from agents.rl.config_loading import check_training_config, load_training_config
from agents.rl.fast_tanh import use_sigmoid_tanh
from agents.rl.row_subsampling import algo_kwargs
from agents.rl.run_family import RunFamily
from agents.rl.run_folder import check_run_folder, clear_run
from agents.rl.validation_callback import ValidationCallback
from agents.runtime.residual_step import ResidualStep, ResidualVecEnv, zero_last_layer
from agents.runtime.saved_rules import write_meta
from agents.runtime.sb3_policy_io import WEIGHTS_FORMAT, policy_kwargs_from_config, save_policy
from agents.runtime.step_forms import StepForm, StepFormVecEnv
from l2o_gym.atomic_io import atomic_write_json, atomic_write_text
from l2o_gym.envs.sb3_vec_env import OptimizationSB3VecEnv
from l2o_gym.episode_batch import DEFAULT_HORIZON, check_horizon
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.rewards import ReferenceReward
from l2o_gym.update_rule import UpdateRule


def save_learned_optimizer(model: Any, folder: Path, meta: dict[str, Any]) -> Path:
    """The policy's weights, then its metadata (the completion marker), atomically."""
    save_policy(model.policy, folder)
    write_meta(folder, {**meta, "timesteps": int(model.num_timesteps)})
    return folder


class CheckpointEvery(BaseCallback):
    """A verified checkpoint (`agents.rl.checkpoints`) every `every` env steps."""

    def __init__(self, save: Callable[[Any], Path], every: int) -> None:
        super().__init__()
        self.save, self.every, self.last = save, every, 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last >= self.every:
            self.last = self.num_timesteps
            self.save(self.model)
        return True


# ---------------------------------------------------------------------------------------------
# warm starts


def imitation_teacher(
    settings: ImitationSettings | Mapping[str, Any], family: RunFamily | str, horizon: int, pairs: int = 0
) -> UpdateRule:
    """The imitation settings' teacher, tuned on the run's family at `horizon`: the tuned `teacher`
    (with `teacher_hparams` the teacher with those hyperparameters instead), or with `opening` a
    `PhasedRule` — the tuned `opening` optimizer for each instance's first `opening_steps` steps,
    then the teacher. `family` may be an env id (its default family); a teacher reading the
    window's quasi-Newton direction uses the rows' `pairs` (`agents.rl.config.with_window_pairs`)."""
    from agents.hand_designed import make_optimizer
    from agents.runtime.phased_rule import PhasedRule

    if not isinstance(settings, ImitationSettings):
        settings = ImitationSettings.parse(settings)
    if isinstance(family, str):
        family = RunFamily.resolve(family, {})
    if settings.teacher_hparams is None:
        main = family.tuned(settings.teacher, horizon)
    else:
        main = make_optimizer(settings.teacher, **settings.teacher_hparams)
    main = with_window_pairs(main, pairs)
    if settings.opening is None:
        return main
    opening = with_window_pairs(family.tuned(settings.opening, horizon), pairs)
    return PhasedRule(opening, main, settings.steps_of_opening)


def warm_start(model: Any, family: RunFamily, settings: ImitationSettings, meta: dict[str, Any], seed: int) -> float:
    """Imitation warm start of `model`'s policy (described by the run's metadata `meta`) from the
    teacher of `settings` (see `imitation_teacher`); returns the final imitation error.

    After imitating the teacher's trajectories, each DAgger round adds the teacher's actions on
    the current student's own trajectories (fresh training instances) and fits again on all pairs.
    """
    from agents.rl.imitation import imitate, teacher_rows
    from agents.runtime.learned_optimizer import LearnedOptimizer

    observation = ObservationSpec.from_saved_meta(meta)
    horizon = meta["horizon"][1]
    step_form = StepForm.from_meta(meta)
    sizes = {"instances": settings.instances, "horizon": horizon, "observation": observation}
    pairs = observation.quasi_newton_pairs
    teacher = imitation_teacher(settings, family, horizon, pairs)
    rows, actions = teacher_rows(teacher, family.family, seed=seed, **sizes)
    targets = step_form.policy_outputs(actions[:, 0])
    error = imitate(model.policy, rows, targets, epochs=settings.epochs, seed=seed)
    for round_index in range(1, settings.dagger_rounds + 1):
        student = LearnedOptimizer(model.policy, meta, observation_spec=observation)
        teacher = imitation_teacher(settings, family, horizon, pairs)  # fresh buffers
        more_rows, more_actions = teacher_rows(
            teacher, family.family, seed=seed + round_index, student=student, **sizes
        )
        rows, targets = torch.cat([rows, more_rows]), torch.cat([targets, step_form.policy_outputs(more_actions[:, 0])])
        error = imitate(model.policy, rows, targets, epochs=settings.epochs, seed=seed)
    return error


def config_teacher(config: TrainingConfig, family: RunFamily) -> UpdateRule | None:
    """The run's imitation teacher (None without imitation), built as the warm start builds it:
    tuned at the longest training horizon, with the rows' quasi-Newton pairs."""
    if config.imitation is None:
        return None
    horizon = check_horizon(family.episode_options.get("horizon", DEFAULT_HORIZON))[1]
    pairs = int(family.episode_options.get("quasi_newton_pairs") or 0)
    return imitation_teacher(config.imitation, family, horizon, pairs)


def warm_starts(model: Any, config: TrainingConfig, family: RunFamily, meta: dict[str, Any], out_dir: Path) -> None:
    """The configured warm starts of a new run: a residual policy's zero correction (it starts as
    its teacher; no imitation fit), else imitation, then backpropagation through unrolls."""
    seed = meta["seed"]
    if config.residual is not None:
        zero_last_layer(model.policy)
    elif config.imitation is not None:
        warm_start(model, family, config.imitation, meta, seed)
    if config.backprop is not None:
        from agents.rl.backprop_warm_start import backprop_warm_start

        result = backprop_warm_start(model.policy, family.family, config.backprop, meta, seed, config.eval_horizons)
        atomic_write_json(out_dir / "backprop_warm_start.json", dataclasses.asdict(result))


# ---------------------------------------------------------------------------------------------
# environment, model, validation


def linear_schedule(spec: str) -> Callable[[float], float]:
    """RL Zoo's "lin_<value>": a rate decaying linearly from value to 0 over training."""
    try:
        start = float(spec.removeprefix("lin_"))
    except ValueError:
        raise ValueError(f"a schedule must look like 'lin_0.0003', got {spec!r}") from None
    return lambda progress_remaining: progress_remaining * start


def with_schedules(algo_kwargs: dict[str, Any]) -> dict[str, Any]:
    """algo kwargs with "lin_<value>" learning rates / clip ranges turned into linear schedules."""
    return {
        key: linear_schedule(value) if isinstance(value, str) and value.startswith("lin_") else value
        for key, value in algo_kwargs.items()
    }


def step_form_from_config(config: Mapping[str, Any] | None) -> StepForm:
    """The `step` hyperparameters (form, log_range) as a StepForm (default: linear)."""
    from agents.rl.config import StepSettings, parse_section

    return parse_section(StepSettings, config or {}, "step", "the step settings").build()


def build_env(
    config: TrainingConfig, family: RunFamily, seed: int
) -> tuple[VecEnv, OptimizationSB3VecEnv, ResidualStep | None]:
    """(the VecEnv the agent acts on: step form or residual and episode monitor applied, the raw
    batched env, the residual step or None). With `baseline`, the raw env pays the reward against
    the teacher run on the same instances (`l2o_gym.rewards.ReferenceReward`)."""
    options = dict(family.episode_options)
    if config.baseline is not None:
        options["reward"] = ReferenceReward(config_teacher(config, family), config.baseline.form, config.baseline.eps)
    raw = OptimizationSB3VecEnv(
        family.family, config.num_envs, seed=seed, coordinatewise=config.coordinatewise, **options
    )
    residual = None
    if config.residual is not None:
        residual = ResidualStep(config_teacher(config, family), config.residual.form, config.residual.range)
        agent_env = ResidualVecEnv(raw, raw, residual)
    else:
        step_form = config.step.build()
        agent_env = raw if step_form.name == "linear" else StepFormVecEnv(raw, step_form)
    return VecMonitor(agent_env), raw, residual  # the monitor logs episode returns and lengths (rollout/ep_rew_mean)


def run_meta(
    config: TrainingConfig,
    family: RunFamily,
    algo: str,
    raw: OptimizationSB3VecEnv,
    seed: int,
    residual: ResidualStep | None = None,
) -> dict:
    """The saved learned optimizers' metadata: everything needed to rebuild the policy alone (a
    residual policy's teacher and its hyperparameters included)."""
    episodes = raw.episodes
    extra = {} if residual is None else {"residual": residual.to_meta()}
    return {
        **extra,
        "kind": "sb3",
        "algo": algo,
        "env_id": family.env_id,
        "env_kwargs": config.env,
        "observation": episodes.observation_spec.to_meta(),
        "weights_format": WEIGHTS_FORMAT,
        "dim": episodes.dim,
        "step_form": config.step.build().to_meta(),
        "horizon": list(episodes.horizon_range),
        # gSDE changes the policy's parameters, so it is recorded with the policy kwargs
        "policy_kwargs": {**config.policy, **({"use_sde": True} if config.algo.get("use_sde") else {})},
        "seed": seed,
    }


def build_model(
    algo: str, config: TrainingConfig, venv: VecEnv, seed: int, out_dir: Path, verbose: int, speedups: bool = True
) -> Any:
    """The SB3 model: for PPO and A2C the algorithm with batched truncation bootstraps
    (`agents.rl.truncation_bootstrap`), and its policy's tanh layers computing tanh through one
    sigmoid (the same function within 2.4e-7, several times faster on CPU: `agents.rl.fast_tanh`;
    saved policies unchanged). `speedups=False`: SB3's own class and `nn.Tanh` (to measure them)."""
    model = algorithm_class(algo, batched_bootstrap=speedups)(
        policy_name(algo, config.coordinatewise),
        venv,
        seed=seed,
        verbose=verbose,
        tensorboard_log=str(out_dir / "tb"),
        policy_kwargs=policy_kwargs_from_config(config.policy),
        **algo_kwargs(with_schedules(config.algo)),
    )
    if speedups:
        use_sigmoid_tanh(model.policy)
    return model


def validation_references(family: RunFamily | str, horizons: list[int], reference: Any = None) -> dict[int, Any]:
    """horizon -> the rule validation compares against there: `reference` at every horizon, or
    tuned Adam tuned at each on the run's family."""
    checked = [l2o_gym.problem.check_positive_int("eval_horizons", h) for h in horizons]
    if reference is not None:
        return dict.fromkeys(checked, reference)
    family = RunFamily.resolve(family, {}) if isinstance(family, str) else family
    return {h: family.tuned("adam", h) for h in checked}


def recorded_settings(config: TrainingConfig) -> dict[str, Any]:
    """The settings a checkpoint records and a resume must match (the step budget aside)."""
    return json_plain({k: v for k, v in config.to_dict().items() if k != "timesteps"})


def json_plain(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class TrainingResult:
    out_dir: Path
    best: Path
    final: Path
    timesteps: int
    wall_time_s: float
    validation: list[dict[str, float]]


def prepare_training(
    env_id: str, algo: str, out_dir: str | Path, *, resume: bool, overwrite: bool, **config_args: Any
) -> tuple[TrainingConfig, RunFamily]:
    """Everything checked before any work (configuration, family, run folder); nothing written."""
    config = load_training_config(env_id, algo, **config_args)
    family = check_training_config(config, env_id, algo)
    try:
        algo_kwargs(config.algo)
    except ValueError as err:
        raise ConfigError(f"{err} (in {config.source})") from None
    check_run_folder(out_dir, resume=resume, overwrite=overwrite)
    if resume:
        checkpoint = latest_checkpoint(Path(out_dir))
        if checkpoint.settings != recorded_settings(config):
            changed = sorted(
                k
                for k in {*checkpoint.settings, *recorded_settings(config)}
                if checkpoint.settings.get(k) != recorded_settings(config).get(k)
            )
            raise ConfigError(
                f"--resume: the settings differ from the run's in {', '.join(changed)}; resume with the settings "
                f"in {Path(out_dir) / 'hyperparams.yaml'}"
            )
    return config, family


def train_sb3(
    env_id: str,
    algo: str = "ppo",
    *,
    out_dir: str | Path,
    timesteps: int | None = None,
    num_envs: int | None = None,
    seed: int = 0,
    config: str | Path | TrainingConfig | None = None,
    coordinatewise: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress_bar: bool = True,
    validation_instances: int = 256,
    reference: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    verbose: int = 0,
) -> TrainingResult:
    """Train `algo` on `env_id`; returns where the best and final learned optimizers are.

    Validation runs at each of the `eval_horizons` hyperparameter (default: the longest training
    horizon) against `reference` (default: tuned Adam, tuned per horizon on the run's family).
    With `resume=True`, continues the run in `out_dir` from its newest verified checkpoint up to
    `timesteps` in all; a folder that holds a run is replaced only with `overwrite=True`.
    """
    args = {"timesteps": timesteps, "num_envs": num_envs, "coordinatewise": coordinatewise, "env_kwargs": env_kwargs}
    config, family = prepare_training(env_id, algo, out_dir, resume=resume, overwrite=overwrite, config=config, **args)
    out_dir = Path(out_dir)
    if overwrite:
        clear_run(out_dir)
    venv, raw, residual = build_env(config, family, seed)
    meta = run_meta(config, family, algo, raw, seed, residual)
    atomic_write_text(
        out_dir / "hyperparams.yaml", yaml.safe_dump({"env_id": env_id, "algo": algo, **config.to_dict()})
    )
    model = build_model(algo, config, venv, seed, out_dir, verbose)
    if resume:
        restore(model, latest_checkpoint(out_dir))
    else:
        warm_starts(model, config, family, meta, out_dir)
        save_learned_optimizer(model, out_dir / "warm_start", meta)  # where PPO starts, to compare against

    def checkpoint(model: Any) -> Path:
        return write_checkpoint(model, out_dir, algo, recorded_settings(config))

    horizons = config.eval_horizons or [meta["horizon"][1]]
    validation_problem = family.family.sample(validation_instances, torch.Generator().manual_seed(seed), "validation")
    validation = ValidationCallback(
        validation_problem,
        validation_references(family, horizons, reference),
        meta,
        config.eval_freq,
        on_best=lambda cb: save_learned_optimizer(cb.model, out_dir / "best_model", meta),
        teacher=config_teacher(config, family),
        select_best=config.select_best,
    )
    callbacks = CallbackList([validation, CheckpointEvery(checkpoint, config.eval_freq)])
    remaining = config.timesteps - int(model.num_timesteps)
    start = time.perf_counter()
    if remaining > 0:
        model.learn(
            remaining, callback=callbacks, progress_bar=progress_bar, reset_num_timesteps=not resume, tb_log_name=algo
        )
    wall = time.perf_counter() - start
    checkpoint(model)
    validation.evaluate_and_keep_best()
    final = save_learned_optimizer(model, out_dir / "model", meta)
    return TrainingResult(out_dir, out_dir / "best_model", final, int(model.num_timesteps), wall, validation.history)


__all__ = ["ALGOS", "train_sb3", "TrainingResult", "BackpropSettings"]
