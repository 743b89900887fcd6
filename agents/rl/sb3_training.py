"""Train a learned optimizer with stable-baselines3 on an l2o_gym environment.

Everything runs on the natively batched SB3 VecEnv (`l2o_gym.make_sb3_vec_env`). A run folder
holds ``best_model/`` (best on held-out validation) and ``model/`` (final): saved learned
optimizers (l2o_meta.json + policy.pth, loadable with `agents.runtime.saved_rules.load_rule`); and
``checkpoint/model.zip`` (SB3's own checkpoint, for --resume), ``tb/`` (TensorBoard, with
held-out validation metrics) and ``hyperparams.yaml``. Every file is written atomically (a
learned optimizer's metadata last), so a crash loses nothing complete.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecMonitor

import l2o_gym
from agents.rl.hyperparams import load_hyperparams
from agents.rl.validation_callback import ValidationCallback
from agents.runtime.saved_rules import write_meta
from agents.runtime.sb3_policy_io import WEIGHTS_FORMAT, policy_kwargs_from_config, save_policy
from agents.runtime.step_forms import DEFAULT_LOG_RANGE, StepForm, StepFormVecEnv
from l2o_gym.atomic_io import atomic_write, atomic_write_json, atomic_write_text
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.family_loader import split_kwargs
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.registry import env_options, make_family
from l2o_gym.update_rule import UpdateRule

ALGOS = ("ppo", "sac", "td3", "a2c", "recurrent_ppo")
CHECKPOINT = "checkpoint/model.zip"
COORDINATEWISE_ONLY = ("step", "imitation", "backprop")  # hyperparameter sections a dict-layout policy ignores
COORDINATEWISE_ENV_OPTIONS = ("quasi_newton_pairs", "time_features")  # env options likewise
IMITATION_SETTINGS = ("teacher", "teacher_hparams", "opening", "opening_steps", "instances", "epochs", "dagger_rounds")


def algorithm_class(algo: str) -> type:
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if algo == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def policy_name(algo: str, coordinatewise: bool) -> str:
    if algo == "recurrent_ppo":
        return "MlpLstmPolicy" if coordinatewise else "MultiInputLstmPolicy"
    return "MlpPolicy" if coordinatewise else "MultiInputPolicy"


def save_learned_optimizer(model: Any, folder: Path, meta: dict[str, Any]) -> Path:
    """The policy's weights, then its metadata (the completion marker), atomically."""
    save_policy(model.policy, folder)
    write_meta(folder, {**meta, "timesteps": int(model.num_timesteps)})
    return folder


def save_checkpoint(model: Any, out_dir: Path) -> Path:
    return atomic_write(out_dir / CHECKPOINT, lambda tmp: model.save(tmp))


class CheckpointEvery(BaseCallback):
    """SB3 checkpoint every `every` env steps (atomically replaced)."""

    def __init__(self, out_dir: Path, every: int) -> None:
        super().__init__()
        self.out_dir, self.every, self.last = out_dir, every, 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last >= self.every:
            self.last = self.num_timesteps
            save_checkpoint(self.model, self.out_dir)
        return True


def imitation_teacher(config: dict[str, Any], env_id: str, horizon: int) -> UpdateRule:
    """The `imitation` hyperparameters' teacher, tuned on `env_id` at `horizon`: the tuned `teacher`
    (default momentum; with `teacher_hparams` the teacher with those hyperparameters instead), or
    with `opening` a `PhasedRule` — the tuned `opening` optimizer for each instance's first
    `opening_steps` (default 20) steps, then the teacher."""
    from agents.hand_designed import make_optimizer
    from agents.hand_designed.tuning import tuned_optimizer
    from agents.runtime.phased_rule import PhasedRule

    if "opening_steps" in config and "opening" not in config:
        raise ValueError("imitation setting opening_steps needs an opening optimizer (e.g. opening: adam)")
    name, hparams = config.get("teacher", "momentum"), config.get("teacher_hparams")
    if hparams is not None and not isinstance(hparams, dict):
        raise ValueError(f"imitation setting teacher_hparams must be a mapping of hyperparameters, got {hparams!r}")
    main = tuned_optimizer(name, env_id, horizon) if hparams is None else make_optimizer(name, **hparams)
    if "opening" not in config:
        return main
    opening = tuned_optimizer(config["opening"], env_id, horizon)
    return PhasedRule(opening, main, int(config.get("opening_steps", 20)))


