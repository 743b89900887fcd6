"""MAML families and meta-training: forward passes against per-instance references, the inner
loop's gradients, the on-disk cache (used when present, rebuilt or reported when corrupt)."""

import math

import pytest
import torch
import torch.nn.functional as F

import tasks.maml_training as maml_training
from tasks.batched_mlp import BatchedMLP
from tasks.maml_digits import MAMLDigitsFamily
from tasks.maml_sinusoid import MAMLSinusoidFamily
from tasks.maml_training import CorruptCacheError, MAMLConfig, cache_path, cached_init, inner_loop, meta_train


def reference_mlp(params: torch.Tensor, sizes, inputs: torch.Tensor) -> torch.Tensor:
    """One instance's MLP with torch.nn.Linear layers loaded from the flat layout."""
    layers, start, h = [], 0, inputs
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        linear = torch.nn.Linear(a, b)
        with torch.no_grad():
            linear.weight.copy_(params[start : start + a * b].view(a, b).T)
            linear.bias.copy_(params[start + a * b : start + a * b + b])
        layers.append(linear)
        start += a * b + b
    for i, layer in enumerate(layers):
        h = layer(h)
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h


def test_batched_mlp_matches_per_instance_reference():
    sizes = (3, 5, 4, 2)
    net = BatchedMLP(sizes)
    assert net.num_params == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2
    g = torch.Generator().manual_seed(0)
    x = net.init(4, g)
    inputs = torch.randn(4, 6, 3, generator=g)
    out = net.forward(x, inputs)
    for b in range(4):
        torch.testing.assert_close(out[b], reference_mlp(x[b], sizes, inputs[b]))


@pytest.mark.parametrize("sizes", [(3, 5, 4, 2), (4, 3), (1, 40, 40, 1)])
def test_batched_mlp_backpropagation_matches_autograd(sizes):
    """`BatchedMLP.loss_and_grad` against autograd through `forward`, with ReLUs that are off for
    some inputs, for a linear model (one layer) too."""
    from l2o_gym.problem import autograd_loss_and_grad

    g = torch.Generator().manual_seed(2)
    net = BatchedMLP(sizes)
    x, inputs = net.init(5, g), torch.randn(5, 7, sizes[0], generator=g)
    targets = torch.randn(5, 7, sizes[-1], generator=g)

    def loss(params):
        return (net.forward(params, inputs) - targets).pow(3).sum(dim=(1, 2))

    def output_loss(outputs):
        return (outputs - targets).pow(3).sum(dim=(1, 2)), 3 * (outputs - targets).pow(2)

    f, grad = net.loss_and_grad(x, inputs, output_loss)
    f_auto, grad_auto = autograd_loss_and_grad(loss, x)
    torch.testing.assert_close(f, f_auto)
    torch.testing.assert_close(grad, grad_auto)


@pytest.mark.parametrize("family", ["sinusoid", "digits"])
def test_maml_problems_backpropagate_their_own_loss(family):
    """The MAML problems' `loss_and_grad` (the network's own backpropagation, the envs' path) gives
    `loss` and autograd's gradient of it."""
    from l2o_gym.problem import autograd_loss_and_grad

    made = MAMLSinusoidFamily(init="random") if family == "sinusoid" else MAMLDigitsFamily(init="random")
    problem = made.sample(4, torch.Generator().manual_seed(3))
    x = problem.init() + 0.05 * torch.randn(problem.init().shape, generator=torch.Generator().manual_seed(4))
    f, grad = problem.loss_and_grad(x)
    torch.testing.assert_close(f, problem.loss(x))
    torch.testing.assert_close(grad, autograd_loss_and_grad(problem.loss, x)[1])


