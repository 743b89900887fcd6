"""Training a memory-augmented network (Santoro et al., 2016) on digit episodes: l2o/MANNDigits-v0.

The model: an LSTM controller (H units, gate order i, f, g, o as torch.nn.LSTMCell) and an NTM
memory with least-recently-used access (`tasks.ntm_memory`, R read heads, S slots of width W).
At step t of an episode the controller reads [x_t (64 pixels), one-hot y_{t-1} (the label one step
late; zero at t = 0), r_{t-1} (last reads, R*W)]; from h_t it emits keys k_t = tanh(W_k h_t + b_k)
[R, W] and write gates α_t [R]; the memory writes then reads; logits = W_o [h_t, r_t] + b_o.

An episode (`tasks.digits_data.DigitClasses.sample_sequences`): N classes of the split (labels
shuffled per episode), `per_class` images each, T = N * per_class steps in random order.

The optimization problem: the MANN's weights, x [B, d] (d = 15,910 with the defaults), trained
on minibatches of episodes. Objective: mean cross-entropy over the T steps of `episodes_per_batch`
fresh episodes per instance, drawn from the problem's own seeded generator at every call
(stochastic = True). Metrics [B], on `eval_episodes` fixed episodes per instance drawn at
sampling time: ``accuracy_1st``, ``accuracy_2nd``, ``accuracy_5th``, ``accuracy_10th`` (accuracy
on the k-th presentation of a class within an episode; chance is 1/N) and ``eval_loss``.
The split picks the classes: "train" instances see training classes only, "validation" and
"test" the held-out ones. x0: per-instance nn.LSTMCell-style uniform initialisation.
Held-out part (`query_loss`, = ``eval_loss``): the fixed evaluation episodes. They are never part
of a training minibatch as episodes, but they are drawn from the same classes and images as the
minibatches, so they measure generalisation to new episodes, not to new images or classes.

Parameter layout of x (row-major): W_in [64 + N + R*W, 4H], W_hh [H, 4H], b [4H],
W_head [H, R*(W + 1)], b_head [R*(W + 1)] (keys first, then the R gates), W_out [H + R*W, N], b_out [N].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o_gym.problem import Problem, check_positive_int
from tasks.checked_settings import keep_checked
from tasks.digits_data import NUM_FEATURES, DigitClasses, digit_classes
from tasks.flat_parameters import unflatten
from tasks.ntm_memory import initial_state, lru_step
from tasks.split_family import SplitTaskFamily

PRESENTATIONS = {1: "accuracy_1st", 2: "accuracy_2nd", 5: "accuracy_5th", 10: "accuracy_10th"}


class MANN:
    """LSTM controller + LRU memory whose B instances have their own weights (flat x [B, d])."""

    def __init__(self, n_way: int, hidden: int, slots: int, width: int, heads: int, gamma: float) -> None:
        self.n_way, self.hidden, self.slots, self.width, self.heads = n_way, hidden, slots, width, heads
        if not 0 <= gamma <= 1:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
        self.gamma = float(gamma)
        self.input_size = NUM_FEATURES + n_way + heads * width
        h, rw = hidden, heads * width
        self.shapes: dict[str, tuple[int, ...]] = {
            "W_in": (self.input_size, 4 * h),
            "W_hh": (h, 4 * h),
            "b": (4 * h,),
            "W_head": (h, heads * (width + 1)),
            "b_head": (heads * (width + 1),),
            "W_out": (h + rw, n_way),
            "b_out": (n_way,),
        }
        self.num_params = sum(math.prod(s) for s in self.shapes.values())

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Per-instance weight tensors [B, *shape] as views into x [B, d]."""
        return unflatten(x, self.shapes)

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """n weight vectors [n, d]: U(±1/sqrt(H)) for the LSTM, U(±1/sqrt(fan_in)) for the heads."""
        fan = {
            "W_in": self.hidden,
            "W_hh": self.hidden,
            "b": self.hidden,
            "W_head": self.hidden,
            "b_head": self.hidden,
            "W_out": self.hidden + self.heads * self.width,
            "b_out": self.hidden + self.heads * self.width,
        }
        parts = [
            (2 * torch.rand(n, math.prod(shape), generator=generator) - 1) / math.sqrt(fan[name])
            for name, shape in self.shapes.items()
        ]
        return torch.cat(parts, dim=1)

    def forward(self, x: Tensor, images: Tensor, labels: Tensor) -> Tensor:
        """Logits [B, E, T, N] of each instance on its E episodes: images [B, E, T, 64], labels [B, E, T]."""
        w = self.unflatten(x)
        batch, episodes, steps, _ = images.shape
        h_size, rw = self.hidden, self.heads * self.width
        previous = F.one_hot(labels, self.n_way).to(images.dtype)
        previous = torch.cat([torch.zeros_like(previous[:, :, :1]), previous[:, :, :-1]], dim=2)  # y_{t-1}
        outside = torch.cat([images, previous], dim=3).reshape(batch, episodes * steps, -1)
        w_outside, w_reads = w["W_in"][:, : NUM_FEATURES + self.n_way], w["W_in"][:, NUM_FEATURES + self.n_way :]
        drive = torch.baddbmm(w["b"].unsqueeze(1), outside, w_outside).view(batch, episodes, steps, 4 * h_size)
        drives = drive.unbind(dim=2)  # one backward for all steps (indexing drive[:, :, t] fills a zero copy per step)
        h = images.new_zeros(batch, episodes, h_size)
        c = torch.zeros_like(h)
        memory = initial_state(batch * episodes, self.slots, self.width, self.heads, images)
        logits = []
        for t in range(steps):
            reads = memory.reads.reshape(batch, episodes, rw)
            gates = drives[t] + torch.bmm(reads, w_reads) + torch.bmm(h, w["W_hh"])
            i, f, g, o = gates.chunk(4, dim=2)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            head = torch.baddbmm(w["b_head"].unsqueeze(1), h, w["W_head"]).reshape(batch * episodes, self.heads, -1)
            keys, alpha = torch.tanh(head[:, :, : self.width]), head[:, :, self.width]
            memory = lru_step(memory, keys, alpha, self.gamma)
            features = torch.cat([h, memory.reads.reshape(batch, episodes, rw)], dim=2)
            logits.append(torch.baddbmm(w["b_out"].unsqueeze(1), features, w["W_out"]))
        return torch.stack(logits, dim=2)