def warm_start(model: Any, family: Any, config: dict[str, Any], meta: dict[str, Any], seed: int) -> float:
    """Imitation warm start of `model`'s policy (described by the run's metadata `meta`) from a
    tuned hand-designed teacher (`imitation` hyperparameters: teacher, opening, opening_steps
    (see `imitation_teacher`), instances, epochs, dagger_rounds); returns the final imitation error.

    After imitating the teacher's trajectories, each DAgger round adds the teacher's actions on
    the current student's own trajectories (fresh training instances) and fits again on all pairs.
    """
    from agents.rl.imitation import imitate, student_rows, teacher_rows
    from agents.runtime.learned_optimizer import LearnedOptimizer

    observation = ObservationSpec.from_saved_meta(meta)
    if meta["algo"] not in ("ppo", "a2c") or not observation.coordinatewise:
        raise ValueError(f"imitation warm start needs a coordinatewise ppo or a2c policy, got {meta['algo']!r}")
    unknown = sorted(set(config) - set(IMITATION_SETTINGS))
    if unknown:
        raise ValueError(f"unknown imitation setting(s) {unknown}; allowed: {', '.join(IMITATION_SETTINGS)}")
    horizon = meta["horizon"][1]
    step_form = StepForm.from_meta(meta)
    sizes = {
        "instances": int(config.get("instances", 256)),
        "horizon": horizon,
        "observation": observation,
    }
    epochs = int(config.get("epochs", 30))
    rows, actions = teacher_rows(imitation_teacher(config, meta["env_id"], horizon), family, seed=seed, **sizes)
    targets = step_form.policy_outputs(actions[:, 0])
    error = imitate(model.policy, rows, targets, epochs=epochs, seed=seed)
    for round_index in range(1, int(config.get("dagger_rounds", 0)) + 1):
        student = LearnedOptimizer(model.policy, meta, observation_spec=observation)
        teacher = imitation_teacher(config, meta["env_id"], horizon)  # fresh buffers
        more_rows, more_actions = student_rows(student, teacher, family, seed=seed + round_index, **sizes)
        rows, targets = torch.cat([rows, more_rows]), torch.cat([targets, step_form.policy_outputs(more_actions[:, 0])])
        error = imitate(model.policy, rows, targets, epochs=epochs, seed=seed)
    return error


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


def step_form_from_config(config: dict[str, Any] | None) -> StepForm:
    """The `step` hyperparameters (form, log_range) as a StepForm (default: linear)."""
    config = dict(config or {})
    unknown = sorted(set(config) - {"form", "log_range"})
    if unknown:
        raise ValueError(f"unknown step setting(s) {unknown}; allowed: form, log_range")
    return StepForm(config.get("form", "linear"), config.get("log_range", DEFAULT_LOG_RANGE))


def validation_references(env_id: str, horizons: list[int], reference: Any = None) -> dict[int, Any]:
    """horizon -> the rule validation compares against there: `reference` at every horizon, or
    tuned Adam tuned at each."""
    checked = [l2o_gym.problem.check_positive_int("eval_horizons", h) for h in horizons]
    if reference is not None:
        return dict.fromkeys(checked, reference)
    from agents.hand_designed.tuning import tuned_optimizer

    return {h: tuned_optimizer("adam", env_id, h) for h in checked}


@dataclass
class TrainingResult:
    out_dir: Path
    best: Path
    final: Path
    timesteps: int
    wall_time_s: float
    validation: list[dict[str, float]]


