"""The KL-constrained LQR step of guided policy search, batched over conditions.

Given time-varying linear-Gaussian dynamics s_{t+1} ~ N(F_t [s_t; u_t] + f_t, W_t), a quadratic
cost ½ zᵀ H_t z + h_tᵀ z on z_t = [s_t; u_t] (state part only at t = T), and a reference
controller p̄ (the global policy's linearisation in mirror-descent GPS), the step solves

    min_p E_p[Σ_t cost_t]  subject to  KL(p ‖ p̄) = Σ_t E_p[KL(p(u_t|s_t) ‖ p̄(u_t|s_t))] ≤ ε T

(ε per time step, as in the authors' code). Its Lagrangian divided by the dual variable η is a
maximum-entropy LQR with cost cost/η − log p̄, whose solution is linear-Gaussian with covariance
Q_uu⁻¹ (`backward_pass`). η is found per condition by bisection in log space
(`kl_constrained_update`): KL falls monotonically as η grows.

Shapes: C conditions, T steps, S state width, A action width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from agents.gps.linear_gaussian import LinearGaussian

ETA_RANGE = (1e-16, 1e16)


@dataclass
class LinearDynamics:
    """matrices [C, T, S, S + A], offsets [C, T, S], noise [C, T, S, S]; the initial state
    distribution initial_mean [C, S], initial_cov [C, S, S]."""

    matrices: Tensor
    offsets: Tensor
    noise: Tensor
    initial_mean: Tensor
    initial_cov: Tensor


@dataclass
class QuadraticCost:
    """cost_t(z) = ½ zᵀ hessians[:, t] z + gradients[:, t]ᵀ z, z = [s_t; u_t]; hessians
    [C, T + 1, S + A, S + A], gradients [C, T + 1, S + A] (only the state block counts at T)."""

    hessians: Tensor
    gradients: Tensor

    def scaled(self, factor: Tensor) -> QuadraticCost:
        """The cost times factor [C]."""
        return QuadraticCost(self.hessians * factor[:, None, None, None], self.gradients * factor[:, None, None])


def _sym(m: Tensor) -> Tensor:
    return 0.5 * (m + m.transpose(-1, -2))


def reference_penalty(reference: LinearGaussian) -> QuadraticCost:
    """−log p̄(u|s) up to a constant, as a quadratic in z = [s; u] for t < T (zero at T)."""
    gains, offsets, precision = reference.gains, reference.offsets, reference.precisions()
    conditions, horizon, actions, states = gains.shape
    pk = precision @ gains  # [C, T, A, S]
    hess = torch.zeros(conditions, horizon + 1, states + actions, states + actions, dtype=gains.dtype)
    hess[:, :horizon, :states, :states] = gains.transpose(-1, -2) @ pk
    hess[:, :horizon, :states, states:] = -pk.transpose(-1, -2)
    hess[:, :horizon, states:, :states] = -pk
    hess[:, :horizon, states:, states:] = precision
    grad = torch.zeros(conditions, horizon + 1, states + actions, dtype=gains.dtype)
    pko = (precision @ offsets.unsqueeze(-1)).squeeze(-1)  # [C, T, A]
    grad[:, :horizon, :states] = (gains.transpose(-1, -2) @ pko.unsqueeze(-1)).squeeze(-1)
    grad[:, :horizon, states:] = -pko
    return QuadraticCost(hess, grad)


def backward_pass(dynamics: LinearDynamics, cost: QuadraticCost) -> LinearGaussian:
    """Maximum-entropy LQR: the controller N(K s + k, Q_uu⁻¹) minimising E[Σ cost] − entropy.

    Its mean is the ordinary (Riccati) LQR solution of `cost` under the mean dynamics. Raises a
    ValueError if some Q_uu is not positive definite (see `backward_pass_checked`)."""
    controller, failed = backward_pass_checked(dynamics, cost)
    if failed.any():
        raise ValueError(f"Q_uu is not positive definite for conditions {failed.nonzero().flatten().tolist()}")
    return controller


def backward_pass_checked(dynamics: LinearDynamics, cost: QuadraticCost) -> tuple[LinearGaussian, Tensor]:
    """`backward_pass` that never raises: also returns failed [C], true where some Q_uu was not
    positive definite (round-off at extreme η); those conditions' controllers are meaningless."""
    conditions, horizon, states, width = dynamics.matrices.shape
    v_mat = _sym(cost.hessians[:, horizon, :states, :states])
    v_vec = cost.gradients[:, horizon, :states]
    gains, offsets, covariances = [], [], []
    failed = torch.zeros(conditions, dtype=torch.bool)
    for t in range(horizon - 1, -1, -1):
        f_mat, f_off = dynamics.matrices[:, t], dynamics.offsets[:, t]
        ft_v = f_mat.transpose(-1, -2) @ v_mat  # [C, W, S]
        q_mat = _sym(cost.hessians[:, t] + ft_v @ f_mat)
        q_vec = (
            cost.gradients[:, t]
            + (ft_v @ f_off.unsqueeze(-1)).squeeze(-1)
            + (f_mat.transpose(-1, -2) @ v_vec.unsqueeze(-1)).squeeze(-1)
        )
        q_uu, q_us, q_u = q_mat[:, states:, states:], q_mat[:, states:, :states], q_vec[:, states:]
        chol, info = torch.linalg.cholesky_ex(q_uu)
        bad = info != 0
        if bad.any():
            failed = failed | bad
            eye = torch.eye(q_uu.shape[-1], dtype=q_uu.dtype)
            chol = torch.where(bad[:, None, None], eye, chol)
        gain = -torch.cholesky_solve(q_us, chol)  # [C, A, S]
        offset = -torch.cholesky_solve(q_u.unsqueeze(-1), chol).squeeze(-1)  # [C, A]
        covariance = torch.cholesky_inverse(chol)
        q_su = q_mat[:, :states, states:]
        v_mat = _sym(q_mat[:, :states, :states] + q_su @ gain)
        v_vec = q_vec[:, :states] + (q_su @ offset.unsqueeze(-1)).squeeze(-1)
        gains.append(gain)
        offsets.append(offset)
        covariances.append(_sym(covariance))
    controller = LinearGaussian(
        torch.stack(gains[::-1], 1), torch.stack(offsets[::-1], 1), torch.stack(covariances[::-1], 1)
    )
    return controller, failed


