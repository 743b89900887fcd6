"""LearnedTorchOptimizer follows torch.optim's conventions and never blows up silently."""

import io
import warnings

import pytest
import torch

from agents.hand_designed import make_optimizer
from agents.meta.l2l_lstm import L2LOptimizer
from agents.runtime.torch_optimizer import DivergenceError, LearnedTorchOptimizer
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule

X, Y = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)), None
Y = X @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _closure(model, optimizer):
    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), Y)
        loss.backward()
        return loss

    return closure


class FixedGD(UpdateRule):
    """x ← x - lr ∇f, stateless."""

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr

    def step(self, state: OptimizationState) -> torch.Tensor:
        return -self.lr * state.grad


class Exploding(UpdateRule):
    """A sensible step, except a huge one (or a non-finite one) at the step counts in `bad`."""

    def __init__(self, bad: tuple[int, ...], value: float = 1e8) -> None:
        self.bad, self.value = bad, value

    def step(self, state: OptimizationState) -> torch.Tensor:
        if int(state.t[0]) in self.bad:
            return torch.full_like(state.x, self.value)
        return -0.05 * state.grad


def _l2l() -> UpdateRule:
    torch.manual_seed(3)
    return L2LOptimizer()


RULES = {
    "adam": lambda: make_optimizer("adam", lr=0.01),
    "lbfgs": lambda: make_optimizer("lbfgs"),
    "l2l": _l2l,
    "window_qn": lambda: make_optimizer("window_qn"),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_resuming_from_a_saved_state_dict_equals_not_stopping(name):
    straight = _model()
    optimizer = LearnedTorchOptimizer(straight.parameters(), RULES[name]())
    for _ in range(60):
        optimizer.step(_closure(straight, optimizer))

    first = _model()
    optimizer = LearnedTorchOptimizer(first.parameters(), RULES[name]())
    for _ in range(30):
        optimizer.step(_closure(first, optimizer))
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    for _ in range(5):  # the first optimizer goes on: the saved state must not follow it
        optimizer.step(_closure(first, optimizer))
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = _model(seed=1)
    resumed.load_state_dict(saved["model"])
    optimizer = LearnedTorchOptimizer(resumed.parameters(), RULES[name]())
    optimizer.load_state_dict(saved["optimizer"])
    for _ in range(30):
        optimizer.step(_closure(resumed, optimizer))
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(next(first.parameters()), next(resumed.parameters()))


def test_a_state_dict_for_other_parameters_is_refused():
    model = _model()
    optimizer = LearnedTorchOptimizer(model.parameters(), FixedGD())
    optimizer.step(_closure(model, optimizer))
    other = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="sizes"):
        LearnedTorchOptimizer(other.parameters(), FixedGD()).load_state_dict(optimizer.state_dict())
    with pytest.raises(ValueError, match="not written by LearnedTorchOptimizer"):
        LearnedTorchOptimizer(model.parameters(), FixedGD()).load_state_dict(
            torch.optim.SGD(model.parameters()).state_dict()
        )


def test_group_lr_multiplies_the_learned_step():
    model = torch.nn.Linear(4, 1)
    reference = torch.nn.Linear(4, 1)
    reference.load_state_dict(model.state_dict())
    ours = LearnedTorchOptimizer(
        [{"params": [model.weight], "lr": 1e-9}, {"params": [model.bias], "lr": 0.5}], FixedGD(0.1)
    )
    sgd = torch.optim.SGD([{"params": [reference.weight], "lr": 1e-10}, {"params": [reference.bias], "lr": 0.05}])
    start = model.weight.detach().clone()
    for _ in range(10):
        ours.step(_closure(model, ours))
        sgd.step(_closure(reference, sgd))
    assert (model.weight - start).abs().max() < 1e-8
    torch.testing.assert_close(model.bias, reference.bias)


def test_lr_schedulers_drive_the_group_multiplier():
    model, reference = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    reference.load_state_dict(model.state_dict())
    ours = LearnedTorchOptimizer(model.parameters(), FixedGD(0.1))
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1)
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5) for o in (ours, sgd)]
    for _ in range(12):
        ours.step(_closure(model, ours))
        sgd.step(_closure(reference, sgd))
        for scheduler in schedulers:
            scheduler.step()
    assert ours.param_groups[0]["lr"] == pytest.approx(0.125)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_parameters_without_gradients_are_untouched():
    model = _model()
    unused = torch.nn.Parameter(torch.randn(3))
    model[0].weight.requires_grad_(False)
    frozen, spare = model[0].weight.detach().clone(), unused.detach().clone()
    optimizer = LearnedTorchOptimizer([*model.parameters(), unused], make_optimizer("lbfgs"))
    moving = model[2].weight.detach().clone()
    for _ in range(5):
        optimizer.step(_closure(model, optimizer))
    assert torch.equal(model[0].weight, frozen) and torch.equal(unused, spare)
    assert not torch.equal(model[2].weight, moving)


def test_step_returns_the_closures_loss_before_the_step():
    model = _model()
    optimizer = LearnedTorchOptimizer(model.parameters(), FixedGD())
    returned = []

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), Y)
        loss.backward()
        returned.append(loss)
        return loss

    for _ in range(3):
        with torch.no_grad():
            before = torch.nn.functional.mse_loss(model(X), Y)
        loss = optimizer.step(closure)
        assert loss is returned[-1]
        assert float(loss.detach()) == pytest.approx(float(before), rel=1e-6)
    assert len(returned) == 3  # one evaluation per step