def train_sb3(
    env_id: str,
    algo: str = "ppo",
    *,
    out_dir: str | Path,
    timesteps: int | None = None,
    num_envs: int | None = None,
    seed: int = 0,
    config: str | Path | None = None,
    coordinatewise: bool | None = None,
    resume: bool = False,
    progress_bar: bool = True,
    validation_instances: int = 256,
    reference: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    verbose: int = 0,
) -> TrainingResult:
    """Train `algo` on `env_id`; returns where the best and final learned optimizers are.

    Validation runs at each of the `eval_horizons` hyperparameter (default: the longest training
    horizon) against `reference` (default: tuned Adam from `agents.hand_designed.tuning`, tuned per horizon).
    With `resume=True`, continues the run in `out_dir` from its checkpoint and step count up to
    `timesteps` in all.
    """
    cls = algorithm_class(algo)
    params = load_hyperparams(env_id, algo, config)
    if timesteps is not None:
        params["timesteps"] = timesteps
    if num_envs is not None:
        params["num_envs"] = num_envs
    if coordinatewise is not None:
        params["coordinatewise"] = coordinatewise
    params["env"] = {**params.get("env", {}), **(env_kwargs or {})}
    total = l2o_gym.problem.check_positive_int("timesteps", int(params["timesteps"]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    coord = bool(params["coordinatewise"])
    if not coord:
        dropped = [key for key in COORDINATEWISE_ONLY if params.pop(key, None)]
        for option in COORDINATEWISE_ENV_OPTIONS:
            if (params.get("env") or {}).pop(option, 0):
                dropped.append(f"env.{option}")
        if dropped:
            warnings.warn(
                f"{dropped} apply to the coordinatewise layout only; ignored for coordinatewise=False", stacklevel=2
            )
    algo_kwargs = with_schedules(params.get("algo", {}) or {})
    env_kw = {**env_options(env_id), **params["env"]}
    raw_venv = l2o_gym.make_sb3_vec_env(env_id, int(params["num_envs"]), seed=seed, coordinatewise=coord, **env_kw)
    episodes: EpisodeBatch = raw_venv.episodes
    step_form = step_form_from_config(params.get("step"))
    agent_venv = raw_venv if step_form.name == "linear" else StepFormVecEnv(raw_venv, step_form)
    venv = VecMonitor(agent_venv)  # episode returns and lengths in the logs (rollout/ep_rew_mean)
    horizon = episodes.horizon_range[1]
    meta = {
        "kind": "sb3",
        "algo": algo,
        "env_id": env_id,
        "env_kwargs": params["env"],
        "observation": episodes.observation_spec.to_meta(),
        "weights_format": WEIGHTS_FORMAT,
        "dim": episodes.dim,
        "step_form": step_form.to_meta(),
        "horizon": list(episodes.horizon_range),
        # the policy is rebuilt from these alone: gSDE changes its parameters, so it is recorded here
        "policy_kwargs": {**params.get("policy", {}), **({"use_sde": True} if algo_kwargs.get("use_sde") else {})},
        "seed": seed,
    }
    atomic_write_text(out_dir / "hyperparams.yaml", yaml.safe_dump({"env_id": env_id, "algo": algo, **params}))

    checkpoint = out_dir / CHECKPOINT
    if resume:
        if not checkpoint.is_file():
            raise FileNotFoundError(f"cannot resume: {checkpoint} does not exist")
        # SB3's checkpoint holds pickled objects: only resume runs of your own.
        model = cls.load(checkpoint, env=venv, tensorboard_log=str(out_dir / "tb"))
    else:
        model = cls(
            policy_name(algo, coord),
            venv,
            seed=seed,
            verbose=verbose,
            tensorboard_log=str(out_dir / "tb"),
            policy_kwargs=policy_kwargs_from_config(params.get("policy")),
            **algo_kwargs,
        )

    family = make_family(env_id, **split_kwargs(params["env"])[1])
    imitation = params.get("imitation")
    if imitation and not resume:
        warm_start(model, family, imitation, meta, seed)
    backprop = params.get("backprop")
    if backprop and not resume:
        from agents.rl.backprop_warm_start import backprop_warm_start

        result = backprop_warm_start(model.policy, family, backprop, meta, seed, params.get("eval_horizons"))
        atomic_write_json(out_dir / "backprop_warm_start.json", dataclasses.asdict(result))
    validation_problem = family.sample(validation_instances, torch.Generator().manual_seed(seed), "validation")
    validation = ValidationCallback(
        validation_problem,
        validation_references(env_id, params.get("eval_horizons") or [horizon], reference),
        meta,
        int(params["eval_freq"]),
        on_best=lambda cb: save_learned_optimizer(cb.model, out_dir / "best_model", meta),
    )
    callbacks = CallbackList([validation, CheckpointEvery(out_dir, int(params["eval_freq"]))])
    remaining = total - int(model.num_timesteps)
    start = time.perf_counter()
    if remaining > 0:
        model.learn(
            remaining,
            callback=callbacks,
            progress_bar=progress_bar,
            reset_num_timesteps=not resume,
            tb_log_name=algo,
        )
    wall = time.perf_counter() - start
    save_checkpoint(model, out_dir)
    validation.evaluate_and_keep_best()
    final = save_learned_optimizer(model, out_dir / "model", meta)
    return TrainingResult(out_dir, out_dir / "best_model", final, int(model.num_timesteps), wall, validation.history)


__all__ = ["ALGOS", "train_sb3", "TrainingResult"]