def episode_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy per instance over its episodes and steps: [B, E, T, N], [B, E, T] -> [B]."""
    return F.cross_entropy(logits.flatten(1, 2).transpose(1, 2), labels.flatten(1), reduction="none").mean(dim=1)


class MANNDigitsProblem(Problem):
    """B MANNs trained on fresh episodes of the split's classes (stochastic)."""

    instance_fields = ("eval_images", "eval_labels", "eval_presentation")
    stochastic = True
    has_query = True

    def __init__(
        self,
        model: MANN,
        classes: DigitClasses,
        per_class: int,
        episodes_per_batch: int,
        eval_images: Tensor,
        eval_labels: Tensor,
        eval_presentation: Tensor,
        x0: Tensor,
        generator: torch.Generator,
    ) -> None:
        super().__init__(x0, generator)
        self.model, self.classes = model, classes
        self.per_class, self.episodes_per_batch = per_class, episodes_per_batch
        self.eval_images, self.eval_labels, self.eval_presentation = eval_images, eval_labels, eval_presentation

    def draw_episodes(self, n_instances: int, n_episodes: int, generator: torch.Generator) -> tuple[Tensor, ...]:
        """images [B, E, T, 64], labels [B, E, T], presentation [B, E, T], in one batched draw."""
        seqs = self.classes.sample_sequences(n_instances * n_episodes, self.model.n_way, self.per_class, generator)
        return tuple(s.reshape(n_instances, n_episodes, *s.shape[1:]).to(self.device) for s in seqs)

    def loss(self, x: Tensor) -> Tensor:
        images, labels, _ = self.draw_episodes(x.shape[0], self.episodes_per_batch, self.generator)
        return episode_loss(self.model.forward(x, images, labels), labels)

    def query_loss(self, x: Tensor) -> Tensor:
        """Cross-entropy on the instance's fixed evaluation episodes [B] (the metrics' eval_loss)."""
        return episode_loss(self.model.forward(x, self.eval_images, self.eval_labels), self.eval_labels)

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            logits = self.model.forward(x, self.eval_images, self.eval_labels)
            correct = (logits.argmax(dim=3) == self.eval_labels).float()
            out = {}
            for k, name in PRESENTATIONS.items():
                if k <= self.per_class:
                    mask = (self.eval_presentation == k).float()
                    out[name] = (correct * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
            out["eval_loss"] = episode_loss(logits, self.eval_labels)
            return out


class MANNDigitsFamily(SplitTaskFamily):
    """Train a MANN (LSTM + LRU memory) on N-way digit episodes with labels one step late."""

    description = "MANN (LSTM + NTM LRU memory) on N-way digit episodes (Santoro et al. 2016)"
    default_action_scale = 0.01
    has_optimum = False
    has_query = True  # query_loss: cross-entropy on the fixed evaluation episodes

    def __init__(
        self,
        n_way: int = 5,
        per_class: int = 10,
        hidden: int = 32,
        memory_slots: int = 64,
        memory_width: int = 16,
        read_heads: int = 1,
        gamma: float = 0.95,
        episodes_per_batch: int = 16,
        eval_episodes: int = 32,
    ) -> None:
        keep_checked(
            self,
            check_positive_int,
            n_way=n_way,
            per_class=per_class,
            episodes_per_batch=episodes_per_batch,
            eval_episodes=eval_episodes,
        )
        check_positive_int("memory_slots", memory_slots)
        if check_positive_int("read_heads", read_heads) > memory_slots:
            raise ValueError(f"read_heads must be <= memory_slots ({memory_slots}), got {read_heads}")
        self.model = MANN(
            n_way,
            check_positive_int("hidden", hidden),
            memory_slots,
            check_positive_int("memory_width", memory_width),
            read_heads,
            gamma,
        )
        self.dim = self.model.num_params

    def sample_split_instances(
        self, n: int, generator: torch.Generator, split: str, device: torch.device
    ) -> MANNDigitsProblem:
        x0 = self.model.init(n, generator).to(device)
        stream = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        classes = digit_classes(split)
        episodes = classes.sample_sequences(n * self.eval_episodes, self.n_way, self.per_class, generator)
        images, labels, presentation = (e.reshape(n, self.eval_episodes, *e.shape[1:]).to(device) for e in episodes)
        return MANNDigitsProblem(
            self.model, classes, self.per_class, self.episodes_per_batch, images, labels, presentation, x0, stream
        )
