"""What an evaluation returns besides numbers: example images for the figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from leed_tf.data.images import to_uint8
from leed_tf.data.records import NEUTRAL, FaceSet
from leed_tf.evaluation.methods import EditMethods, RunNetworks
from leed_tf.evaluation.pairs import Pairs, iterate_edits

# Rows of the inputs x expressions figure (Fig. 3).
GRID_ROWS = 4


@dataclass
class Examples:
    """Images for the figures, ``uint8``.

    Attributes:
      inputs, references: ``[K, S, S, 3]`` of K example pairs.
      truths: Their ground truth ``[K, S, S, 3]``, or None (real data).
      edits: Method name -> ``[K, S, S, 3]``.
      grid_inputs: ``[R, S, S, 3]`` neutral faces of R held-out subjects.
      grid_edits: ``[R, E, S, S, 3]`` LEED edits of them to each expression.
      grid_truths: ``[R, E, S, S, 3]`` their ground truth, or None.
      grid_expressions: The E expression names.
      grid_names: The R subject names.
    """

    inputs: np.ndarray
    references: np.ndarray
    truths: np.ndarray | None
    edits: dict
    grid_inputs: np.ndarray | None = None
    grid_edits: np.ndarray | None = None
    grid_truths: np.ndarray | None = None
    grid_expressions: tuple = ()
    grid_names: tuple = ()


@dataclass
class Evaluation:
    """``metrics`` (JSON-ready) and ``examples`` (images for the figures)."""

    metrics: dict
    examples: Examples


class ExampleCollector:
    """Keeps the edits of a few chosen pairs while batches stream past.

    Args:
      pairs: All evaluated pairs.
      count: How many to keep: one per target expression in turn, drawn at
        random (seeded) among that expression's pairs.
      seed: Seed of the draw.
    """

    def __init__(self, pairs: Pairs, count: int, seed: int):
        rng = np.random.default_rng(seed + 1)
        targets = np.unique(pairs.targets)
        chosen = []
        for k in range(min(count, len(pairs))):
            options = np.setdiff1d(np.flatnonzero(pairs.targets == targets[k % len(targets)]), chosen)
            if len(options):
                chosen.append(int(rng.choice(options)))
        self.positions = np.sort(np.asarray(chosen, np.int64))
        self.edits: dict[str, list] = {}

    def add(self, positions: slice, edits: dict[str, np.ndarray]) -> None:
        """Keeps the chosen pairs of one batch (``positions`` into the pairs)."""
        inside = self.positions[(self.positions >= positions.start) & (self.positions < positions.stop)]
        for name, images in edits.items():
            self.edits.setdefault(name, []).extend(to_uint8(images[inside - positions.start]))

    def examples(self, faces: FaceSet, pairs: Pairs, truths: np.ndarray | None) -> Examples:
        chosen = self.positions
        return Examples(faces.images[pairs.inputs[chosen]], faces.images[pairs.references[chosen]],
                        None if truths is None else truths[chosen],
                        {name: np.asarray(images) for name, images in self.edits.items()})


def add_expression_grid(examples: Examples, run: RunNetworks, faces: FaceSet, neutrals: np.ndarray,
                        seed: int, truth_fn: Callable[[FaceSet, Pairs], np.ndarray] | None = None,
                        batch_size: int = 32) -> None:
    """Fig. 3's data: neutral faces of a few held-out subjects (at the pose
    nearest frontal) edited by LEED to every other expression, each with a
    reference of another subject; ``truth_fn(faces, pairs)`` gives their
    ground truth where there is one. Nothing is added without neutral faces."""
    if NEUTRAL not in faces.expression_names:
        return
    neutral = faces.expression_names.index(NEUTRAL)
    pose = faces.poses[np.argmin(np.abs(faces.poses))]
    rows = [np.flatnonzero((faces.subjects == s) & (faces.expressions == neutral) & (faces.poses == pose))
            for s in range(len(faces.subject_names))]
    rows = [r[0] for r in rows if len(r)][:GRID_ROWS]
    columns = [e for e in range(len(faces.expression_names))
               if e != neutral and np.any(faces.expressions == e)]
    rng = np.random.default_rng(seed + 2)
    inputs, references = [], []
    for row in rows:
        for e in columns:
            options = np.flatnonzero((faces.expressions == e) & (faces.subjects != faces.subjects[row]))
            if not len(options):
                return
            inputs.append(row)
            references.append(rng.choice(options))
    if not inputs:
        return
    pairs = Pairs(np.asarray(inputs), np.asarray(references), faces.expressions[references])
    leed = EditMethods(run, len(faces.expression_names), methods=("leed",))
    edits = np.concatenate([to_uint8(e["leed"]) for _, e in iterate_edits(leed, faces, neutrals, pairs,
                                                                                     batch_size)])
    shape = (len(rows), len(columns)) + faces.images.shape[1:]
    examples.grid_inputs = faces.images[rows]
    examples.grid_edits = edits.reshape(shape)
    examples.grid_truths = None if truth_fn is None else truth_fn(faces, pairs).reshape(shape)
    examples.grid_expressions = tuple(faces.expression_names[e] for e in columns)
    examples.grid_names = tuple(faces.subject_names[faces.subjects[r]] for r in rows)
