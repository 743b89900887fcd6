"""Few-shot baselines beside the meta-learned ones, batched over episodes: a network pretrained on
the training classes then fine-tuned on each episode's support set, and nearest-prototype
classification (class means of an embedding; Snell et al.'s rule on a fixed embedding).

Episodes are classification problems like `tasks.maml_digits.MAMLDigitsProblem` (``loss(x)``: the
support cross-entropy [E]; ``model``: the batched MLP of sizes (F, h_1, ..., h_L, N), e.g.
`tasks.batched_mlp.BatchedMLP`; ``held_out_set()``: query x [E, N*Q, F], y [E, N*Q]).

* `pretrain_classifier`: the same MLP with a C-way head, trained by Adam on every image of the
  C training classes (minibatches, cross-entropy); the hidden layers are the embedding.
* `fine_tune`: per episode, the pretrained hidden layers and a new zero N-way head, trained by Adam
  on the support set (``head_only``: the head alone); all E episodes at once (Adam is elementwise,
  so one optimizer over [E, d] is E independent ones). Accuracy on the query set after each of
  `checkpoints` steps.
* `prototype_accuracy`: query images classified by the nearest (Euclidean) support-class mean.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o_gym.problem import Problem, check_positive_int


class BatchedNet(Protocol):
    """A batched MLP (`tasks.batched_mlp.BatchedMLP`): layer sizes, d, forward, init."""

    sizes: tuple[int, ...]
    num_params: int

    def __init__(self, sizes: tuple[int, ...]) -> None: ...
    def forward(self, x: Tensor, inputs: Tensor) -> Tensor: ...
    def init(self, n: int, generator: torch.Generator) -> Tensor: ...


def accuracy_of(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions per instance: logits [B, n, C], labels [B, n] -> [B]."""
    return (logits.argmax(dim=2) == labels).float().mean(dim=1)


def pretrain_classifier(
    net: BatchedNet, images: Tensor, labels: Tensor, steps: int, generator: torch.Generator, lr: float = 3e-3
) -> Tensor:
    """The parameters [d] of `net` (sizes (F, ..., C)) trained on images [n, F] with labels [n] in
    0..C-1: Adam `lr`, batches of 128, `steps` steps, from the network's default initialisation."""
    check_positive_int("steps", steps)
    params = net.init(1, generator).requires_grad_(True)
    optimizer = torch.optim.Adam([params], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            batch = torch.randint(images.shape[0], (128,), generator=generator)
            loss = F.cross_entropy(net.forward(params, images[batch].unsqueeze(0))[0], labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return params.detach()[0]


def hidden_size_of(net: BatchedNet) -> int:
    """The number of parameters of `net`'s hidden layers (all but the last layer)."""
    return net.num_params - (net.sizes[-2] * net.sizes[-1] + net.sizes[-1])


def embed(net: BatchedNet, params: Tensor, inputs: Tensor) -> Tensor:
    """The last hidden layer's (ReLU) features [B, n, h_L] of inputs [B, n, F] under params [d]."""
    hidden = type(net)(net.sizes[:-1])
    features = hidden.forward(params[: hidden.num_params].unsqueeze(0).expand(inputs.shape[0], -1), inputs)
    return torch.relu(features)


def fine_tune(
    pretrained: Tensor, problem: Problem, lr: float, checkpoints: tuple[int, ...], head_only: bool
) -> dict[int, Tensor]:
    """Query accuracy [E] after each of `checkpoints` Adam steps on the support set, from the
    pretrained hidden layers (the prefix of `pretrained`) and a zero head for the episodes' network."""
    episode_net = problem.model
    query_x, query_y = problem.held_out_set()
    prefix = hidden_size_of(episode_net)
    episodes = problem.batch_size
    start = torch.cat([pretrained[:prefix], torch.zeros(episode_net.num_params - prefix)])
    params = start.expand(episodes, -1).clone().requires_grad_(True)
    trainable = torch.zeros(episode_net.num_params)
    trainable[prefix if head_only else 0 :] = 1.0
    optimizer = torch.optim.Adam([params], lr=lr)
    accuracy = {}
    with torch.enable_grad():
        for step in range(1, max(checkpoints) + 1):
            optimizer.zero_grad(set_to_none=True)
            problem.loss(params).sum().backward()
            params.grad.mul_(trainable)
            optimizer.step()
            if step in checkpoints:
                with torch.no_grad():
                    accuracy[step] = accuracy_of(episode_net.forward(params, query_x), query_y)
    return accuracy


def prototype_accuracy(support: Tensor, support_y: Tensor, query: Tensor, query_y: Tensor, n_way: int) -> Tensor:
    """Accuracy [E] of nearest-class-mean classification: support [E, n, D], query [E, m, D]."""
    onehot = F.one_hot(support_y, n_way).to(support.dtype)  # [E, n, N]
    prototypes = onehot.transpose(1, 2) @ support / onehot.sum(dim=1).unsqueeze(-1)  # [E, N, D]
    predicted = torch.cdist(query, prototypes).argmin(dim=2)
    return (predicted == query_y).float().mean(dim=1)