def forward_pass(dynamics: LinearDynamics, controller: LinearGaussian) -> tuple[Tensor, Tensor]:
    """State marginals under `controller`: means [C, T + 1, S], covariances [C, T + 1, S, S]."""
    mean, cov = dynamics.initial_mean, dynamics.initial_cov
    means, covs = [mean], [cov]
    for t in range(controller.horizon):
        gain = controller.gains[:, t]
        action_mean = (gain @ mean.unsqueeze(-1)).squeeze(-1) + controller.offsets[:, t]
        cross = gain @ cov  # [C, A, S]
        joint_cov = torch.cat(
            [
                torch.cat([cov, cross.transpose(-1, -2)], dim=2),
                torch.cat([cross, cross @ gain.transpose(-1, -2) + controller.covariances[:, t]], dim=2),
            ],
            dim=1,
        )
        f_mat = dynamics.matrices[:, t]
        mean = (f_mat @ torch.cat([mean, action_mean], dim=1).unsqueeze(-1)).squeeze(-1) + dynamics.offsets[:, t]
        cov = _sym(f_mat @ joint_cov @ f_mat.transpose(-1, -2) + dynamics.noise[:, t])
        means.append(mean)
        covs.append(cov)
    return torch.stack(means, 1), torch.stack(covs, 1)


