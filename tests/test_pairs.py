"""Label-free matching of expressions across subjects (training.pairs)."""

import numpy as np
import pytest

from leed_tf.training import pairs


def displacements(subjects=6, expressions=5, dim=32, seed=0, drop=()):
    """``d = scale_s * X_e + offset_s + noise``: each subject shows every
    expression (0 = neutral, a zero displacement) in its own way, shuffled."""
    rng = np.random.default_rng(seed)
    shapes = np.concatenate([np.zeros((1, dim)), rng.normal(size=(expressions - 1, dim))])
    rows, groups, labels = [], [], []
    for s in range(subjects):
        offset, scale = rng.normal(scale=4.0, size=dim), rng.uniform(0.7, 1.3)
        for e in range(expressions):
            if (s, e) not in drop:
                rows.append(scale * shapes[e] + offset + rng.normal(scale=0.05, size=dim))
                groups.append(s)
                labels.append(e)
    order = rng.permutation(len(rows))
    return np.asarray(rows)[order], np.asarray(groups)[order], np.asarray(labels)[order]


def test_matching_recovers_the_expressions_that_plain_neighbours_miss():
    d, groups, labels = displacements()
    table = pairs.match_expressions(d.reshape(len(d), 4, 8), groups)
    assert table.shape == (6, len(d)) and table.dtype == np.int32
    assert pairs.match_precision(table, groups, labels) == 1.0
    for j in range(len(d)):
        assert table[groups[j], j] == j                # a face's own group: the face itself
        assert np.all(groups[table[:, j]] == np.arange(6))  # each row names a face of that group
    # The subjects' own offsets defeat nearest neighbours on raw displacements.
    distance = ((d[:, None] - d[None]) ** 2).sum(-1)
    hits = [labels[np.flatnonzero(groups == g)[distance[groups == g, j].argmin()]] == labels[j]
            for j in range(len(d)) for g in range(6) if g != groups[j]]
    assert np.mean(hits) < 0.5


def test_a_group_with_fewer_faces_leaves_faces_unmatched():
    d, groups, labels = displacements(drop={(2, 3)})
    table = pairs.match_expressions(d, groups)
    short = table[2]
    for h in (0, 1, 3, 4, 5):
        assert np.sum(short[groups == h] == pairs.NO_MATCH) == 1
    assert np.all(table[[0, 1, 3, 4, 5]] >= 0)
    assert pairs.match_precision(table, groups, labels) == 1.0


def test_refusals():
    d, groups, _ = displacements(subjects=2)
    with pytest.raises(ValueError, match="at least two groups"):
        pairs.match_expressions(d, np.zeros(len(d), int))
    with pytest.raises(ValueError, match="one id per face"):
        pairs.match_expressions(d, groups[:-1])
    bad = d.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pairs.match_expressions(bad, groups)
    with pytest.raises(ValueError, match="non-negative integer"):
        pairs.match_expressions(d, groups - 1)


def test_group_ids_number_each_combination():
    ids = pairs.group_ids([1, 1, 2, 2, 1], [0.0, 45.0, 0.0, 0.0, 0.0], ["f", "f", "f", "l", "f"])
    assert ids.dtype == np.int32 and ids.min() == 0
    assert ids[0] == ids[4] and len(set(ids.tolist())) == 4
    with pytest.raises(ValueError):
        pairs.group_ids()


def test_slots_match_noisy_expressions_better_than_pairwise_matching():
    precision = {"slots": [], "pairwise": []}
    for seed in (1, 2, 3):
        d, groups, labels = displacements(subjects=40, expressions=6, dim=8, seed=seed)
        d = d + np.random.default_rng(seed + 1).normal(scale=0.7, size=d.shape)  # each face's quirks
        slots = pairs.match_slots(d, groups)
        assert slots.shape == (40, len(d)) and slots.dtype == np.int32
        for j in range(len(d)):
            assert slots[groups[j], j] == j
            assert np.all(groups[slots[:, j]] == np.arange(40))
        precision["slots"].append(pairs.match_precision(slots, groups, labels))
        precision["pairwise"].append(pairs.match_precision(pairs.match_expressions(d, groups), groups, labels))
    assert all(s > p for s, p in zip(precision["slots"], precision["pairwise"]))
    assert np.mean(precision["slots"]) > np.mean(precision["pairwise"]) + 0.08


def test_slots_leave_faces_of_a_slot_a_group_lacks_unmatched():
    d, groups, labels = displacements(drop={(2, 3)})
    table = pairs.match_slots(d, groups)
    assert np.sum(table[2] == pairs.NO_MATCH) == 5  # expression 3's faces of the other five groups
    assert np.all(labels[table[2] == pairs.NO_MATCH] == 3)
    assert np.all(table[[0, 1, 3, 4, 5]] >= 0)
    assert pairs.match_precision(table, groups, labels) == 1.0
    with pytest.raises(ValueError, match="at least two groups"):
        pairs.match_slots(d, np.zeros(len(d), int))


def test_image_displacements_average_the_change_over_cells():
    images = np.zeros((2, 64, 64, 3), np.uint8)
    images[0, :2, :2] = 255  # one cell of 2x2 pixels at 32x32
    images[1, :, :, 1] = 51
    d = pairs.image_displacements(images, np.zeros_like(images))
    assert d.shape == (2, 32, 32, 3) and d.dtype == np.float32
    np.testing.assert_allclose(d[0, 0, 0], 1.0)
    assert np.count_nonzero(d[0]) == 3
    np.testing.assert_allclose(d[1, ..., 1], 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 32"):
        pairs.image_displacements(images[:, :48, :48], np.zeros((2, 48, 48, 3)))
