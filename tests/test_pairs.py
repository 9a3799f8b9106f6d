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
