"""MANN on digits: the NTM LRU memory against a hand-computed example of equations 1-5, the batched
model against a per-instance reference (torch.nn.LSTMCell + a plain memory), the stochastic problem."""

import math

import pytest
import torch
import torch.nn.functional as F

from tasks.mann_digits import MANN, MANNDigitsFamily
from tasks.ntm_memory import MemoryState, least_used_weights, lru_step


def test_lru_step_matches_hand_computed_example():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    state = MemoryState(
        memory=memory,
        usage=torch.tensor([[0.5, 0.1, 0.3]]),
        read_weights=torch.tensor([[[0.2, 0.5, 0.3]]]),
        least_used=torch.tensor([[0.0, 1.0, 0.0]]),
        reads=torch.zeros(1, 1, 2),
    )
    new = lru_step(state, keys=torch.tensor([[[1.0, 0.0]]]), alpha=torch.tensor([[0.0]]), gamma=0.9)
    # write weights: σ(0) = 0.5 -> 0.5 * [0.2, 0.5, 0.3] + 0.5 * [0, 1, 0]
    w_w = [0.1, 0.75, 0.15]
    # slot 1 (least used) is zeroed, then M_t(i) = M_{t-1}(i) + w_w(i) k with k = [1, 0]   (eq. 5)
    m_t = [[1.1, 0.0], [0.75, 0.0], [1.15, 1.0]]
    torch.testing.assert_close(new.memory[0], torch.tensor(m_t))
    # cosine similarities (eq. 1): 1, 1, 1.15 / sqrt(1.15² + 1)
    cos = [1.0, 1.0, 1.15 / math.sqrt(1.15**2 + 1.0)]
    z = sum(math.exp(c) for c in cos)
    w_r = [math.exp(c) / z for c in cos]  # eq. 2
    torch.testing.assert_close(new.read_weights[0, 0], torch.tensor(w_r), rtol=1e-5, atol=1e-6)
    r = [sum(w_r[i] * m_t[i][j] for i in range(3)) for j in range(2)]  # eq. 3
    torch.testing.assert_close(new.reads[0, 0], torch.tensor(r), rtol=1e-5, atol=1e-6)
    usage = [0.9 * u + w_r[i] + w_w[i] for i, u in enumerate([0.5, 0.1, 0.3])]
    torch.testing.assert_close(new.usage[0], torch.tensor(usage), rtol=1e-5, atol=1e-6)
    lu = [1.0 if u <= min(usage) else 0.0 for u in usage]  # eq. 4 with n = 1 read head
    torch.testing.assert_close(new.least_used[0], torch.tensor(lu))


