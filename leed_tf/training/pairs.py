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
squared distance (``scipy.optimize.linear_sum_assignment``). On the
training set of the synthetic default with Table 3's 8x8 codes, 91 % of the
matches share the expression (58 % for nearest neighbours on the raw
displacements; docs/results.md). On the 16x16 codes of ``--code_stride=8
--patch_path``, which are close to a per-patch linear code of the pixels,
only 62 %: ``match_slots`` (every group matched to expression slots shared
by all groups) on ``image_displacements`` gets 91 % there (73 % on the
codes' displacements).
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
    d, members = _centred(displacements, groups)
    present = [g for g, m in enumerate(members) if len(m)]
    distance = _squared_distances(d, d)
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


def match_slots(displacements, groups, iterations: int = 10, starts: int = 4) -> np.ndarray:
    """Like ``match_expressions``, but every group is matched to shared
    expression slots instead of to every other group one by one.

    A data set that shows each group with the same set of expressions has one
    face per slot in each group. The slots are found without labels: start
    from one of the largest groups' centred displacements as the slots'
    prototypes; assign each group's faces to distinct slots with the least
    total squared distance (``linear_sum_assignment``); set each prototype to
    the mean of its faces over all groups; repeat ``iterations`` times. Of
    ``starts`` such runs (from different groups) the one whose faces lie
    closest to their prototypes wins. Faces of two groups match when they
    hold the same slot. A prototype averages over every group, so it is a far
    steadier target than any one other subject's face (docs/results.md).

    Returns:
      ``int32 [G, N]``, as ``match_expressions``: row ``g``, column ``j``
      holds the face of group ``g`` in ``j``'s slot, or ``NO_MATCH`` where
      group ``g`` has no face in it.
    """
    d, members = _centred(displacements, groups)
    d = d.astype(np.float64)
    present = sorted((m for m in members if len(m)), key=len, reverse=True)
    best = None
    for first in present[:starts]:
        if len(first) < len(present[0]):
            break
        prototypes, slots = d[first].copy(), np.zeros(len(d), np.int64)
        for _ in range(iterations):
            cost = 0.0
            for m in present:
                distance = _squared_distances(d[m], prototypes)
                r, c = linear_sum_assignment(distance)
                slots[m[r]] = c
                cost += distance[r, c].sum()
            for k in range(len(prototypes)):
                if np.any(slots == k):
                    prototypes[k] = d[slots == k].mean(axis=0)
        if best is None or cost < best[0]:
            best = (cost, slots.copy())
    slots = best[1]
    table = np.full((len(members), len(d)), NO_MATCH, np.int32)
    for g, m in enumerate(members):
        holder = np.full(len(present[0]), NO_MATCH, np.int32)
        holder[slots[m]] = m
        table[g] = holder[slots]
    return table


def image_displacements(images, neutrals, side: int = 32) -> np.ndarray:
    """``float32 [N, side, side, 3]``: ``images - neutrals`` (uint8 or float)
    area-averaged to ``side x side``, the expression's change at a scale that
    a few pixels of misalignment do not move."""
    images, neutrals = np.asarray(images, np.float32), np.asarray(neutrals, np.float32)
    size = images.shape[1]
    if images.shape != neutrals.shape or size % side or images.shape[2] != size:
        raise ValueError(f"image_displacements needs square images and neutral faces of one shape, "
                         f"a multiple of {side}; got {images.shape} and {neutrals.shape}.")
    k = size // side
    difference = (images - neutrals) / 255.0
    return difference.reshape(len(images), side, k, side, k, -1).mean(axis=(2, 4))


def _centred(displacements, groups) -> tuple[np.ndarray, list[np.ndarray]]:
    """Flattened ``displacements`` centred on their group's mean, and each
    group id's members; checks the inputs as ``match_expressions`` does."""
    d = np.asarray(displacements, np.float32).reshape(len(displacements), -1)
    groups = np.asarray(groups)
    if groups.shape != (len(d),):
        raise ValueError(f"groups must have one id per face ({len(d)}), got shape {groups.shape}.")
    if len(d) and (not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0):
        raise ValueError("groups must be non-negative integer ids.")
    if not np.all(np.isfinite(d)):
        raise ValueError("displacements hold NaN or infinite values; cannot match faces on them.")
    members = [np.flatnonzero(groups == g) for g in range(int(groups.max()) + 1 if len(d) else 0)]
    present = sum(1 for m in members if len(m))
    if present < 2:
        raise ValueError(f"matching faces across groups needs at least two groups, got {present}.")
    d = d.copy()
    for m in members:
        if len(m):
            d[m] -= d[m].mean(axis=0)
    return d, members


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` squared Euclidean distances between rows."""
    return (np.einsum("nd,nd->n", a, a)[:, None] + np.einsum("kd,kd->k", b, b)[None, :]
            - 2.0 * (a @ b.T))


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
