"""The run's family: an env id resolved once, its family built with the run's family keywords.

Training builds it once and hands it to the environment, the warm starts' teachers, validation
and tuning, so all of them see the family the run trains on (not the id's default settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.rl.config import ConfigError
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.family_loader import split_kwargs
from l2o_gym.problem import TaskFamily, check_trainable
from l2o_gym.registry import env_options, make_family


@dataclass
class RunFamily:
    """The env id resolved once: its family built with the run's family keywords, and the episode
    options (the id's registered ones under the run's)."""

    env_id: str
    family_kwargs: dict[str, Any]
    episode_options: dict[str, Any]
    family: TaskFamily

    @classmethod
    def resolve(cls, env_id: str, env_section: dict[str, Any], source: str = "the env settings") -> RunFamily:
        episode, family_kwargs = split_kwargs(env_section)
        try:
            family = check_trainable(make_family(env_id, **family_kwargs), env_id)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"env: {err} (in {source})") from None
        return cls(env_id, family_kwargs, {**env_options(env_id), **episode}, family)

    def tuned(self, name: str, horizon: int) -> Any:
        """Hand-designed optimizer `name` tuned on this family (its keywords included) at `horizon`."""
        from agents.hand_designed.tuning import tuned_optimizer

        return tuned_optimizer(name, self.env_id, horizon, family_kwargs=self.family_kwargs or None)


def check_episode_options(run_family: RunFamily, coordinatewise: bool, source: str) -> EpisodeBatch:
    """The episode options checked by building an (unsampled) episode batch; returns it."""
    try:
        return EpisodeBatch(run_family.family, 1, coordinatewise=coordinatewise, **run_family.episode_options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env: {err} (in {source})") from None