def expected_kl(new: LinearGaussian, reference: LinearGaussian, state_means: Tensor, state_covs: Tensor) -> Tensor:
    """Σ_t E_{s_t ~ N(state_means, state_covs)}[KL(new(·|s_t) ‖ reference(·|s_t))]: [C]."""
    horizon = new.horizon
    means, covs = state_means[:, :horizon], state_covs[:, :horizon]
    ref_precision = reference.precisions()
    d_gain = new.gains - reference.gains  # [C, T, A, S]
    d_mean = (d_gain @ means.unsqueeze(-1)).squeeze(-1) + new.offsets - reference.offsets  # [C, T, A]
    actions = new.offsets.shape[-1]
    trace_cov = torch.diagonal(ref_precision @ new.covariances, dim1=-2, dim2=-1).sum(-1)
    trace_gain = torch.diagonal(d_gain.transpose(-1, -2) @ ref_precision @ d_gain @ covs, dim1=-2, dim2=-1).sum(-1)
    quad = (d_mean.unsqueeze(-2) @ ref_precision @ d_mean.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    log_dets = torch.logdet(reference.covariances) - torch.logdet(new.covariances)
    return 0.5 * (trace_cov + trace_gain + quad - actions + log_dets).sum(dim=1)


def constrained_controller(
    dynamics: LinearDynamics, cost: QuadraticCost, reference: LinearGaussian, eta: Tensor
) -> tuple[LinearGaussian, Tensor]:
    """The controller minimising cost/η − log p̄ − entropy for dual variables eta [C], and its KL [C]
    (infinite where the backward pass failed, so that the bisection raises η there)."""
    penalty = reference_penalty(reference)
    scaled = cost.scaled(1.0 / eta)
    augmented = QuadraticCost(scaled.hessians + penalty.hessians, scaled.gradients + penalty.gradients)
    controller, failed = backward_pass_checked(dynamics, augmented)
    means, covs = forward_pass(dynamics, controller)
    kl = expected_kl(controller, reference, means, covs)
    return controller, torch.where(failed | ~torch.isfinite(kl), torch.full_like(kl, math.inf), kl)


LIMIT_TOLERANCE = 1e-6  # relative: a controller at η's upper end equals the reference up to round-off


def within_limits(controller: LinearGaussian, gain_limits: Tensor | None) -> Tensor:
    """[C]: true where every gain |K_t[a, j]| ≤ its limit (gain_limits [C, S] or [C, T, A, S]; None: no
    limit)."""
    if gain_limits is None:
        return torch.ones(controller.gains.shape[0], dtype=torch.bool)
    limits = gain_limits if gain_limits.dim() == 4 else gain_limits[:, None, None, :]
    return (controller.gains.abs() <= limits * (1 + LIMIT_TOLERANCE)).all(-1).all(-1).all(-1)


def kl_constrained_update(
    dynamics: LinearDynamics,
    cost: QuadraticCost,
    reference: LinearGaussian,
    kl_step: float | Tensor,
    iterations: int = 30,
    gain_limits: Tensor | None = None,
) -> tuple[LinearGaussian, Tensor, Tensor]:
    """The new controllers, their η [C] and KL [C], with KL(p_new ‖ reference) ≤ kl_step · T
    (kl_step a number or one per condition [C]) and, given gain_limits [C, S], no gain beyond both its
    limit and the reference's own (|K_t[a, j]| ≤ max(gain_limits[c, j], |K̄_t[a, j]|)): the step may not
    push a gain past the bound, and a reference beyond it stays reachable.

    Bisection on log η per condition (all conditions at once): the returned η is the smallest
    found whose controller meets both bounds (η at its lower limit where they are slack). As η grows
    the controller tends to the reference, which meets both; where round-off defeats that, the
    reference is kept."""
    conditions, horizon = reference.gains.shape[:2]
    dtype = reference.gains.dtype
    if gain_limits is not None:
        gain_limits = torch.maximum(gain_limits[:, None, None, :], reference.gains.abs())
    target = torch.as_tensor(kl_step, dtype=dtype).expand(conditions) * horizon
    low = torch.full((conditions,), math.log(ETA_RANGE[0]), dtype=dtype)
    high = torch.full((conditions,), math.log(ETA_RANGE[1]), dtype=dtype)
    controller, kl = constrained_controller(dynamics, cost, reference, low.exp())
    slack = (kl <= target) & within_limits(controller, gain_limits)
    best, best_kl, best_eta, found = controller, kl, low.exp(), slack.clone()
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        trial, trial_kl = constrained_controller(dynamics, cost, reference, mid.exp())
        feasible = (trial_kl <= target) & within_limits(trial, gain_limits)
        high = torch.where(feasible, mid, high)
        low = torch.where(feasible, low, mid)
        take = feasible & ~slack
        best = _select(take, trial, best)
        best_kl = torch.where(take, trial_kl, best_kl)
        best_eta = torch.where(take, mid.exp(), best_eta)
        found = found | take
    never = ~found
    if never.any():  # no η meets the bounds inside the range (round-off): keep the reference
        best = _select(never, reference, best)
        best_kl = torch.where(never, torch.zeros_like(best_kl), best_kl)
        best_eta = torch.where(never, torch.full_like(best_eta, ETA_RANGE[1]), best_eta)
    return best, best_eta, best_kl


def _select(mask: Tensor, a: LinearGaussian, b: LinearGaussian) -> LinearGaussian:
    """Per condition: a where mask [C], else b."""
    m = mask[:, None, None, None]
    return LinearGaussian(
        torch.where(m, a.gains, b.gains),
        torch.where(mask[:, None, None], a.offsets, b.offsets),
        torch.where(m, a.covariances, b.covariances),
    )


def expected_cost(dynamics: LinearDynamics, cost: QuadraticCost, controller: LinearGaussian) -> Tensor:
    """E[Σ_t cost_t] under `controller` and the dynamics' state marginals: [C] (the surrogate the
    C-step lowers)."""
    means, covs = forward_pass(dynamics, controller)
    horizon, states = controller.horizon, means.shape[-1]
    gains = controller.gains
    action_means = (gains @ means[:, :horizon].unsqueeze(-1)).squeeze(-1) + controller.offsets
    cross = gains @ covs[:, :horizon]  # [C, T, A, S]
    joint_cov = torch.cat(
        [
            torch.cat([covs[:, :horizon], cross.mT], dim=3),
            torch.cat([cross, cross @ gains.mT + controller.covariances], dim=3),
        ],
        dim=2,
    )
    joint_mean = torch.cat([means[:, :horizon], action_means], dim=2)
    hess, grad = cost.hessians[:, :horizon], cost.gradients[:, :horizon]
    steps = 0.5 * (
        (joint_mean.unsqueeze(-2) @ hess @ joint_mean.unsqueeze(-1)).squeeze(-1).squeeze(-1)
        + torch.diagonal(hess @ joint_cov, dim1=-2, dim2=-1).sum(-1)
    ) + (grad * joint_mean).sum(-1)
    last_h, last_g = cost.hessians[:, horizon, :states, :states], cost.gradients[:, horizon, :states]
    last_mean, last_cov = means[:, horizon], covs[:, horizon]
    final = 0.5 * (
        (last_mean.unsqueeze(-2) @ last_h @ last_mean.unsqueeze(-1)).squeeze(-1).squeeze(-1)
        + torch.diagonal(last_h @ last_cov, dim1=-2, dim2=-1).sum(-1)
    ) + (last_g * last_mean).sum(-1)
    return steps.sum(1) + final
