"""Typed training configuration: the YAML sections parsed once, checked, with defaults in one place.

`TrainingConfig.parse` turns a merged hyperparameter mapping into typed sections
(`agents.rl.config_loading.load_training_config` does the merging and the checks that need the
family or the algorithm); `MetaTrainingConfig.parse` does the same for the L2L / meta-LSTM
keywords. A bad key, type or value raises a `ConfigError`: one line naming the key, the value,
what is allowed and the file. Nothing here trains or builds anything.

A section that a dataclass describes (`StepSettings`, `ImitationSettings`, `BackpropSettings`)
declares each key with its default and its check in one `setting(...)` field.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.meta.meta_training_options import MetaTrainingOptions
from agents.runtime.residual_step import RESIDUAL_FORMS, STATE_ONLY_TEACHERS
from agents.runtime.step_forms import DEFAULT_LOG_RANGE, STEP_FORMS, StepForm

ALGOS = ("ppo", "sac", "td3", "a2c", "recurrent_ppo")
WARM_START_ALGOS = ("ppo", "a2c")  # the algorithms whose policies the warm starts fit
# sections that exist only for a coordinatewise ppo / a2c policy
COORDINATEWISE_SECTIONS = ("imitation", "backprop", "residual", "baseline")
# env options that exist only in the coordinatewise rows (a dict-layout run drops them)
COORDINATEWISE_ENV_OPTIONS = ("quasi_newton_pairs", "time_features")


class ConfigError(ValueError):
    """A bad configuration key or value: one line, raised before any work."""


# ---------------------------------------------------------------------------------------------
# value checks: each returns the value in its typed form or raises _Bad(what is allowed)


class _Bad(Exception):
    def __init__(self, allowed: str) -> None:
        super().__init__(allowed)
        self.allowed = allowed


def _number(value: Any) -> float:
    """A YAML number (YAML 1.1 reads ``1e-4`` as a string, so numeric strings count)."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise TypeError


def int_at_least(minimum: int) -> Callable[[Any], int]:
    allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def check(value: Any) -> int:
        try:
            number = _number(value)
        except (TypeError, ValueError):
            raise _Bad(allowed) from None
        if not (math.isfinite(number) and number == int(number) and number >= minimum):
            raise _Bad(allowed)
        return int(number)

    return check


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(value: Any) -> float:
    try:
        number = _number(value)
    except (TypeError, ValueError):
        raise _Bad("a positive finite number") from None
    if not (math.isfinite(number) and number > 0):
        raise _Bad("a positive finite number")
    return number


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Bad(f"one of {', '.join(choices)}")
        return value

    return check


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad("a mapping")
    return dict(value)


def hand_designed_name(value: Any) -> str:
    from agents.hand_designed import HAND_DESIGNED

    if value not in HAND_DESIGNED:
        raise _Bad(f"one of {', '.join(HAND_DESIGNED)}")
    return value


def hyperparameter_mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad("a mapping of hyperparameters")
    return dict(value)


def horizon_list(value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _Bad("a non-empty list of positive integers")
    try:
        return [positive_int(h) for h in value]
    except _Bad:
        raise _Bad("a non-empty list of positive integers") from None


def setting(default: Any, check: Callable[[Any], Any]) -> Any:
    """A dataclass field with its default and the check a given value must pass."""
    return field(default=default, metadata={"check": check})


def _fail(source: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key} must be {allowed}, got {value!r} (in {source})")


def check_value(check: Callable[[Any], Any], value: Any, key: str, source: str) -> Any:
    """`check(value)`, or a one-line ConfigError naming `key`, what is allowed and `source`."""
    try:
        return check(value)
    except _Bad as bad:
        raise _fail(source, key, value, bad.allowed) from None


def parse_section(cls: type, data: Any, section: str, source: str) -> Any:
    """`cls` (a dataclass of `setting` fields) from the YAML mapping `data` of `section`."""
    if not isinstance(data, Mapping):
        raise _fail(source, section, data, f"a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown {section} setting {unknown[0]!r} = {data[unknown[0]]!r} in {source}; allowed: {', '.join(names)}"
        )
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data and data[f.name] is not None:
            try:
                values[f.name] = f.metadata["check"](data[f.name])
            except _Bad as bad:
                raise _fail(source, f"{section}.{f.name}", data[f.name], bad.allowed) from None
    return cls(**values)


# ---------------------------------------------------------------------------------------------
# the sections


@dataclass(frozen=True)
class StepSettings:
    """`step`: how a coordinatewise policy's outputs become steps (agents/runtime/step_forms.py)."""

    form: str = setting("linear", one_of(*STEP_FORMS))
    log_range: float = setting(DEFAULT_LOG_RANGE, positive_float)

    def build(self) -> StepForm:
        return StepForm(self.form, self.log_range)


@dataclass(frozen=True)
class ImitationSettings:
    """`imitation`: the warm start from a tuned hand-designed teacher (agents/rl/imitation.py).

    teacher (tuned, or with teacher_hparams fixed ones), opening (tuned, for each instance's first
    opening_steps steps, default 20), instances, epochs, dagger_rounds."""

    teacher: str = setting("momentum", hand_designed_name)
    teacher_hparams: dict[str, float] | None = setting(None, hyperparameter_mapping)
    opening: str | None = setting(None, hand_designed_name)
    opening_steps: int | None = setting(None, positive_int)
    instances: int = setting(256, positive_int)
    epochs: int = setting(30, positive_int)
    dagger_rounds: int = setting(0, non_negative_int)

    DEFAULT_OPENING_STEPS = 20

    @classmethod
    def parse(cls, data: Any, source: str = "the imitation settings") -> ImitationSettings:
        settings = parse_section(cls, data, "imitation", source)
        if settings.opening_steps is not None and settings.opening is None:
            raise ConfigError(
                f"imitation setting opening_steps needs an opening optimizer (e.g. opening: adam) (in {source})"
            )
        if settings.teacher_hparams is not None:
            from agents.hand_designed import make_optimizer

            try:
                make_optimizer(settings.teacher, **settings.teacher_hparams)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"imitation.teacher_hparams: {err} (in {source})") from None
        return settings

    @property
    def steps_of_opening(self) -> int:
        return self.DEFAULT_OPENING_STEPS if self.opening_steps is None else self.opening_steps