def test_sinusoid_tasks_and_loss_match_reference():
    family = MAMLSinusoidFamily(init="random", k_shot=10, n_query=7)
    assert family.dim == 1761
    problem = family.sample(3, torch.Generator().manual_seed(1), split="test")
    assert problem.support_x.shape == (3, 10, 1) and problem.query_x.shape == (3, 7, 1)
    assert ((problem.amplitude >= 0.1) & (problem.amplitude <= 5)).all()
    assert ((problem.phase >= 0) & (problem.phase <= math.pi)).all()
    assert (problem.support_x.abs() <= 5).all()
    expected = problem.amplitude.view(-1, 1, 1) * torch.sin(problem.support_x - problem.phase.view(-1, 1, 1))
    torch.testing.assert_close(problem.support_y, expected)
    x = problem.init()
    loss, query = problem.loss(x), problem.metrics(x)["query_mse"]
    for b in range(3):
        ref = F.mse_loss(reference_mlp(x[b], (1, 40, 40, 1), problem.support_x[b]), problem.support_y[b])
        torch.testing.assert_close(loss[b], ref)
        ref_q = F.mse_loss(reference_mlp(x[b], (1, 40, 40, 1), problem.query_x[b]), problem.query_y[b])
        torch.testing.assert_close(query[b], ref_q)
    again = family.sample(3, torch.Generator().manual_seed(1), split="test")
    assert torch.equal(again.support_x, problem.support_x) and torch.equal(again.x0, problem.x0)


def test_digits_episodes_loss_and_accuracy_match_reference():
    family = MAMLDigitsFamily(init="random", n_way=3, k_shot=2, n_query=4)
    problem = family.sample(2, torch.Generator().manual_seed(0), split="validation")
    assert problem.support_x.shape == (2, 6, 64) and problem.query_y.shape == (2, 12)
    x = problem.init()
    loss, metrics = problem.loss(x), problem.metrics(x)
    for b in range(2):
        logits = reference_mlp(x[b], family.net.sizes, problem.support_x[b])
        torch.testing.assert_close(loss[b], F.cross_entropy(logits, problem.support_y[b]))
        q_logits = reference_mlp(x[b], family.net.sizes, problem.query_x[b])
        acc = (q_logits.argmax(1) == problem.query_y[b]).float().mean()
        torch.testing.assert_close(metrics["query_accuracy"][b], acc)


