"""The observation layout: one frozen object that says what a policy sees, and builds it.

`ObservationSpec` owns every choice about an observation: its layout (Li & Malik's ``dict`` or
``coordinatewise`` rows), the history length H, the action scale (a row's previous action and
quasi-Newton action are fractions of it), and the extra feature groups of coordinatewise rows
(quasi-Newton pairs, time features). Episodes, every env form, saved learned optimizers and every
training path take it; the numbers themselves are computed by `l2o_gym.features`.

Coordinatewise row of coordinate i (F = 2 H + 9, + 2 with quasi-Newton pairs, + 4 with time
features; `ObservationSpec.column_names` gives the names in order):

=================================  =====  ==================================================
column                             count  meaning
=================================  =====  ==================================================
``gradient[t-k]``                  H      ∇f_i k steps ago, signed_log (oldest first)
``improvement[t-k]``               H      the instance's (f_t - f_{t-1}) / |f_{t-1}|, ±10
``last_step``                      1      coordinate i's last step, signed_log
``squashed_gradient``              1      g_i / (1 + |g_i|)
``previous_action``                1      last step / action_scale, clipped to [-1, 1]
``gradient_average[β]``            3      EMA of ∇f_i over the window, β in 0.5, 0.9, 0.99
``adam_direction[β]``              3      that EMA / the window's RMS gradient, in [-1, 1]
``quasi_newton_direction``         1      L-BFGS direction of the newest m pairs, signed_log
``quasi_newton_action``            1      that direction / action_scale, in [-1, 1]
``time[τ]``                        4      tanh(t / τ), τ in 10, 30, 100, 300
=================================  =====  ==================================================

Dict layout: ``location`` x [d], ``gradients`` [H, d] (signed_log), ``improvements`` [H].

Saved form (`to_meta`): ``{"layout_version": 1, "layout": ..., "history": ..., "action_scale":
..., "quasi_newton_pairs": ..., "time_features": ...}``. `LAYOUT_VERSION` changes only when the
meaning of an existing column changes; a new feature group is a new key whose default (off) leaves
the layout as it was, so older saves load unchanged and a save with a key this version does not
know is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gymnasium import spaces
from torch import Tensor

from l2o_gym.features import (
    MOMENTUM_BETAS,
    TIME_SCALES,
    CoordinatewiseObservation,
    DictObservation,
    make_observation,
)
from l2o_gym.state import DEFAULT_HISTORY, OptimizationState

LAYOUT_VERSION = 1
LAYOUTS = ("dict", "coordinatewise")
DICT_KEYS = ("location", "gradients", "improvements")
MAX_ACTION_SCALE = 1e6  # steps beyond this are a typo, not a setting
# the env options that describe the layout (`EpisodeBatch` and `gymnasium.make` take them loose)
LAYOUT_OPTIONS = ("coordinatewise", "history", "action_scale", "quasi_newton_pairs", "time_features")
# metadata written by l2o_gym 0.4 held the layout as flat keys; that layout is LAYOUT_VERSION 1
LEGACY_LIBRARY_VERSIONS = ("0.4.",)
RETRAIN = "retrain it with this version (l2o-gym train ...) or load it with the version that saved it"


def _invalid(key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"observation {key} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class ObservationSpec:
    """What a policy observes of an `OptimizationState`; see the module docstring for the columns.

    layout "dict" | "coordinatewise"; history H >= 1; action_scale in (0, MAX_ACTION_SCALE];
    quasi_newton_pairs in [0, H - 1] and time_features (coordinatewise only).
    """

    layout: str = "dict"
    history: int = DEFAULT_HISTORY
    action_scale: float = 1.0
    quasi_newton_pairs: int = 0
    time_features: bool = False
    _observers: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise _invalid("layout", self.layout, f"one of {', '.join(LAYOUTS)}")
        if isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 1:
            raise _invalid("history", self.history, "a positive int")
        scale = self.action_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= MAX_ACTION_SCALE:
            raise _invalid("action_scale", scale, f"a finite number in (0, {MAX_ACTION_SCALE:g}]")
        object.__setattr__(self, "action_scale", float(scale))
        pairs = self.quasi_newton_pairs
        if isinstance(pairs, bool) or not isinstance(pairs, int) or not 0 <= pairs < self.history:
            raise _invalid("quasi_newton_pairs", pairs, f"an int in [0, {self.history - 1}] (history {self.history})")
        if not isinstance(self.time_features, bool):
            raise _invalid("time_features", self.time_features, "true or false")
        if self.layout == "dict" and (pairs or self.time_features):
            key = "quasi_newton_pairs" if pairs else "time_features"
            raise _invalid(key, getattr(self, key), "off (0 / false) in the dict layout: it needs coordinatewise rows")

    # -- what the layout holds ----------------------------------------------------------------
    @property
    def coordinatewise(self) -> bool:
        return self.layout == "coordinatewise"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of a coordinatewise row's F columns, in order (the module docstring's table)."""
        self._require_rows("column_names")
        window = range(self.history - 1, -1, -1)
        names = [f"gradient[t-{k}]" for k in window] + [f"improvement[t-{k}]" for k in window]
        names += ["last_step", "squashed_gradient", "previous_action"]
        names += [f"gradient_average[{b:g}]" for b in MOMENTUM_BETAS]
        names += [f"adam_direction[{b:g}]" for b in MOMENTUM_BETAS]
        if self.quasi_newton_pairs:
            names += ["quasi_newton_direction", "quasi_newton_action"]
        if self.time_features:
            names += [f"time[{tau:g}]" for tau in TIME_SCALES]
        return tuple(names)

    @property
    def num_features(self) -> int:
        """F, the columns of a coordinatewise row."""
        return len(self.column_names)

    @property
    def keys(self) -> tuple[str, ...]:
        """The dict layout's keys."""
        if self.coordinatewise:
            raise ValueError("the coordinatewise layout has rows, not keys: use column_names")
        return DICT_KEYS

    def _require_rows(self, what: str) -> None:
        if not self.coordinatewise:
            raise ValueError(f"{what} needs the coordinatewise layout; this one is {self.layout!r}")

    # -- spaces -------------------------------------------------------------------------------
    def space(self, dim: int) -> spaces.Space:
        """The observation space of one instance of dimension `dim`: Box(d, F) or the dict."""
        return self.observer(dim).space()

    def row_space(self) -> spaces.Box:
        """The space of one coordinate's row, Box(F) (coordinatewise only)."""
        self._require_rows("row_space")
        return self.observer(1).row_space()

    def policy_space(self, dim: int) -> spaces.Space:
        """What one policy input is: a row (coordinatewise, any dim) or one instance's dict."""
        return self.row_space() if self.coordinatewise else self.space(dim)

    # -- building observations ----------------------------------------------------------------
    def observer(self, dim: int) -> CoordinatewiseObservation | DictObservation:
        """The computation (`l2o_gym.features`) for dimension `dim`, built once per dimension."""
        if dim not in self._observers:
            self._observers[dim] = make_observation(
                self.coordinatewise, dim, self.history, self.action_scale, self.quasi_newton_pairs, self.time_features
            )
        return self._observers[dim]

    def observe(self, state: OptimizationState) -> Tensor | dict[str, Tensor]:
        """Observation of every instance: rows [B, d, F] or the dict of [B, ...]."""
        return self.observer(state.x.shape[1])(state)

    def policy_input(self, state: OptimizationState) -> Tensor | dict[str, Tensor]:
        """What a policy takes for every instance at once: rows [B·d, F] or the dict of [B, ...]."""
        obs = self.observe(state)
        return obs.reshape(-1, obs.shape[2]) if self.coordinatewise else obs

    # -- metadata -----------------------------------------------------------------------------
    def to_meta(self) -> dict[str, Any]:
        """Plain data for a saved optimizer's metadata (JSON), with the layout version."""
        return {"layout_version": LAYOUT_VERSION, **{f.name: getattr(self, f.name) for f in fields(self) if f.init}}

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> ObservationSpec:
        """The spec `to_meta` wrote; a ValueError names a changed layout version or an unknown key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"observation metadata must be a mapping, got {data!r}")
        version = data.get("layout_version")
        if version != LAYOUT_VERSION:
            raise ValueError(
                f"observation layout_version {version!r} is not this library's ({LAYOUT_VERSION}): "
                f"the policy saw other features; {RETRAIN}"
            )
        known = [f.name for f in fields(cls) if f.init]
        unknown = sorted(set(data) - {"layout_version", *known})
        if unknown:
            raise ValueError(
                f"observation metadata has unknown key(s) {unknown} (a newer layout?); allowed: {known}; {RETRAIN}"
            )
        return cls(**{k: data[k] for k in known if k in data})

    @classmethod
    def from_saved_meta(cls, meta: Mapping[str, Any]) -> ObservationSpec:
        """The spec of a saved optimizer's whole metadata: its ``observation`` mapping, or the flat
        keys l2o_gym 0.4 wrote (``observation`` "dict"/"coordinatewise", ``history``, ...)."""
        observation = meta.get("observation")
        if isinstance(observation, Mapping):
            return cls.from_meta(observation)
        version = str(meta.get("library_version", "unknown"))
        if observation not in LAYOUTS or not version.startswith(LEGACY_LIBRARY_VERSIONS):
            raise ValueError(
                f"metadata holds no observation layout this version reads (observation {observation!r}, "
                f"saved by l2o_gym {version}): {RETRAIN}"
            )
        return cls(
            layout=observation,
            history=meta.get("history"),
            action_scale=meta.get("action_scale"),
            quasi_newton_pairs=meta.get("quasi_newton_pairs", 0),
            time_features=meta.get("time_features", False),
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], default_action_scale: float) -> ObservationSpec:
        """The spec the loose env options describe (`LAYOUT_OPTIONS`; a missing or None option takes
        its default, action_scale the family's `default_action_scale`)."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(LAYOUT_OPTIONS))
        if unknown:
            raise ValueError(f"unknown observation option(s) {unknown}; allowed: {list(LAYOUT_OPTIONS)}")
        coordinatewise = given.pop("coordinatewise", False)
        if not isinstance(coordinatewise, bool):
            raise _invalid("coordinatewise", coordinatewise, "true or false")
        scale = given.pop("action_scale", default_action_scale)
        return cls(layout=LAYOUTS[coordinatewise], action_scale=scale, **given)
