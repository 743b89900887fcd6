"""The GPS policy's forms: the gain-setting form starts as momentum, fits a gain that only its observation
(not the controllers' state) determines, and round-trips through save / load with time features."""

from __future__ import annotations

import json
import math

import pytest
import torch

from agents.gps.coordinate_state import GRADIENT, LAST_STEP
from agents.gps.options import GPSOptions
from agents.gps.policy import LOG_GAIN_BOUND, CoordinatewisePolicyNet, GPSOptimizer
from agents.gps.policy_fit import fit_policy, linearise_policy
from agents.gps.training import CHECKPOINT, OPTIONS_FILE, check_run_folder, train_gps
from agents.runtime.saved_rules import META_FILE, load_rule, read_meta
from l2o_gym.features import TIME_SCALES, make_observation
from l2o_gym.registry import make_family
from l2o_gym.unroll import unroll
from tests.test_gps_training import TINY

ENV = "l2o/LogisticRegression-v0"


@pytest.mark.parametrize("form", ["additive", "gains"])
def test_both_forms_start_as_momentum_exactly(form: str) -> None:
    net = CoordinatewisePolicyNet(7, 2.0, form=form)
    torch.nn.init.normal_(net.body[0].weight)
    net.start_as_momentum(0.3, 0.8)
    rows, raw = torch.randn(11, 7), torch.randn(11, 2)
    assert torch.allclose(net(rows, raw), -0.3 * raw[:, 0] + 0.8 * raw[:, 1], atol=1e-7)


def test_the_gains_form_scales_the_gradient_gain_by_its_bounded_log_output() -> None:
    net = CoordinatewisePolicyNet(4, 2.0, form="gains")
    net.start_as_momentum(0.5, 0.0)
    rows, raw = torch.randn(6, 4), torch.tensor([[1.0, 0.0]]).expand(6, 2)
    with torch.no_grad():
        net.body[-1].bias[1] = 0.7
    scaled = 0.5 * math.exp(LOG_GAIN_BOUND * math.tanh(0.7 / LOG_GAIN_BOUND))
    assert torch.allclose(net(rows, raw), torch.full((6,), -scaled), atol=1e-6)
    with torch.no_grad():
        net.body[-1].bias[1] = 1e3  # bounded: never more than e^LOG_GAIN_BOUND times a
    assert net(rows, raw).abs().max() <= 0.5 * math.exp(LOG_GAIN_BOUND) * (1 + 1e-5)
    with pytest.raises(ValueError, match="form"):
        CoordinatewisePolicyNet(4, 2.0, form="multiplicative")


def scale_dependent_targets(generator: torch.Generator):
    """Conditions whose gradients have scales 10^[-2, 1]; the target step is −0.1 g / scale (a gain the
    controllers' state (x, g, Δx) cannot tell from one sample, but the row's log |g| history can)."""
    samples, conditions, steps, features = 4, 64, 5, 3
    scale = 10 ** (3 * torch.rand(conditions, generator=generator) - 2)  # [C]
    grads = scale[None, :, None] * torch.randn(samples, conditions, steps + 1, generator=generator)
    states = torch.stack([torch.zeros_like(grads), grads, torch.zeros_like(grads)], -1).double()  # [N, C, T+1, 3]
    log_scale = scale.log10()[None, :, None].expand(samples, conditions, steps)
    rows = torch.stack([log_scale, torch.randn_like(log_scale), torch.randn_like(log_scale)], -1)  # [N, C, T, F]
    assert rows.shape[-1] == features
    targets = (-0.1 * grads[:, :, :-1] / scale[None, :, None]).double()
    precisions = torch.ones(conditions, steps, dtype=torch.float64)
    return rows, states, targets, precisions, torch.ones(samples, conditions)


def test_the_fit_uses_the_observation_beyond_the_controllers_state() -> None:
    rows, states, targets, precisions, weights = scale_dependent_targets(torch.Generator().manual_seed(0))
    losses = {}
    for form in ("additive", "gains"):
        torch.manual_seed(0)
        net = CoordinatewisePolicyNet(rows.shape[-1], 1.0, hidden=16, form=form)
        net.set_standardisation(rows)
        net.start_as_momentum(0.1, 0.0)
        kwargs = dict(steps=400, lr=1e-2, batch_size=256, generator=torch.Generator().manual_seed(1))
        losses[form] = fit_policy(net, rows, states, targets, precisions, weights, **kwargs)
        if form == "gains":  # its linearisation per condition follows each condition's own gain −0.1 / scale
            lin = linearise_policy(net, rows, states, weights, torch.ones(*precisions.shape, 1, 1).double())
            log_gain = lin.gains[..., 0, GRADIENT].abs().clamp_min(1e-12).log10().mean(1)  # [C]
            log_scale = rows[0, :, 0, 0].double()
            assert torch.corrcoef(torch.stack([log_gain, -log_scale]))[0, 1] > 0.9
            assert lin.gains[..., 0, LAST_STEP].abs().max() < 0.3
    assert losses["gains"] < 0.2 * losses["additive"]


def test_time_features_and_form_survive_training_and_loading(tmp_path) -> None:
    options = GPSOptions(**{**TINY, "samples": 4, "horizon": 5, "policy_form": "gains", "time_features": True})
    best = train_gps(ENV, tmp_path / "run", options, progress=False)
    meta = read_meta(best)
    assert meta["time_features"] is True and meta["architecture"]["form"] == "gains"
    rule = load_rule(best)
    family = make_family(ENV)
    plain = make_observation(True, family.dim, 25, rule.action_scale)
    assert rule.observation(family.dim).num_features == plain.num_features + len(TIME_SCALES)
    problem = family.sample(3, torch.Generator().manual_seed(5), "test")
    assert torch.isfinite(unroll(rule, problem, 6).objectives).all()
    with pytest.raises(ValueError, match="policy_form"):
        GPSOptions(policy_form="mlp")
    with pytest.raises(ValueError, match="time_features"):
        GPSOptions(time_features=1)


def test_rules_saved_without_a_form_load_as_additive(tmp_path) -> None:
    net = CoordinatewisePolicyNet(make_observation(True, 3, 25, 2.0).num_features, 2.0)
    net.start_as_momentum(1.0, 0.5)
    GPSOptimizer(net.eval(), 25).save(tmp_path / "rule", ENV)
    meta_path = tmp_path / "rule" / META_FILE
    meta = json.loads(meta_path.read_text())
    del meta["architecture"]["form"], meta["time_features"]
    meta_path.write_text(json.dumps(meta))
    loaded = load_rule(tmp_path / "rule")
    assert loaded.net.form == "additive" and loaded.time_features is False


def test_a_run_saved_before_the_forms_resumes_as_additive(tmp_path) -> None:
    recorded = GPSOptions(policy_form="additive").to_dict()
    del recorded["policy_form"], recorded["time_features"]
    (tmp_path / OPTIONS_FILE).write_text(json.dumps(recorded))
    (tmp_path / CHECKPOINT).write_bytes(b"")
    check_run_folder(tmp_path, GPSOptions(policy_form="additive"), resume=True)
    with pytest.raises(ValueError, match="policy_form"):
        check_run_folder(tmp_path, GPSOptions(), resume=True)  # the default form is "gains" now
