"""HyperNetDigits: Ha et al.'s parameter count, and the batched classifier (hypernetwork and
direct) against a per-instance reference built from torch.nn modules."""

import pytest
import torch
import torch.nn.functional as F

from tasks.hypernet_digits import HyperConvClassifier, HyperNetDigitsFamily, hypernet_param_count


def test_parameter_count_matches_the_papers_formula():
    # Ha et al.'s MNIST example: a 7x7x16x16 kernel from N_z = 4 -> 4,240 weights + the 4-dim embedding
    assert hypernet_param_count(n_z=4, layers=1, n_in=16, n_out=16, kernel=7) == 4244
    model = HyperConvClassifier(n_classes=5, channels=16, n_z=4, hyper=True)
    n_z, layers, c, f = 4, 2, 16, 3
    formula = n_z * layers + n_z * (n_z + 1) * c + f * f * c * (n_z + 1)
    assert model.hypernet_params == formula == 1048
    direct_rest = (c * 9 + c) + 2 * c + (4 * c * 5 + 5)  # conv1, conv2/conv3 biases, linear
    assert model.num_params == formula + direct_rest
    plain = HyperConvClassifier(n_classes=5, channels=16, n_z=4, hyper=False)
    assert plain.num_params == direct_rest + 2 * c * c * f * f


def reference_kernels(w: dict[str, torch.Tensor], c: int) -> list[torch.Tensor]:
    """K^j [C_out, C_in, 3, 3] from a^j_i = W_i z^j + B_i, K^j_i = W_out a^j_i + B_out, one i at a time."""
    kernels = []
    for j in range(w["z"].shape[0]):
        kernel = torch.zeros(c, c, 3, 3)
        for i in range(c):
            a = w["W_in"][i] @ w["z"][j] + w["B_in"][i]
            slice_i = (w["W_out"] @ a + w["B_out"]).view(3, 3, c)  # f x f x N_out
            kernel[:, i] = slice_i.permute(2, 0, 1)
        kernels.append(kernel)
    return kernels


def reference_forward(model: HyperConvClassifier, params: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    w = {k: v[0] for k, v in model.unflatten(params.unsqueeze(0)).items()}
    c = model.channels
    k2, k3 = reference_kernels(w, c) if model.hyper else (w["conv2_w"], w["conv3_w"])
    convs = [
        torch.nn.Conv2d(1, c, 3, padding=1),
        torch.nn.Conv2d(c, c, 3, padding=1),
        torch.nn.Conv2d(c, c, 3, padding=1),
    ]
    with torch.no_grad():
        for conv, weight, bias in zip(
            convs, [w["conv1_w"], k2, k3], [w["conv1_b"], w["conv2_b"], w["conv3_b"]], strict=True
        ):
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        h = images.view(-1, 1, 8, 8)
        h = F.max_pool2d(F.relu(convs[0](h)), 2)
        h = F.relu(convs[1](h))
        h = F.max_pool2d(F.relu(convs[2](h)), 2)
        return h.flatten(1) @ w["fc_w"] + w["fc_b"]


@pytest.mark.parametrize("hyper", [True, False])
def test_forward_matches_per_instance_reference(hyper):
    family = HyperNetDigitsFamily(n_classes=3, train_per_class=4, test_per_class=2, channels=4, n_z=3, hyper=hyper)
    problem = family.sample(3, torch.Generator().manual_seed(0), split="validation")
    x = problem.init() + 0.1 * torch.randn(3, family.dim, generator=torch.Generator().manual_seed(1))
    logits = family.model.forward(x, problem.train_x)
    assert logits.shape == (3, 12, 3)
    for b in range(3):
        torch.testing.assert_close(
            logits[b], reference_forward(family.model, x[b], problem.train_x[b]), rtol=1e-4, atol=1e-5
        )
    loss = problem.loss(x)
    for b in range(3):
        torch.testing.assert_close(loss[b], F.cross_entropy(logits[b], problem.train_y[b]))


def test_generated_kernels_start_at_the_direct_init_scale_and_learning_moves_them():
    g = torch.Generator().manual_seed(0)
    hyper = HyperConvClassifier(5, 16, 4, True)
    plain = HyperConvClassifier(5, 16, 4, False)
    k_hyper = hyper.kernels(hyper.unflatten(hyper.init(64, g)))[0]
    k_plain = plain.kernels(plain.unflatten(plain.init(64, g)))[0]
    ratio = float(k_hyper.std() / k_plain.std())
    assert 0.5 < ratio < 2.0


def test_problem_metrics_and_seeds():
    family = HyperNetDigitsFamily(train_per_class=5, test_per_class=3, channels=4)
    a = family.sample(2, torch.Generator().manual_seed(3), split="test")
    b = family.sample(2, torch.Generator().manual_seed(3), split="test")
    assert torch.equal(a.x0, b.x0) and torch.equal(a.train_x, b.train_x)
    assert a.test_x.shape == (2, 15, 64)
    metrics = a.metrics(a.init())
    assert set(metrics) == {"test_accuracy", "test_loss", "train_accuracy"}
    assert all(m.shape == (2,) for m in metrics.values())
    with pytest.raises(TypeError, match="hyper"):
        HyperNetDigitsFamily(hyper="yes")


def test_adam_reaches_the_direct_classifiers_test_accuracy():
    from agents.hand_designed import make_optimizer
    from l2o_gym.unroll import unroll

    accuracy = {}
    for hyper in (True, False):
        family = HyperNetDigitsFamily(hyper=hyper, train_per_class=20, test_per_class=30)
        problem = family.sample(2, torch.Generator().manual_seed(0), split="test")
        curves = unroll(make_optimizer("adam", lr=0.01), problem, 100)
        accuracy[hyper] = float(curves.metrics["test_accuracy"].mean())
    assert accuracy[False] > 0.8  # 5-way, chance 0.2
    assert accuracy[True] > accuracy[False] - 0.05
