"""Digits pseudo-classes: shapes, seeds, the fixed class split, and no held-out class in training."""

import pytest
import torch

from tasks.digits_data import NUM_CLASSES, NUM_FEATURES, SPLIT_SIZES, DigitClasses, _all_classes, split_classes


def test_forty_pseudo_classes_are_rotations():
    images, counts = _all_classes()
    assert images.shape[0] == NUM_CLASSES and images.shape[2] == NUM_FEATURES
    assert counts.sum() == 4 * 1797
    # class 10 + d holds digit d rotated by 90 degrees
    first = images[3, 0].view(8, 8)
    assert torch.equal(images[13, 0].view(8, 8), torch.rot90(first, 1, dims=(0, 1)))
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0


def test_class_split_is_fixed_disjoint_and_complete():
    splits = {s: set(split_classes(s).tolist()) for s in SPLIT_SIZES}
    assert {s: len(c) for s, c in splits.items()} == SPLIT_SIZES
    assert splits["train"].isdisjoint(splits["validation"]) and splits["train"].isdisjoint(splits["test"])
    assert splits["validation"].isdisjoint(splits["test"])
    assert set().union(*splits.values()) == set(range(NUM_CLASSES))
    assert torch.equal(split_classes("test"), split_classes("test"))


def _pixels_to_class() -> dict[bytes, set[int]]:
    images, counts = _all_classes()
    table: dict[bytes, set[int]] = {}
    for c in range(NUM_CLASSES):
        for row in images[c, : counts[c]]:
            table.setdefault(row.numpy().tobytes(), set()).add(c)
    return table


def test_training_episodes_never_show_a_held_out_class():
    table = _pixels_to_class()
    train = set(split_classes("train").tolist())
    data = DigitClasses("train")
    sx, _, qx, _ = data.sample_episodes(64, 5, 2, 3, torch.Generator().manual_seed(0))
    seq, _, _ = data.sample_sequences(16, 5, 10, torch.Generator().manual_seed(1))
    for image in torch.cat([sx.flatten(0, 1), qx.flatten(0, 1), seq.flatten(0, 1)]):
        classes = table[image.numpy().tobytes()]
        # an image symmetric under rotation can belong to several classes; one of them must be a training class
        assert classes & train, f"training episode showed an image of held-out classes {classes}"


def test_episode_shapes_labels_and_seeds():
    data = DigitClasses("test")
    out = data.sample_episodes(3, 4, 2, 5, torch.Generator().manual_seed(7))
    sx, sy, qx, qy = out
    assert sx.shape == (3, 8, NUM_FEATURES) and sy.shape == (3, 8)
    assert qx.shape == (3, 20, NUM_FEATURES) and qy.shape == (3, 20)
    assert sorted(sy[0].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    again = data.sample_episodes(3, 4, 2, 5, torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True))
    other = data.sample_episodes(3, 4, 2, 5, torch.Generator().manual_seed(8))
    assert not torch.equal(sx, other[0])
    # support and query images of a class are distinct samples
    for e in range(3):
        support = {r.numpy().tobytes() for r in sx[e]}
        query = {r.numpy().tobytes() for r in qx[e]}
        assert len(support) == 8 and support.isdisjoint(query)


def test_sequences_presentation_counts_and_label_shuffle():
    data = DigitClasses("train")
    x, labels, presentation = data.sample_sequences(8, 5, 10, torch.Generator().manual_seed(0))
    assert x.shape == (8, 50, NUM_FEATURES) and labels.shape == presentation.shape == (8, 50)
    for e in range(8):
        for label in range(5):
            steps = (labels[e] == label).nonzero().flatten()
            assert presentation[e, steps].tolist() == list(range(1, 11))
    # the same class gets different labels in different episodes: the first images differ in order
    assert not torch.equal(labels[0], labels[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        DigitClasses("held-out")
    data = DigitClasses("validation")
    with pytest.raises(ValueError, match="n_way"):
        data.sample_episodes(1, 9, 1, 1, torch.Generator())
    with pytest.raises(ValueError, match="per class"):
        data.sample_episodes(1, 5, 100, 100, torch.Generator())
