"""The S-step's rows beyond the training horizon (`fit_beyond_horizon`, agents.gps.beyond_horizon)."""

from __future__ import annotations

import pytest
import torch

from agents.gps.beyond_horizon import extension_rows, held_last_step, rollout_beyond
from agents.gps.controllers import initial_controllers
from agents.gps.options import GPSOptions
from agents.gps.policy import CoordinatewisePolicyNet
from agents.hand_designed import Momentum
from l2o_gym.features import make_observation
from l2o_gym.registry import make_family
from l2o_gym.state import OptimizationState

ENV = "l2o/LogisticRegression-v0"


def test_fit_beyond_horizon_must_exceed_the_horizon() -> None:
    with pytest.raises(ValueError, match=r"fit_beyond_horizon must be None or an integer > horizon \(40\), got 40"):
        GPSOptions(fit_beyond_horizon=40)
    with pytest.raises(ValueError, match="fit_beyond_horizon"):
        GPSOptions(fit_beyond_horizon=True)
    assert GPSOptions(fit_beyond_horizon=100).fit_beyond_horizon == 100


def test_the_policys_states_beyond_t_are_labelled_by_the_last_controller_step() -> None:
    family = make_family(ENV)
    problem = family.sample(3, torch.Generator().manual_seed(0), "train")
    observation = make_observation(True, family.dim, 25, 2.0)
    controllers, _ = initial_controllers(problem, 5, 0.3, observation, (0.5, 0.5))
    controllers.gains[:, -1, 0, 1] = -0.25  # the last step's gradient gain differs from the earlier ones
    net = CoordinatewisePolicyNet(observation.num_features, 2.0, form="gains")
    net.start_as_momentum(0.5, 0.5)
    extension = rollout_beyond(net, problem, controllers, observation, until=9, samples=20)
    assert extension.rows.shape[:3] == (1, 3 * family.dim, 4) and extension.states.shape[2] == 5
    # the policy (momentum) acted from step 0: its location at T = 5 is momentum's after 5 steps
    location = extension.states[0, :, :, 0].reshape(3, family.dim, 5)
    rule = Momentum(lr=0.5, momentum=0.5)
    state = OptimizationState.start(problem)
    rule.reset(state)
    for _ in range(5):
        state.advance(rule.step(state))
    assert torch.allclose(location[..., 0].double(), state.x.double(), atol=1e-5)
    rows, raw, targets, weights = extension_rows(extension, controllers)
    assert rows.shape[0] == raw.shape[0] == targets.shape[0] == weights.shape[0] == 3 * family.dim * 4
    expected = -0.25 * raw[:, 0] + 0.5 * raw[:, 1] + controllers.offsets[:, -1, 0].repeat_interleave(4).float()
    assert torch.allclose(targets, expected, atol=1e-5)
    precision = controllers.precisions()[:, -1, 0, 0].repeat_interleave(4)
    assert torch.allclose(weights, 20 * precision)
    held = held_last_step(controllers, 3)
    assert held.horizon == 3 and torch.equal(held.gains[:, 2], controllers.gains[:, -1])
