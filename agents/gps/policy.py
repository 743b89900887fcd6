"""The global policy of guided policy search: Li & Malik's small network, coordinatewise.

One hidden layer of 50 softplus units and a linear output (Li & Malik 2016), applied to each
coordinate's row of `l2o_gym.features.CoordinatewiseObservation` (the 2017 paper's coordinatewise
form), so one policy serves any dimension. Rows are standardised by fixed per-feature statistics
(set from the first training data, saved with the weights). Beside the network, a linear term in
the coordinate's raw gradient and last step (a·g + b·Δx_prev, the form of the momentum the local
controllers start from, which the rows hold only squashed or in log scale): the step of a
coordinate is ``action_scale · mlp(row) + a · g + b · Δx_prev``, clipped to ±action_scale when acting.

Two forms (`form`):

* ``"additive"``: as above, the network adds a step in units of action_scale.
* ``"gains"``: the network also sets the linear term's gains from the row, as a local controller's
  gains but conditioned on the richer observation: ``action_scale · n₀ + a · exp(n₁) · g + (b + n₂) ·
  Δx_prev`` with (n₀, n₁, n₂) = mlp(row) and n₁ bounded to ±`LOG_GAIN_BOUND` (smoothly). The row holds
  the gradient history in log scale, so a gain on g that falls with the gradient's scale (Adam's
  normalisation, lr / rms(g) · g) is a linear function of the row in log space. Output layer zero:
  exactly momentum, as the additive form.

With ``time_features`` the rows end with tanh(t / τ) (`l2o_gym.features.TIME_SCALES`): the local
controllers are time-varying, and these let the policy see the step count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from agents.runtime.saved_rules import load_weights, save_rule
from l2o_gym.features import CoordinatewiseObservation, make_observation
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule

KIND = "gps"
WEIGHTS_FILE = "gps_policy.pt"
HIDDEN_UNITS = 50
POLICY_FORMS = ("additive", "gains")
LOG_GAIN_BOUND = 5.0  # the "gains" form's gain on g stays within e^±5 times its linear weight a


class CoordinatewisePolicyNet(nn.Module):
    """(rows [..., F], raw [..., 2] = (g, Δx_prev)) -> step [...] (see the module docstring)."""

    def __init__(
        self, num_features: int, action_scale: float, hidden: int = HIDDEN_UNITS, form: str = "additive"
    ) -> None:
        super().__init__()
        if form not in POLICY_FORMS:
            raise ValueError(f"form must be one of {POLICY_FORMS}, got {form!r}")
        self.num_features, self.hidden, self.action_scale = num_features, hidden, float(action_scale)
        self.form = form
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        outputs = 1 if form == "additive" else 3
        self.body = nn.Sequential(nn.Linear(num_features, hidden), nn.Softplus(), nn.Linear(hidden, outputs))
        self.linear = nn.Linear(2, 1, bias=False)

    def set_standardisation(self, rows: Tensor) -> None:
        """Per-feature mean and standard deviation of rows [M, F] (a feature that never varies keeps std 1)."""
        rows = rows.reshape(-1, self.num_features).to(self.feature_mean.dtype)
        std = rows.std(0)
        self.feature_mean.copy_(rows.mean(0))
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    @torch.no_grad()
    def start_as_momentum(self, lr: float, momentum: float) -> None:
        """Make the policy exactly heavy-ball momentum: linear term (−lr, μ), network output zero."""
        self.linear.weight.copy_(torch.tensor([[-lr, momentum]], dtype=self.linear.weight.dtype))
        self.body[-1].weight.zero_()
        self.body[-1].bias.zero_()

    def forward(self, rows: Tensor, raw: Tensor) -> Tensor:
        network = self.body((rows - self.feature_mean) / self.feature_std)
        if self.form == "additive":
            return self.action_scale * network.squeeze(-1) + self.linear(raw).squeeze(-1)
        a, b = self.linear.weight[0, 0], self.linear.weight[0, 1]
        log_gain = LOG_GAIN_BOUND * torch.tanh(network[..., 1] / LOG_GAIN_BOUND)
        gradient_gain, last_step_gain = a * log_gain.exp(), b + network[..., 2]
        return self.action_scale * network[..., 0] + gradient_gain * raw[..., 0] + last_step_gain * raw[..., 1]

    def architecture(self) -> dict[str, Any]:
        """What `load` needs to rebuild the network: num_features, hidden, action_scale, form."""
        return {name: getattr(self, name) for name in ("num_features", "hidden", "action_scale", "form")}


def raw_inputs(state: OptimizationState) -> Tensor:
    """Each coordinate's (gradient, last step): [B, d, 2]."""
    return torch.stack([state.grad, state.last_step], dim=2)


class GPSOptimizer(UpdateRule):
    """A GPS-trained coordinatewise policy as an update rule: step = clip(net(rows, raw), ±action_scale)."""

    def __init__(
        self, net: CoordinatewisePolicyNet, history: int, name: str = "gps", time_features: bool = False
    ) -> None:
        self.net, self.history, self.action_scale, self.name = net, history, net.action_scale, name
        self.time_features = time_features

    def observation(self, dim: int) -> CoordinatewiseObservation:
        return make_observation(True, dim, self.history, self.action_scale, time_features=self.time_features)

    def reset(self, state: OptimizationState) -> None:
        if state.history != self.history:
            raise ValueError(f"the state keeps {state.history} history items, the policy was trained on {self.history}")

    @torch.no_grad()
    def step(self, state: OptimizationState) -> Tensor:
        param = next(self.net.parameters())
        rows = self.observation(state.x.shape[1])(state).to(param.device, param.dtype)  # [B, d, F]
        raw = raw_inputs(state).to(param.device, param.dtype)
        step = self.net(rows, raw).clamp(-self.action_scale, self.action_scale)
        return step.to(state.x.device, state.x.dtype)

    def save(self, folder: str | Path, env_id: str, training: dict[str, Any] | None = None) -> Path:
        """Weights, then metadata (the completion marker), atomically file by file."""
        meta = {
            "kind": KIND,
            "algo": KIND,
            "env_id": env_id,
            "observation": "coordinatewise",
            "history": self.history,
            "time_features": self.time_features,
            "action_scale": self.action_scale,
            "architecture": self.net.architecture(),
            "training": training or {},
        }
        return save_rule(folder, self.net, WEIGHTS_FILE, meta)


def load(folder: Path, meta: dict[str, Any], device: str | torch.device = "cpu") -> GPSOptimizer:
    """Loader for `agents.runtime.saved_rules.load_rule` (kind "gps")."""
    architecture = meta.get("architecture")
    required = {"num_features", "hidden", "action_scale"}
    if not isinstance(architecture, dict) or not required <= set(architecture) <= required | {"form"}:
        raise ValueError(f"{folder}: the gps metadata must name architecture num_features, hidden, action_scale")
    form = architecture.get("form", "additive")  # rules saved before the form existed are additive
    if form not in POLICY_FORMS:
        raise ValueError(f"{folder}: the gps architecture's form must be one of {POLICY_FORMS}, got {form!r}")
    time_features = meta.get("time_features", False)
    if not isinstance(time_features, bool):
        raise ValueError(f"{folder}: the gps metadata's time_features must be true or false")
    net = CoordinatewisePolicyNet(
        int(architecture["num_features"]), float(architecture["action_scale"]), int(architecture["hidden"]), form
    )
    load_weights(net, Path(folder) / WEIGHTS_FILE, device)
    return GPSOptimizer(net.eval(), int(meta["history"]), time_features=time_features)
