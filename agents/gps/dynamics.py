"""Per-step linear-Gaussian dynamics fitted from sampled trajectories, with a Gaussian-mixture prior.

For each condition c and step t the tuples z = (s_t, u_t, s_{t+1}) of its N samples give an
empirical mean and covariance; a Gaussian mixture fitted to the tuples of every condition and
step (each condition's tuples first standardised by its own state and action scales, so the
mixture sees the shape of the dynamics rather than each instance's units) supplies a
normal-inverse-Wishart prior: the mixture's moments under the tuples' mean responsibilities, with
`MixturePrior.strength` pseudo-samples. The posterior covariance
    Σ = (m Σ₀ + N Σ̂ + N m / (N + m) (μ̂ − μ₀)(μ̂ − μ₀)ᵀ) / (N + m)
is conditioned on (s_t, u_t) to give s_{t+1} ~ N(F_t [s_t; u_t] + f_t, W_t).

Shapes: states [N, C, T + 1, S], actions [N, C, T, A], weights [N, C] (1 for a usable sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits
from torch import Tensor

from agents.gps.lqr import LinearDynamics

SCALE_FLOOR = 1e-12
COVARIANCE_REGULARISER = 1e-6  # in standardised units


@dataclass(frozen=True)
class MixturePrior:
    """The dynamics prior: a mixture of `components` Gaussians fitted on at most `max_points` tuples
    (chosen with `seed`), counting as `strength` pseudo-samples (0: no prior)."""

    components: int = 10
    strength: float = 1.0
    max_points: int = 5_000
    seed: int = 0


def _weighted_moments(data: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [C, T, D] and covariance [C, T, D, D] over the sample dimension of data [N, C, T, D]."""
    w = weights[:, :, None, None]
    total = w.sum(0).clamp_min(1e-12)
    mean = (w * data).sum(0) / total
    centred = data - mean
    cov = torch.einsum("nctd,ncte->ctde", w * centred, centred) / total.unsqueeze(-1)
    return mean, cov


def _standardise(states: Tensor, actions: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-condition state centre [C, S], state scale [C, S] and action scale [C, A]."""
    w = weights[:, :, None, None]
    total = (weights.sum(0)[:, None] * states.shape[2]).clamp_min(1e-12)  # [C, 1]
    centre = (w * states).sum((0, 2)) / total
    scale = ((w * (states - centre[None, :, None]).square()).sum((0, 2)) / total).sqrt()
    action_total = (weights.sum(0)[:, None] * actions.shape[2]).clamp_min(1e-12)
    action_scale = ((w * actions.square()).sum((0, 2)) / action_total).sqrt()
    return centre, scale.clamp_min(SCALE_FLOOR), action_scale.clamp_min(SCALE_FLOOR)


def mixture_prior(tuples: Tensor, weights: Tensor, prior: MixturePrior) -> tuple[Tensor, Tensor]:
    """Prior mean [C, T, D] and covariance [C, T, D, D] from a Gaussian mixture over tuples [N, C, T, D]."""
    samples, conditions, horizon, width = tuples.shape
    flat = tuples.reshape(-1, width).double().numpy()
    usable = (weights[:, :, None].expand(-1, -1, horizon).reshape(-1) > 0).numpy()
    rng = np.random.default_rng(prior.seed)
    rows = np.flatnonzero(usable)
    if rows.size > prior.max_points:
        rows = rng.choice(rows, prior.max_points, replace=False)
    with threadpool_limits(limits=1):  # tiny matrices: BLAS threads only contend
        mixture = GaussianMixture(
            n_components=min(prior.components, max(1, rows.size // (2 * width))),
            covariance_type="full",
            reg_covar=COVARIANCE_REGULARISER,
            random_state=prior.seed,
            max_iter=100,
        ).fit(flat[rows])
        resp = torch.from_numpy(mixture.predict_proba(flat)).reshape(samples, conditions, horizon, -1)
    w = weights.double()[:, :, None, None]
    resp = (w * resp).sum(0) / w.sum(0).clamp_min(1e-12)  # [C, T, K]
    means = torch.from_numpy(mixture.means_)  # [K, D]
    covs = torch.from_numpy(mixture.covariances_)  # [K, D, D]
    prior_mean = resp @ means
    spread = means[None, None] - prior_mean.unsqueeze(2)  # [C, T, K, D]
    prior_cov = torch.einsum("ctk,kde->ctde", resp, covs) + torch.einsum("ctk,ctkd,ctke->ctde", resp, spread, spread)
    return prior_mean.to(tuples.dtype), prior_cov.to(tuples.dtype)


def fit_dynamics(
    states: Tensor, actions: Tensor, weights: Tensor, prior: MixturePrior = MixturePrior()
) -> LinearDynamics:
    """Linear-Gaussian dynamics per condition and step (see the module docstring)."""
    if not (weights > 0).any():
        raise ValueError("every sampled trajectory diverged: no data to fit the dynamics to")
    states, actions, weights = states.double(), actions.double(), weights.double()
    samples, conditions, horizon_plus, width_s = states.shape
    width_a = actions.shape[-1]
    centre, scale, action_scale = _standardise(states, actions, weights)
    s_std = (states - centre[None, :, None]) / scale[None, :, None]
    u_std = actions / action_scale[None, :, None]
    tuples = torch.cat([s_std[:, :, :-1], u_std, s_std[:, :, 1:]], dim=-1)  # [N, C, T, D]
    mean, cov = _weighted_moments(tuples, weights)
    if prior.strength > 0:
        prior_mean, prior_cov = mixture_prior(tuples, weights, prior)
        count = weights.sum(0)[:, None, None, None]
        d = (mean - prior_mean).unsqueeze(-1)
        cov = (
            prior.strength * prior_cov + count * cov + (count * prior.strength / (count + prior.strength)) * d @ d.mT
        ) / (count + prior.strength)
    zw = width_s + width_a
    cov_zz = cov[..., :zw, :zw] + COVARIANCE_REGULARISER * torch.eye(zw, dtype=cov.dtype)
    cov_yz = cov[..., zw:, :zw]
    matrices = torch.linalg.solve(cov_zz, cov_yz.mT).mT  # [C, T, S, S + A]
    offsets = mean[..., zw:] - (matrices @ mean[..., :zw].unsqueeze(-1)).squeeze(-1)
    noise = cov[..., zw:, zw:] - matrices @ cov_zz @ matrices.mT
    noise = 0.5 * (noise + noise.mT) + COVARIANCE_REGULARISER * torch.eye(width_s, dtype=cov.dtype)
    # back to the conditions' own units
    out_scale = scale[:, None, :, None]
    in_scale = torch.cat([scale, action_scale], dim=1)[:, None, None, :]
    raw_matrices = out_scale * matrices / in_scale
    shift = (matrices[..., :width_s] @ (centre / scale)[:, None, :, None]).squeeze(-1)
    raw_offsets = scale[:, None] * (offsets - shift) + centre[:, None]
    raw_noise = out_scale * noise * scale[:, None, None, :]
    initial_mean, initial_cov = _weighted_moments(states[:, :, :1], weights)
    initial_cov = initial_cov[:, 0] + torch.diag_embed(COVARIANCE_REGULARISER * scale.square())
    return LinearDynamics(raw_matrices, raw_offsets, raw_noise, initial_mean[:, 0], initial_cov)
