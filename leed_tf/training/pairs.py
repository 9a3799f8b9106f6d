"""Label-free cross-subject pairs for LEED's matched-pair term.

Not in the paper: an addition of this implementation (``LeedConfig.lambda_pair``,
docs/results.md). The self-edit reconstruction, the one LEED loss with a
target, is satisfied exactly by feature arithmetic ``n_a + (z_b - n_b)``, so
on its own it cannot teach the editor how an expression looks on another
face. A data set that shows every subject with many expressions holds that
answer: the input's subject's own face with the reference's expression. Which
face that is can be found without expression labels, by matching the
subjects' faces one to one on their expression displacements.

For every pair of groups (a group is one subject, or one subject in one pose
and gaze), the displacements ``z - n`` are centred on their group's mean
(this removes most of what a subject's displacements share, the subject's
look) and the two groups' faces are matched one to one with the least total
squared distance (``scipy.optimize.linear_sum_assignment``). On the synthetic
default's training set 91 % of the matches share the expression (58 % for
nearest neighbours on the raw displacements; docs/results.md).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import linear_sum_assignment

NO_MATCH = -1


def match_expressions(displacements, groups, log_every: float = 30.0) -> np.ndarray:
    """For each group and each face, the group's face that shows the same expression.

    Args:
      displacements: ``[N, ...]`` expression displacements ``z - n`` of the faces.
      groups: ``[N]`` integer group ids (subjects, or subject x pose x gaze);
        at least two groups.
      log_every: Seconds between progress lines on long matchings.

    Returns:
      ``int32 [G, N]`` with ``G = groups.max() + 1``: row ``g``, column ``j``
      holds the face of group ``g`` matched to face ``j`` (``j`` itself when
      ``j`` is in ``g``), or ``NO_MATCH`` when group ``g`` has fewer faces
      than ``j``'s group and ``j`` was left over, or ``g`` has no face.
    """
    d = np.asarray(displacements, np.float32).reshape(len(displacements), -1)
    groups = np.asarray(groups)
    if groups.shape != (len(d),):
        raise ValueError(f"groups must have one id per face ({len(d)}), got shape {groups.shape}.")
    if len(d) and (not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0):
        raise ValueError("groups must be non-negative integer ids.")
    if not np.all(np.isfinite(d)):
        raise ValueError("displacements hold NaN or infinite values; cannot match faces on them.")
    members = [np.flatnonzero(groups == g) for g in range(int(groups.max()) + 1 if len(d) else 0)]
    present = [g for g, m in enumerate(members) if len(m)]
    if len(present) < 2:
        raise ValueError(f"matching faces across groups needs at least two groups, got {len(present)}.")
    d = d.copy()
    for m in members:
        if len(m):
            d[m] -= d[m].mean(axis=0)
    squared = np.einsum("nd,nd->n", d, d)
    distance = squared[:, None] + squared[None, :] - 2.0 * (d @ d.T)
    table = np.full((len(members), len(d)), NO_MATCH, np.int32)
    start = last_log = time.time()
    for count, g in enumerate(present):
        rows = members[g]
        table[g, rows] = rows
        for h in present:
            if h != g:
                columns = members[h]
                r, c = linear_sum_assignment(distance[np.ix_(rows, columns)])
                table[g, columns[c]] = rows[r]
        if time.time() - last_log > log_every:
            last_log = time.time()
            print(f"  matched {count + 1} of {len(present)} groups ({last_log - start:.0f} s)", flush=True)
    return table


def group_ids(*labels) -> np.ndarray:
    """``int32 [N]`` ids of the distinct combinations of per-face ``labels``
    (e.g. subjects, poses and gazes), numbered from 0."""
    if not labels:
        raise ValueError("group_ids needs at least one label array.")
    columns = [np.unique(np.asarray(x).astype(str), return_inverse=True)[1].reshape(-1) for x in labels]
    return np.unique(np.stack(columns, 1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int32)


def match_precision(table: np.ndarray, groups, expressions) -> float:
    """The fraction of cross-group matches that share the expression label
    (a diagnostic where labels exist; training never reads them)."""
    groups, expressions = np.asarray(groups), np.asarray(expressions)
    g, j = np.nonzero(table >= 0)
    cross = groups[j] != g
    matched = table[g[cross], j[cross]]
    return float(np.mean(expressions[matched] == expressions[j[cross]])) if len(matched) else float("nan")