def test_a_closure_without_backward_is_an_error():
    model = _model()
    optimizer = LearnedTorchOptimizer(model.parameters(), FixedGD())

    def forgetful():
        optimizer.zero_grad()
        return torch.nn.functional.mse_loss(model(X), Y)

    with pytest.raises(RuntimeError, match="left no gradients"):
        optimizer.step(forgetful)
    optimizer.step(_closure(model, optimizer))
    with pytest.raises(RuntimeError, match="left no gradients"):
        optimizer.step(forgetful)
    with pytest.raises(ValueError, match="closure is required"):
        optimizer.step()


def test_add_param_group_extends_the_state():
    model = _model()
    extra = torch.nn.Parameter(torch.ones(2))
    optimizer = LearnedTorchOptimizer(model.parameters(), FixedGD())

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), Y) + (extra**2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    dim = optimizer.optimization_state.x.shape[1]
    optimizer.add_param_group({"params": [extra], "lr": 2.0})
    for _ in range(3):
        optimizer.step(closure)
    state = optimizer.optimization_state
    assert state.x.shape[1] == state.grad_history.shape[2] == dim + 2
    assert (extra.abs() < 1).all()
    assert (state.grad[0, dim:] != 0).all()


def test_add_param_group_restarts_a_rule_with_runtime_state_and_says_so():
    model = _model()
    extra = torch.nn.Parameter(torch.ones(2))
    optimizer = LearnedTorchOptimizer(model.parameters(), make_optimizer("adam", lr=0.01))
    optimizer.step(_closure(model, optimizer))
    with pytest.warns(RuntimeWarning, match="restarts"):
        optimizer.add_param_group({"params": [extra]})
    with pytest.raises(ValueError, match="one dtype"):
        LearnedTorchOptimizer(
            [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2, dtype=torch.float64))], FixedGD()
        ).step(lambda: None)


def test_divergence_restores_the_last_good_parameters_warns_once_and_backs_off():
    model = _model()
    optimizer = LearnedTorchOptimizer(model.parameters(), Exploding(bad=(3, 6)))
    with pytest.warns(RuntimeWarning, match="diverged at step") as caught:
        for _ in range(12):
            loss = optimizer.step(_closure(model, optimizer))
    assert len([w for w in caught if "diverged" in str(w.message)]) == 1
    assert optimizer.divergences == 2 and optimizer.step_multiplier == 0.25
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert float(loss.detach()) < float(optimizer.optimization_state.f0[0])


def test_a_non_finite_step_is_a_divergence_and_strict_mode_raises():
    model = _model()
    optimizer = LearnedTorchOptimizer(model.parameters(), Exploding(bad=(2,), value=float("nan")))
    with pytest.warns(RuntimeWarning, match="non-finite step"):
        for _ in range(4):
            optimizer.step(_closure(model, optimizer))
    assert optimizer.divergences == 1 and all(torch.isfinite(p).all() for p in model.parameters())

    model = _model()
    strict = LearnedTorchOptimizer(model.parameters(), Exploding(bad=(2,)), on_divergence="raise")
    for _ in range(3):
        strict.step(_closure(model, strict))
    good = strict.optimization_state.x[0].clone()  # the parameters hold the huge step, not yet evaluated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DivergenceError, match="diverged at step 3"):
            strict.step(_closure(model, strict))
    assert torch.equal(torch.nn.utils.parameters_to_vector(model.parameters()), good)


def test_a_loss_rising_above_its_start_is_warned_once_and_counted():
    class Ascent(UpdateRule):
        def step(self, state):
            return 0.1 * state.grad.sign()

    model = _model()
    optimizer = LearnedTorchOptimizer(model.parameters(), Ascent())
    with pytest.warns(RuntimeWarning, match="rose") as caught:
        for _ in range(30):
            optimizer.step(_closure(model, optimizer))
    assert len([w for w in caught if "rose" in str(w.message)]) == 1
    assert optimizer.rises > 0 and optimizer.divergences == 0
    assert optimizer.state_dict()["learned"]["rises"] == optimizer.rises


def test_bad_arguments_are_one_line_errors():
    params = list(_model().parameters())
    with pytest.raises(ValueError, match="on_divergence"):
        LearnedTorchOptimizer(params, FixedGD(), on_divergence="ignore")
    with pytest.raises(ValueError, match="lr must be"):
        LearnedTorchOptimizer(params, FixedGD(), lr=-1.0)
    with pytest.raises(TypeError, match="UpdateRule"):
        LearnedTorchOptimizer(params, torch.optim.SGD)


def test_the_documented_example_runs(tmp_path):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "torch_optimizer.md"
    block = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)[0]
    block = block.replace('"runs/default/best_model"', 'make_optimizer("adam", lr=0.01)')
    block = block.replace('"checkpoint.pt"', repr(str(tmp_path / "checkpoint.pt")))
    namespace: dict = {"make_optimizer": make_optimizer}
    exec(compile(block, str(doc), "exec"), namespace)
    assert namespace["optimizer"].param_groups[1]["lr"] == pytest.approx(0.5 * 0.25)
    assert (tmp_path / "checkpoint.pt").is_file()
