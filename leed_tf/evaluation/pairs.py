"""Which edits are evaluated, how they are run in batches, and how per-pair
values become overall and per-group means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from leed_tf.data.records import NEUTRAL, FaceSet
from leed_tf.evaluation.methods import EditMethods
from leed_tf.evaluation.metrics import summarize


@dataclass
class Pairs:
    """Input/reference index pairs into one face set.

    Attributes:
      inputs: ``int [P]`` input faces.
      references: ``int [P]`` reference faces (another subject, the target expression).
      targets: ``int [P]`` target expression = the reference's expression.
    """

    inputs: np.ndarray
    references: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, positions) -> "Pairs":
        return Pairs(self.inputs[positions], self.references[positions], self.targets[positions])


def edit_pairs(face_set: FaceSet, seed: int = 0, max_pairs: int | None = None) -> Pairs:
    """Every labelled face edited towards every *other* expression.

    Each pair's reference shows the target expression on another subject,
    drawn at random (seeded) among that subject's faces of any pose, so
    every pair asks for a real edit across identities. Pairs without such
    a reference are left out.

    Args:
      face_set: The held-out faces.
      seed: Seed of the reference draw and of the subsample.
      max_pairs: Keep this many pairs at most (a seeded uniform subsample,
        in their original order).

    Raises:
      ValueError: fewer than two subjects (the reference must be another one).
    """
    if len(np.unique(face_set.subjects)) < 2:
        raise ValueError(f"Evaluation needs at least 2 held-out subjects (the reference is another "
                         f"person than the input), got {len(np.unique(face_set.subjects))}; hold out "
                         f"more (e.g. more --synthetic_subjects or a larger test_fraction).")
    rng = np.random.default_rng(seed)
    labels = np.flatnonzero(face_set.expressions >= 0)
    by_expression = {e: labels[face_set.expressions[labels] == e] for e in np.unique(face_set.expressions[labels])}
    inputs, references, targets = [], [], []
    for index in labels:
        for target, members in by_expression.items():
            if target == face_set.expressions[index]:
                continue
            candidates = members[face_set.subjects[members] != face_set.subjects[index]]
            if len(candidates):
                inputs.append(index)
                references.append(rng.choice(candidates))
                targets.append(target)
    pairs = Pairs(np.asarray(inputs, np.int64), np.asarray(references, np.int64), np.asarray(targets, np.int64))
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = pairs.subset(np.sort(rng.choice(len(pairs), max_pairs, replace=False)))
    return pairs


def iterate_edits(methods: EditMethods, face_set: FaceSet, neutrals: np.ndarray, pairs: Pairs,
                  batch_size: int = 32, truths: np.ndarray | None = None
                  ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """Yields ``(positions, edits)`` per batch of pairs: a slice into
    ``pairs`` and method name -> ``float32 [B, S, S, 3]`` edits in [-1, 1].

    A short last batch is padded (and the padding dropped) so every batch
    has one shape and the methods' graphs are traced once. ``truths`` (``[P,
    S, S, 3]``, the pairs' ground truths) go to the methods that need them.
    """
    for start in range(0, len(pairs), batch_size):
        batch = slice(start, min(start + batch_size, len(pairs)))
        count = batch.stop - batch.start
        padded = np.minimum(np.arange(start, start + batch_size), batch.stop - 1)
        inputs, references = pairs.inputs[padded], pairs.references[padded]
        edits = methods(face_set.images[inputs], neutrals[inputs], face_set.images[references],
                        neutrals[references], pairs.targets[padded],
                        None if truths is None else truths[padded])
        yield batch, {name: images[:count] for name, images in edits.items()}


def grouped(per_pair: dict[str, np.ndarray], keys: np.ndarray, names: dict) -> dict[str, dict]:
    """``summarize`` of the pairs of each group, in ``names`` order.

    Args:
      per_pair: Metric name -> ``[P]`` values.
      keys: ``[P]`` group of each pair.
      names: Group key -> name used in the output.
    """
    return {name: summarize({k: np.asarray(v)[keys == key] for k, v in per_pair.items()})
            for key, name in names.items() if np.any(keys == key)}


def pose_names(poses) -> dict:
    """Yaw -> its label (``"-45"``, ``"0"``, ...), in increasing order."""
    return {p: f"{p:g}" for p in sorted(set(float(p) for p in poses))}


def expressive_targets(face_set: FaceSet, pairs: Pairs) -> np.ndarray:
    """``bool [P]``: the pairs whose target expression is not neutral."""
    names = np.asarray(face_set.expression_names, object)
    return names[pairs.targets] != NEUTRAL


def breakdowns(per_pair: dict[str, np.ndarray], face_set: FaceSet, pairs: Pairs,
               expressive_only: bool = False) -> dict:
    """Overall, per-target-expression and per-input-pose means, and the
    overall means of the pairs whose target is not neutral
    (``expressive_targets``).

    Args:
      per_pair: Metric name -> ``[P]`` values.
      face_set, pairs: The faces and the pairs the values belong to.
      expressive_only: Leave the pairs towards neutral out of every mean
        (methods anchored at the input's neutral face, for which such an
        edit is that face itself).
    """
    expressive = expressive_targets(face_set, pairs)
    if expressive_only:
        per_pair = {k: np.asarray(v)[expressive] for k, v in per_pair.items()}
        pairs, expressive = pairs.subset(expressive), np.ones(int(expressive.sum()), bool)
    return {"overall": summarize(per_pair),
            "expressive_targets": summarize({k: np.asarray(v)[expressive] for k, v in per_pair.items()}),
            "per_expression": grouped(per_pair, pairs.targets, dict(enumerate(face_set.expression_names))),
            "per_pose": grouped(per_pair, face_set.poses[pairs.inputs].astype(float),
                                pose_names(face_set.poses[pairs.inputs]))}
