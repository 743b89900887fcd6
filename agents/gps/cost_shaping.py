"""Cost shaping by log(f − f*): the C-step minimises Σ_t log(f(x_t) − f* + δ) instead of Σ_t f(x_t).

Along coordinate i, log(f(x + δx e_i) − f*) ≈ log gap + (g_i δx + ½ h_ii δx²) / gap to first order in
the change of f, so the shaped cost is the local quadratic of `agents.gps.cost` with every sample's
gradient and curvature at step t divided by its gap f(x_t) − f* (+ δ) — late steps, where the gap is
small, weigh more than under Σ f, whose early steps dominate. (The exact second derivative would
subtract g² / gap²; it is left out so the shaped curvature stays as positive as f's.) δ =
`GAP_FLOOR` × the instance's initial gap keeps the weights finite where a sample reaches f*.

Shapes: objectives [N, B, T + 1], f* [B]; conditions are coordinates, C = B · d.
"""

from __future__ import annotations

from torch import Tensor

SHAPINGS = ("none", "log_gap")
GAP_FLOOR = 1e-3


def _gaps(objectives: Tensor, f_star: Tensor) -> Tensor:
    """f − f* + δ per sample, instance and step [N, B, T + 1] (non-finite where the sample diverged)."""
    f = objectives.double()
    f_star = f_star.double().to(f.device)[None, :, None]
    initial = (f[..., :1] - f_star).nan_to_num(nan=0.0, posinf=0.0).mean(0, keepdim=True)  # [1, B, 1]
    return (f - f_star).clamp_min(0.0) + GAP_FLOOR * initial.clamp_min(1e-12)


def log_gap_objectives(objectives: Tensor, f_star: Tensor) -> Tensor:
    """log(f − f* + δ) [N, B, T + 1]: what the adaptive KL step measures the actual improvement in."""
    return _gaps(objectives, f_star).log()


def inverse_gap_weights(objectives: Tensor, f_star: Tensor, dim: int) -> Tensor:
    """1 / (f − f* + δ) per sample, condition and step [N, B · d, T + 1] (0 where not finite)."""
    weights = _gaps(objectives, f_star).reciprocal().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    return weights.repeat_interleave(dim, dim=1)