@dataclass(frozen=True)
class BackpropSettings:
    """`backprop`: the warm start by backpropagation through unrolls (agents/rl/backprop_warm_start.py)."""

    iterations: int = setting(100, positive_int)
    batch_size: int = setting(64, positive_int)
    instances: int = setting(512, positive_int)
    truncation: int = setting(20, positive_int)
    lr: float = setting(1e-4, positive_float)
    grad_clip: float = setting(1.0, positive_float)
    validation_instances: int = setting(64, positive_int)

    @classmethod
    def parse(cls, data: Any, source: str = "the backprop settings") -> BackpropSettings:
        return parse_section(cls, data, "backprop", source)


@dataclass(frozen=True)
class ResidualSettings:
    """`residual`: the policy's output corrects the imitation teacher's step and starts at zero
    (agents/runtime/residual_step.py): form scale | add, range."""

    form: str = setting("scale", one_of(*RESIDUAL_FORMS))
    range: float = setting(1.0, positive_float)


@dataclass(frozen=True)
class BaselineSettings:
    """`baseline`: the reward measured against the imitation teacher run on the same instances
    (`l2o_gym.rewards.ReferenceReward`): form gap | log_ratio | cost, eps."""

    form: str = setting("gap", one_of("gap", "log_ratio", "cost"))
    eps: float = setting(1e-6, positive_float)


def check_state_only_teacher(section: str, imitation: ImitationSettings | None, source: str) -> None:
    """`residual` and `baseline` use the imitation teacher, which must compute its step from the
    state alone (its rows restart with the env's episodes) and have no opening phase."""
    if imitation is None:
        raise ConfigError(f"{section} needs an imitation section naming its teacher (in {source})")
    if imitation.teacher not in STATE_ONLY_TEACHERS or imitation.opening is not None:
        raise ConfigError(
            f"{section} needs imitation.teacher one of {', '.join(STATE_ONLY_TEACHERS)} without an opening, "
            f"got {imitation.teacher!r}{' with an opening' if imitation.opening else ''} (in {source})"
        )


def with_window_pairs(rule: Any, pairs: int) -> Any:
    """A teacher that reads the history window's quasi-Newton direction (it takes `pairs`) rebuilt
    with the `pairs` the run's rows hold (env.quasi_newton_pairs), so the student sees the very
    direction it copies; any other rule, or `pairs` 0 (rows without it), unchanged."""
    if not pairs or "pairs" not in inspect.signature(type(rule).__init__).parameters:
        return rule
    return type(rule)(pairs=pairs, **rule.hparams)


# ---------------------------------------------------------------------------------------------
# the whole training configuration

# how best_model/ is chosen on validation: win rate against tuned Adam by final value, or win rate
# against the imitation teacher by Li & Malik's cost (the policy's own warm start)
SELECT_BEST = ("adam_final", "teacher_cost")
SECTION_CHECKS: dict[str, Callable[[Any], Any]] = {
    "timesteps": positive_int,
    "num_envs": positive_int,
    "coordinatewise": boolean,
    "eval_freq": positive_int,
    "eval_horizons": horizon_list,
    "env": mapping,
    "algo": mapping,
    "policy": mapping,
    "select_best": one_of(*SELECT_BEST),
}
SECTIONS = (*SECTION_CHECKS, "step", "imitation", "backprop", "residual", "baseline")