def test_least_used_weights_mark_the_n_smallest_usages():
    usage = torch.tensor([[0.3, 0.1, 0.2, 0.5], [0.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # ties go to lower slots
    torch.testing.assert_close(least_used_weights(usage, 2), expected)


def reference_memory_step(memory, usage, w_r_prev, w_lu_prev, keys, alpha, gamma):
    """One stream of the LRU memory, written out with per-head loops."""
    heads, slots = keys.shape[0], memory.shape[0]
    w_w = [torch.sigmoid(alpha[h]) * w_r_prev[h] + (1 - torch.sigmoid(alpha[h])) * w_lu_prev for h in range(heads)]
    memory = memory.clone()
    memory[int(torch.argmin(usage))] = 0.0
    for h in range(heads):
        memory = memory + w_w[h].unsqueeze(1) * keys[h].unsqueeze(0)
    w_r = []
    for h in range(heads):
        sims = torch.stack([keys[h] @ memory[i] / (keys[h].norm() * memory[i].norm() + 1e-8) for i in range(slots)])
        w_r.append(torch.softmax(sims, 0))
    reads = torch.stack([(w_r[h].unsqueeze(1) * memory).sum(0) for h in range(heads)])
    usage = gamma * usage + sum(w_r) + sum(w_w)
    threshold = usage.sort().values[heads - 1]
    w_lu = (usage <= threshold).float()
    return memory, usage, torch.stack(w_r), w_lu, reads


def reference_mann(model: MANN, params: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One instance, one episode: logits [T, N] with torch.nn.LSTMCell and the memory above."""
    w = {k: v[0] for k, v in model.unflatten(params.unsqueeze(0)).items()}
    cell = torch.nn.LSTMCell(model.input_size, model.hidden)
    with torch.no_grad():
        cell.weight_ih.copy_(w["W_in"].T)
        cell.weight_hh.copy_(w["W_hh"].T)
        cell.bias_ih.copy_(w["b"])
        cell.bias_hh.zero_()
    slots, width, heads = model.slots, model.width, model.heads
    memory = torch.full((slots, width), 1e-6)
    usage, w_r, w_lu = torch.zeros(slots), torch.zeros(heads, slots), torch.zeros(slots)
    w_lu[:heads] = 1.0
    reads = torch.zeros(heads, width)
    h = c = torch.zeros(1, model.hidden)
    out = []
    for t in range(images.shape[0]):
        previous = F.one_hot(labels[t - 1], model.n_way).float() if t > 0 else torch.zeros(model.n_way)
        inputs = torch.cat([images[t], previous, reads.flatten()]).unsqueeze(0)
        h, c = cell(inputs, (h, c))
        head = (h[0] @ w["W_head"] + w["b_head"]).view(heads, width + 1)
        keys, alpha = torch.tanh(head[:, :width]), head[:, width]
        memory, usage, w_r, w_lu, reads = reference_memory_step(memory, usage, w_r, w_lu, keys, alpha, model.gamma)
        out.append(torch.cat([h[0], reads.flatten()]) @ w["W_out"] + w["b_out"])
    return torch.stack(out)


def test_mann_forward_matches_per_instance_reference():
    model = MANN(n_way=2, hidden=4, slots=4, width=3, heads=2, gamma=0.9)
    g = torch.Generator().manual_seed(0)
    x = model.init(2, g)
    images = torch.rand(2, 2, 5, 64, generator=g)
    labels = torch.randint(0, 2, (2, 2, 5), generator=g)
    logits = model.forward(x, images, labels)
    assert logits.shape == (2, 2, 5, 2)
    with torch.no_grad():
        for b in range(2):
            for e in range(2):
                torch.testing.assert_close(logits[b, e], reference_mann(model, x[b], images[b, e], labels[b, e]))


def test_problem_is_stochastic_seeded_and_reports_presentations():
    family = MANNDigitsFamily(
        per_class=5, hidden=8, memory_slots=8, memory_width=4, episodes_per_batch=2, eval_episodes=3
    )
    a = family.sample(2, torch.Generator().manual_seed(0), split="test")
    b = family.sample(2, torch.Generator().manual_seed(0), split="test")
    assert a.stochastic and a.dim == family.dim
    x = a.init()
    first, second = a.loss(x), a.loss(x)
    assert not torch.equal(first, second)  # a fresh minibatch of episodes each call
    torch.testing.assert_close(b.loss(x), first)  # same seed, same stream
    assert a.eval_images.shape == (2, 3, 25, 64)
    metrics = a.metrics(x)
    assert set(metrics) == {"accuracy_1st", "accuracy_2nd", "accuracy_5th", "eval_loss"}
    assert all(m.shape == (2,) for m in metrics.values())
    assert all(((m >= 0) & (m <= 1)).all() for k, m in metrics.items() if k != "eval_loss")
    f, grad = a.loss_and_grad(x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_default_size_and_bad_arguments():
    assert MANNDigitsFamily().dim == 15910
    with pytest.raises(ValueError, match="read_heads"):
        MANNDigitsFamily(memory_slots=2, read_heads=3)
    with pytest.raises(ValueError, match="gamma"):
        MANNDigitsFamily(gamma=1.5)


@pytest.mark.slow
def test_adam_trained_mann_beats_chance_on_held_out_classes():
    from agents.hand_designed import make_optimizer
    from l2o_gym.state import OptimizationState

    family = MANNDigitsFamily()
    train = family.sample(1, torch.Generator().manual_seed(200), split="train")
    held_out = family.sample(1, torch.Generator().manual_seed(300), split="test")
    state = OptimizationState.start(train)
    rule = make_optimizer("adam", lr=0.01)
    rule.reset(state)
    for _ in range(500):
        state.advance(rule.step(state))
    assert float(held_out.metrics(state.x)["accuracy_2nd"]) > 0.3  # chance 0.2
