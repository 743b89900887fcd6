"""tanh through one sigmoid (agents/rl/fast_tanh.py): the same values and gradients as tanh."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from agents.rl.fast_tanh import SigmoidTanh, sigmoid_tanh, use_sigmoid_tanh


def test_values_match_tanh_everywhere():
    x = torch.cat([torch.linspace(-60, 60, 100_001), torch.randn(10_000) * 1e-3, torch.tensor([0.0, -0.0])])
    assert (sigmoid_tanh(x) - torch.tanh(x)).abs().max() <= 2.5e-7
    assert sigmoid_tanh(torch.zeros(3)).eq(0).all()
    special = sigmoid_tanh(torch.tensor([float("inf"), -float("inf"), float("nan")]))
    assert special[0] == 1 and special[1] == -1 and special[2].isnan()


def test_gradient_is_tanhs():
    x = (torch.randn(64, 16) * 3).requires_grad_()
    weights = torch.randn(64, 16)
    (torch.tanh(x) * weights).sum().backward()
    expected, x.grad = x.grad.clone(), None
    (sigmoid_tanh(x) * weights).sum().backward()
    assert torch.allclose(x.grad, expected, atol=2e-6)
    assert torch.autograd.gradcheck(sigmoid_tanh, (torch.randn(12, dtype=torch.float64, requires_grad=True),))


def test_policy_swap_keeps_the_weights_and_outputs():
    torch.manual_seed(0)
    space = gym.spaces.Box(-np.inf, np.inf, (9,), np.float32)
    action = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = ActorCriticPolicy(space, action, lambda _: 3e-4, net_arch=[32, 32], activation_fn=nn.Tanh)
    obs = torch.randn(50, 9)
    before = policy.state_dict()
    with torch.no_grad():
        actions, values = policy.get_distribution(obs).mode(), policy.predict_values(obs)
    assert use_sigmoid_tanh(policy) == 4  # two layers in each of the actor's and the critic's nets
    assert not any(type(m) is nn.Tanh for m in policy.modules())
    assert sum(isinstance(m, SigmoidTanh) for m in policy.modules()) == 4
    assert policy.state_dict().keys() == before.keys()
    with torch.no_grad():
        assert torch.allclose(policy.get_distribution(obs).mode(), actions, atol=1e-6)
        assert torch.allclose(policy.predict_values(obs), values, atol=1e-6)
    assert use_sigmoid_tanh(policy) == 0
