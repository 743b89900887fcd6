"""scikit-learn's bundled digits as 40 pseudo-classes, and batched N-way episode sampling.

Data: `sklearn.datasets.load_digits` (1,797 images of 8x8 pixels, 10 digits; nothing downloads).
Every image rotated by 0, 90, 180 and 270 degrees gives 40 pseudo-classes: class ``digit + 10 * k``
holds the digit's images rotated by k * 90 degrees (the Omniglot augmentation of MAML and MANN).
Pixels are scaled to [0, 1]; an image is a flat vector of 64 features.

Class split (fixed, the same for every seed): a permutation of the 40 classes drawn from
``torch.Generator().manual_seed(CLASS_SPLIT_SEED)``; its first 24 classes are "train", the next 8
"validation" and the last 8 "test". Validation and test classes are both held out from training
and disjoint from each other, so a family's "train" split never shows a held-out class.

Shapes: `DigitClasses.images` [C, S, 64] (C classes of the split, S = the largest class size,
zero-padded), `counts` [C]. `sample_episodes(E, n_way, k_shot, n_query, generator)` draws E
episodes at once: support x [E, N*K, 64], y [E, N*K]; query x [E, N*Q, 64], y [E, N*Q]; labels
0..N-1 assigned to the chosen classes in a random order per episode. `sample_sequences` draws
MANN episodes: x [E, T, 64], labels [E, T], presentation [E, T] (1 for the first image of its
class in the episode, 2 for the second, ...), T = N * per_class, in a random order.
"""

from __future__ import annotations

import functools
from functools import lru_cache

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int, check_split

NUM_DIGITS = 10
NUM_ROTATIONS = 4
NUM_CLASSES = NUM_DIGITS * NUM_ROTATIONS
IMAGE_SIDE = 8
NUM_FEATURES = IMAGE_SIDE * IMAGE_SIDE
CLASS_SPLIT_SEED = 0
SPLIT_SIZES: dict[str, int] = {"train": 24, "validation": 8, "test": 8}


@lru_cache(maxsize=1)
def _all_classes() -> tuple[Tensor, Tensor]:
    """images [40, S, 64] (zero-padded) and counts [40], pseudo-class c = digit + 10 * rotation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0  # [n, 8, 8]
    target = torch.as_tensor(digits.target, dtype=torch.long)
    counts = torch.bincount(target, minlength=NUM_DIGITS)
    size = int(counts.max())
    out = torch.zeros(NUM_CLASSES, size, NUM_FEATURES)
    for k in range(NUM_ROTATIONS):
        rotated = torch.rot90(images, k, dims=(1, 2)).reshape(-1, NUM_FEATURES)
        for digit in range(NUM_DIGITS):
            members = rotated[target == digit]
            out[digit + NUM_DIGITS * k, : members.shape[0]] = members
    return out, counts.repeat(NUM_ROTATIONS)


def split_classes(split: str) -> Tensor:
    """The pseudo-class ids [C] of `split` (train 24, validation 8, test 8; disjoint, fixed)."""
    check_split(split)
    order = torch.randperm(NUM_CLASSES, generator=torch.Generator().manual_seed(CLASS_SPLIT_SEED))
    start = 0
    for name, size in SPLIT_SIZES.items():
        if name == split:
            return order[start : start + size].sort().values
        start += size
    raise AssertionError("unreachable")


class DigitClasses:
    """The pseudo-classes of one split: images [C, S, 64], counts [C], class_ids [C]."""

    def __init__(self, split: str = "train") -> None:
        self.split = check_split(split)
        self.class_ids = split_classes(split)
        images, counts = _all_classes()
        self.images = images[self.class_ids]
        self.counts = counts[self.class_ids]

    @property
    def num_classes(self) -> int:
        return self.class_ids.shape[0]

    def _draw(self, n_episodes: int, n_way: int, per_class: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """images [E, N, per_class, 64] of n_way distinct classes per episode (random order) and
        their split-local class indices [E, N]; samples within a class are distinct."""
        check_positive_int("n_episodes", n_episodes)
        check_positive_int("n_way", n_way)
        check_positive_int("per_class", per_class)
        if n_way > self.num_classes:
            raise ValueError(f"n_way must be <= {self.num_classes} (classes in split {self.split!r}), got {n_way}")
        if per_class > int(self.counts.min()):
            raise ValueError(f"images per class must be <= {int(self.counts.min())}, got {per_class}")
        classes = torch.rand(n_episodes, self.num_classes, generator=generator).argsort(dim=1)[:, :n_way]
        size = self.images.shape[1]
        keys = torch.rand(n_episodes, n_way, size, generator=generator)
        valid = torch.arange(size) < self.counts[classes].unsqueeze(-1)  # [E, N, S]
        keys = torch.where(valid, keys, torch.full_like(keys, 2.0))
        samples = keys.argsort(dim=-1)[..., :per_class]  # [E, N, P]
        images = self.images[classes.unsqueeze(-1), samples]  # [E, N, P, 64]
        return images, classes

    def sample_episodes(
        self, n_episodes: int, n_way: int, k_shot: int, n_query: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """E N-way K-shot episodes: support x [E, N*K, 64], y [E, N*K]; query x [E, N*Q, 64], y [E, N*Q]."""
        check_positive_int("k_shot", k_shot)
        check_positive_int("n_query", n_query)
        images, _ = self._draw(n_episodes, n_way, k_shot + n_query, generator)
        labels = torch.arange(n_way).view(1, n_way, 1)
        support_x = images[:, :, :k_shot].reshape(n_episodes, n_way * k_shot, NUM_FEATURES)
        query_x = images[:, :, k_shot:].reshape(n_episodes, n_way * n_query, NUM_FEATURES)
        support_y = labels.expand(n_episodes, n_way, k_shot).reshape(n_episodes, -1).contiguous()
        query_y = labels.expand(n_episodes, n_way, n_query).reshape(n_episodes, -1).contiguous()
        return support_x, support_y, query_x, query_y

    def sample_sequences(
        self, n_episodes: int, n_way: int, per_class: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """E MANN episodes of T = N * per_class steps in random order: x [E, T, 64], labels [E, T],
        presentation [E, T] (k for the k-th image of its class within the episode)."""
        images, _ = self._draw(n_episodes, n_way, per_class, generator)
        steps = n_way * per_class
        x = images.reshape(n_episodes, steps, NUM_FEATURES)
        labels = torch.arange(n_way).repeat_interleave(per_class).expand(n_episodes, steps)
        order = torch.rand(n_episodes, steps, generator=generator).argsort(dim=1)
        x = x.gather(1, order.unsqueeze(-1).expand(-1, -1, NUM_FEATURES))
        labels = labels.gather(1, order)
        # presentation = 1 + the number of earlier steps with the same label
        same = labels.unsqueeze(2) == labels.unsqueeze(1)  # [E, T, T]
        earlier = torch.ones(steps, steps, dtype=torch.bool).tril(-1)
        presentation = (same & earlier).sum(dim=2) + 1
        return x, labels, presentation


@functools.cache
def digit_classes(split: str) -> DigitClasses:
    """The split's `DigitClasses`, built once per process."""
    return DigitClasses(split)
