"""LogAndSign preprocessing: values and gradients against a numpy reference computed by hand."""

import math

import numpy as np
import pytest
import torch

from agents.meta.log_and_sign import log_and_sign

P = 10.0


def _reference(g: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Features and their derivatives d/dg, written out from the paper's case split."""
    out = np.zeros(g.shape + (2,))
    deriv = np.zeros(g.shape + (2,))
    for idx, value in np.ndenumerate(g):
        if abs(value) >= math.exp(-p):
            out[idx] = (math.log(abs(value)) / p, np.sign(value))
            deriv[idx] = (1.0 / (p * value), 0.0)
        else:
            out[idx] = (-1.0, math.exp(p) * value)
            deriv[idx] = (0.0, math.exp(p))
    return out, deriv


G = np.array([[3.0, -0.5, 1e-2, -2e-4], [1e-6, -1e-7, 0.0, 250.0]])


@pytest.mark.parametrize("p", [P, 5.0])
def test_values_match_reference(p):
    expected, _ = _reference(G, p)
    got = log_and_sign(torch.tensor(G), p)
    assert got.shape == (2, 4, 2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_known_values_by_hand():
    got = log_and_sign(torch.tensor([math.e, -math.exp(-20.0), 0.0], dtype=torch.float64))
    # e: (1/10, +1); -e^-20 is below e^-10: (-1, -e^10 · e^-20 = -e^-10); 0: (-1, 0)
    expected = torch.tensor([[0.1, 1.0], [-1.0, -math.exp(-10.0)], [-1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_gradients_match_reference():
    _, deriv = _reference(G, P)
    g = torch.tensor(G, requires_grad=True)
    feats = log_and_sign(g)
    for k in range(2):
        (grad,) = torch.autograd.grad(feats[..., k].sum(), g, retain_graph=True)
        np.testing.assert_allclose(grad.numpy(), deriv[..., k], rtol=1e-10, atol=1e-10)


def test_gradcheck_away_from_the_threshold():
    g = torch.tensor([0.3, -2.0, 1e-6, -3e-7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: log_and_sign(t), (g,))


def test_gradient_finite_at_zero():
    g = torch.zeros(3, requires_grad=True)
    log_and_sign(g).sum().backward()
    assert torch.isfinite(g.grad).all()


def test_bad_input():
    with pytest.raises(TypeError, match="g must be"):
        log_and_sign(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="p must be"):
        log_and_sign(torch.ones(2), p=0.0)