def test_inner_loop_second_order_gradient_matches_manual_hessian_term():
    family = MAMLSinusoidFamily(init="random", k_shot=5, n_query=5)
    problem = family.sample(1, torch.Generator().manual_seed(2))
    theta = problem.init()[0].clone().requires_grad_(True)
    lr = 0.01
    adapted = inner_loop(problem, theta, 1, lr, first_order=False)
    (second,) = torch.autograd.grad(problem.query_loss(adapted).sum(), theta)
    first_adapted = inner_loop(problem, theta, 1, lr, first_order=True)
    (first,) = torch.autograd.grad(problem.query_loss(first_adapted).sum(), theta)
    # reference: d/dθ L_q(θ - α ∇L_s(θ)) = (I - α H_s) ∇L_q(θ') by torch.func
    support = lambda p: problem.loss(p.unsqueeze(0)).sum()  # noqa: E731
    query = lambda p: problem.query_loss(p.unsqueeze(0)).sum()  # noqa: E731
    p = theta.detach()
    adapted_ref = p - lr * torch.func.grad(support)(p)
    gq = torch.func.grad(query)(adapted_ref)
    _, hvp = torch.func.jvp(torch.func.grad(support), (p,), (gq,))
    torch.testing.assert_close(second, gq - lr * hvp, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(first, gq, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(first, second)


def test_meta_training_lowers_the_query_loss_after_adaptation():
    family = MAMLSinusoidFamily(init="random")
    init = family.net.init(1, torch.Generator().manual_seed(0))[0]
    theta, meta = meta_train(lambda m, g: family.sample_tasks(m, g, 10), init, MAMLConfig(iterations=60))
    assert theta.shape == init.shape and meta["final_meta_loss"] < meta["first_meta_loss"]


def test_cache_is_built_then_used(tmp_path, monkeypatch):
    family = MAMLSinusoidFamily(meta_iterations=3, cache_dir=tmp_path)
    init = family.initial_parameters()
    assert family.init_metadata["from_cache"] is False
    files = list((tmp_path / "maml").glob("*.pt"))
    assert len(files) == 1
    blob = torch.load(files[0], weights_only=True)
    assert blob["config"]["iterations"] == 3 and "final_meta_loss" in blob["metadata"]

    def no_training(*args, **kwargs):
        raise AssertionError("meta_train must not run when the cache is present")

    monkeypatch.setattr("tasks.maml_training.meta_train", no_training)
    again = MAMLSinusoidFamily(meta_iterations=3, cache_dir=tmp_path)
    problem = again.sample(2, torch.Generator().manual_seed(0))
    assert again.init_metadata["from_cache"] is True
    assert torch.equal(problem.x0[0], init) and torch.equal(problem.x0[1], init)


def test_cache_location_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(maml_training.CACHE_ENV_VAR, str(tmp_path))
    assert cache_path("x", {"a": 1}).parent == tmp_path / "maml"
    assert cache_path("x", {"a": 1}) != cache_path("x", {"a": 2})


def test_corrupt_cache_is_reported_and_rebuilt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return torch.arange(4.0), {"note": "built"}

    config = {"k": 1}
    cached_init("toy", config, build, 4, tmp_path)
    path = cache_path("toy", config, tmp_path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(CorruptCacheError, match="unreadable"):
        cached_init("toy", config, build, 4, tmp_path, on_corrupt="raise")
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        init, meta = cached_init("toy", config, build, 4, tmp_path)
    assert torch.equal(init, torch.arange(4.0)) and meta["from_cache"] is False and len(calls) == 2
    init, meta = cached_init("toy", config, build, 4, tmp_path)
    assert meta["from_cache"] is True and len(calls) == 2
    # a file of the wrong shape is corrupt too
    torch.save({"format": 1, "name": "toy", "config": config, "metadata": {}, "init": torch.zeros(3)}, path)
    with pytest.raises(CorruptCacheError, match="invalid init"):
        cached_init("toy", config, build, 4, tmp_path, on_corrupt="raise")
    with pytest.raises(ValueError, match="on_corrupt"):
        cached_init("toy", config, build, 4, tmp_path, on_corrupt="ignore")


def test_digits_maml_trains_on_training_classes_only(tmp_path, monkeypatch):
    seen = []
    family = MAMLDigitsFamily(meta_iterations=2, cache_dir=tmp_path)
    original = family.sample_tasks

    def spy(n, generator, split):
        seen.append(split)
        return original(n, generator, split)

    monkeypatch.setattr(family, "sample_tasks", spy)
    family.initial_parameters()
    assert seen == ["train", "train"]
    test = family.sample(2, torch.Generator().manual_seed(0), split="test")
    assert test.x0.shape == (2, family.dim) and torch.equal(test.x0[0], family.initial_parameters())


def test_bad_arguments():
    with pytest.raises(ValueError, match="init"):
        MAMLSinusoidFamily(init="imagenet")
    with pytest.raises(ValueError, match="k_shot"):
        MAMLDigitsFamily(k_shot=0)
    with pytest.raises(ValueError, match="on_corrupt"):
        MAMLSinusoidFamily(on_corrupt="ignore")
    with pytest.raises(ValueError, match="inner_steps"):
        MAMLConfig(inner_steps=-1)


@pytest.mark.slow
def test_sinusoid_reproduces_the_papers_table():
    """5-shot query MSE after 1/5/10 steps of SGD (α = 0.01) within 30 % of MAML's 0.67 / 0.38 / 0.35
    and far below the pretrained init (default 20,000 meta-iterations; uses the default cache)."""
    from agents.hand_designed import make_optimizer
    from l2o_gym.unroll import unroll

    results = {}
    for init in ("maml", "pretrained"):
        problem = MAMLSinusoidFamily(init=init).sample(600, torch.Generator().manual_seed(1), split="test")
        results[init] = [
            float(unroll(make_optimizer("gd", lr=0.01), problem, steps).metrics["query_mse"].mean())
            for steps in (1, 5, 10)
        ]
    for measured, paper in zip(results["maml"], (0.67, 0.38, 0.35), strict=True):
        assert abs(measured - paper) <= 0.3 * paper
    assert all(p > 3 * m for m, p in zip(results["maml"], results["pretrained"], strict=True))
