"""The supervised half of guided policy search: fit the global policy to the local controllers, and
linearise it around the samples (the reference of mirror-descent GPS's KL-constrained step).

Shapes: N samples, C conditions, T steps, F row features, S = 3 state width.
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.gps.coordinate_state import GRADIENT, LAST_STEP, STATE_WIDTH
from agents.gps.linear_gaussian import LinearGaussian
from agents.gps.policy import CoordinatewisePolicyNet

WEIGHT_CLIP = 100.0  # precision weights are clipped at this multiple of their median
RIDGE = 1e-2  # relative ridge of the linearisation's regression (towards the policy's linear term)
GRADIENT_AND_LAST_STEP = [GRADIENT, LAST_STEP]


def controller_targets(controller: LinearGaussian, states: Tensor) -> tuple[Tensor, Tensor]:
    """Mean actions at the sampled states [N, C, T + 1, 3] -> [N, C, T], and precisions [C, T]."""
    means = torch.einsum("ctas,ncts->ncta", controller.gains, states[:, :, :-1].double()) + controller.offsets
    return means[..., 0], controller.precisions()[..., 0, 0]


def policy_actions(net: CoordinatewisePolicyNet, rows: Tensor, states: Tensor) -> Tensor:
    """The policy's steps at rows [N, C, T, F] with LQR states [N, C, T + 1, 3]: [N, C, T]."""
    raw = states[:, :, :-1, GRADIENT_AND_LAST_STEP].float()
    return net(rows.float(), raw)


def fit_policy(
    net: CoordinatewisePolicyNet,
    rows: Tensor,
    states: Tensor,
    targets: Tensor,
    precisions: Tensor,
    weights: Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    extra: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> float:
    """Minimise Σ w (policy step − target)² with w = controller precision (× sample weight), normalised
    by its median and clipped; rows [N, C, T, F], states [N, C, T + 1, 3], targets [N, C, T],
    precisions [C, T], weights [N, C]; `extra` (rows [M, F], raw [M, 2], targets [M], weights [M]):
    further rows, their weights normalised by the same median. `steps` Adam steps on random
    minibatches (losses in units of action_scale²); returns the mean weighted loss of the last tenth."""
    w = precisions.unsqueeze(0) * weights[:, :, None].double()
    median = w[w > 0].median()
    w = (w / median).clamp(max=WEIGHT_CLIP)
    keep = w.reshape(-1) > 0
    x = rows.reshape(-1, rows.shape[-1])[keep].float()
    raw = states[:, :, :-1, GRADIENT_AND_LAST_STEP].reshape(-1, 2)[keep].float()
    y = targets.reshape(-1)[keep].float()
    w = w.reshape(-1)[keep].float()
    if extra is not None:
        x, raw, y = (torch.cat([a, b.float()]) for a, b in zip((x, raw, y), extra[:3], strict=True))
        w = torch.cat([w, (extra[3].double() / median).clamp(max=WEIGHT_CLIP).float()])
    scale = net.action_scale
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=generator)
        loss = (w[idx] * ((net(x[idx], raw[idx]) - y[idx]) / scale).square()).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    last = sum(losses[-max(1, steps // 10) :]) / max(1, steps // 10)
    net.eval()
    return last


@torch.no_grad()
def linearise_policy(
    net: CoordinatewisePolicyNet,
    rows: Tensor,
    states: Tensor,
    weights: Tensor,
    covariances: Tensor,
    gain_limits: Tensor | None = None,
) -> LinearGaussian:
    """The policy as a linear-Gaussian controller in the LQR state, per condition and step: its steps
    regressed on the sampled (gradient, last step) [N, C, T, 2] by weighted least squares with a ridge
    towards the policy's own linear term (a, b), which decides where the samples barely vary (the
    policy never reads the location, so its gain on x is zero; regressing on x too would fit the
    near-collinear x and g with large cancelling gains); its covariance is `covariances` [C, T, 1, 1]
    (the policy's noise taken as the local controller's) plus the regression's residual variance.
    Given gain_limits [C, 3], the fitted gains are clipped to them before the offsets and residuals
    are computed (a gain fitted where the samples barely vary is ill-determined; the misfit the clip
    makes shows up as a larger covariance)."""
    actions = policy_actions(net, rows, states).double().unsqueeze(-1)  # [N, C, T, 1]
    s = states[:, :, :-1, GRADIENT_AND_LAST_STEP].double()  # [N, C, T, 2]
    w = weights.double()[:, :, None, None]
    total = w.sum(0).clamp_min(1e-12)  # [C, 1, 1]
    s_mean, a_mean = (w * s).sum(0) / total, (w * actions).sum(0) / total
    ds, da = s - s_mean, actions - a_mean
    cov_ss = torch.einsum("ncti,nctj->ctij", w * ds, ds) / total.unsqueeze(-1)
    cov_as = torch.einsum("ncti,nctj->ctij", w * da, ds) / total.unsqueeze(-1)
    scale = (w * ds.square()).sum((0, 2)) / (total.squeeze(-1) * s.shape[2])  # [C, 2]
    ridge = torch.diag_embed(RIDGE * (scale[:, None] + torch.diagonal(cov_ss, dim1=-2, dim2=-1)) + 1e-30)
    prior = net.linear.weight.detach().double().reshape(1, 1, 1, 2)  # the policy's own linear term
    partial = torch.linalg.solve(cov_ss + ridge, (cov_as + prior @ ridge).mT).mT  # [C, T, 1, 2]
    if gain_limits is not None:
        limits = gain_limits[:, None, None, GRADIENT_AND_LAST_STEP].to(partial.dtype)
        partial = torch.maximum(torch.minimum(partial, limits), -limits)
    offsets = a_mean - (partial @ s_mean.unsqueeze(-1)).squeeze(-1)
    residual = da - torch.einsum("ctas,ncts->ncta", partial, ds)
    residual_var = ((w * residual.square()).sum(0) / total).unsqueeze(-1)  # [C, T, 1, 1]
    gains = torch.zeros(*partial.shape[:3], STATE_WIDTH, dtype=partial.dtype)
    gains[..., GRADIENT_AND_LAST_STEP] = partial
    return LinearGaussian(gains, offsets, covariances + residual_var)