@dataclass(frozen=True)
class TrainingConfig:
    """Every section of an SB3 training run, typed (see agents/rl/hyperparams.yaml's header)."""

    timesteps: int
    num_envs: int
    coordinatewise: bool
    eval_freq: int
    eval_horizons: list[int] | None = None
    env: dict[str, Any] = field(default_factory=dict)
    algo: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    step: StepSettings = field(default_factory=StepSettings)
    imitation: ImitationSettings | None = None
    backprop: BackpropSettings | None = None
    residual: ResidualSettings | None = None
    baseline: BaselineSettings | None = None
    select_best: str = "adam_final"
    source: str = "agents/rl/hyperparams.yaml"

    @classmethod
    def parse(cls, params: Mapping[str, Any], source: str) -> TrainingConfig:
        """The merged hyperparameter mapping `params` (from `source`) as a TrainingConfig."""
        unknown = [k for k in params if k not in SECTIONS]
        if unknown:
            raise ConfigError(
                f"unknown hyperparameter section {unknown[0]!r} in {source}; allowed: {', '.join(SECTIONS)}"
            )
        missing = [k for k in ("timesteps", "num_envs", "coordinatewise", "eval_freq") if params.get(k) is None]
        if missing:
            raise ConfigError(f"{missing[0]} is not set (in {source}); it must be set for this algorithm")
        values: dict[str, Any] = {"source": source}
        for key, check in SECTION_CHECKS.items():
            if params.get(key) is not None:
                try:
                    values[key] = check(params[key])
                except _Bad as bad:
                    raise _fail(source, key, params[key], bad.allowed) from None
        values["step"] = parse_section(StepSettings, params.get("step") or {}, "step", source)
        if params.get("imitation"):
            values["imitation"] = ImitationSettings.parse(params["imitation"], source)
        if params.get("backprop"):
            values["backprop"] = BackpropSettings.parse(params["backprop"], source)
        for name, settings in (("residual", ResidualSettings), ("baseline", BaselineSettings)):
            if params.get(name) is not None:
                values[name] = parse_section(settings, params[name], name, source)
                check_state_only_teacher(name, values.get("imitation"), source)
        if values.get("residual") is not None:
            values["step"] = StepSettings()  # the policy's one output is the correction (linear)
        if values.get("select_best") == "teacher_cost" and values.get("imitation") is None:
            raise ConfigError(f"select_best teacher_cost needs an imitation section naming the teacher (in {source})")
        return cls(**values)

    def replace(self, **changes: Any) -> TrainingConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def for_dict_layout(self) -> TrainingConfig:
        """Without the coordinatewise-only settings (step, imitation, backprop, and the rows' env
        options), with a warning naming those that were set."""
        dropped = [name for name in COORDINATEWISE_SECTIONS if getattr(self, name) is not None]
        dropped += ["step"] if self.step != StepSettings() else []
        dropped += [f"env.{o}" for o in COORDINATEWISE_ENV_OPTIONS if self.env.get(o)]
        if dropped:
            warnings.warn(
                f"{dropped} apply to the coordinatewise layout only; ignored for coordinatewise=False", stacklevel=3
            )
        env = {k: v for k, v in self.env.items() if k not in COORDINATEWISE_ENV_OPTIONS}
        cleared = dict.fromkeys(COORDINATEWISE_SECTIONS)
        return dataclasses.replace(self, env=env, step=StepSettings(), select_best="adam_final", **cleared)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the run folder's hyperparams.yaml)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        for name in ("step", *COORDINATEWISE_SECTIONS):
            section = out[name]
            out[name] = (
                None if section is None else {k: v for k, v in dataclasses.asdict(section).items() if v is not None}
            )
        if out["select_best"] == "adam_final":
            del out["select_best"]  # the default, left out as runs before the setting existed record it
        return {k: v for k, v in out.items() if v is not None}


def check_warm_start_policy(name: str, algo: str, coordinatewise: bool, source: str = "the run") -> None:
    """The warm starts fit a coordinatewise ppo or a2c policy: the one place that says so."""
    if algo not in WARM_START_ALGOS or not coordinatewise:
        raise ConfigError(
            f"{name} warm start needs a coordinatewise ppo or a2c policy, got {algo!r} "
            f"(coordinatewise {coordinatewise}) (in {source})"
        )


# ---------------------------------------------------------------------------------------------
# meta-training (L2L, meta-LSTM): the keywords of agents.meta.meta_training.train_meta_optimizer


@dataclass(frozen=True)
class MetaTrainingConfig:
    """A --config file for meta-training: `timesteps` and the `MetaTrainingOptions` fields (their
    defaults and checks live there, in one place)."""

    timesteps: int | None
    options: MetaTrainingOptions

    DEFAULT_TIMESTEPS = 200_000

    @classmethod
    def parse(cls, data: Any, source: str) -> MetaTrainingConfig:
        """One-line ConfigError for a non-mapping, an unknown key or a bad value, naming `source`."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the meta-training settings must be a mapping, got {type(data).__name__}")
        settings = dict(data)
        timesteps = settings.pop("timesteps", None)
        if timesteps is not None:
            try:
                timesteps = positive_int(timesteps)
            except _Bad as bad:
                raise _fail(source, "timesteps", timesteps, bad.allowed) from None
        try:
            options = MetaTrainingOptions.from_mapping(settings, source)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return cls(timesteps, options)
