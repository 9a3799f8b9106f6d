"""What every data source produces: per-image records and decoded face sets."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

# RaFD's eight expressions, alphabetical as in its file names; the synthetic
# faces use the same list. ``NEUTRAL`` is the neutralizer's target domain.
RAFD_EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy",
                    "neutral", "sad", "surprised")
NEUTRAL = "neutral"

# Geometry of faces in their stored images: a face box is
# ``(top, left, bottom, right)`` in pixels.
Box = tuple[int, int, int, int]
# RaFD's portraits are 681 x 1024 (width x height); StarGAN's preprocessing
# crops the 621 x 621 face box of rows 90-711, columns 30-651.
RAFD_WIDTH, RAFD_HEIGHT = 681, 1024
RAFD_BOX: Box = (90, 30, 711, 651)


def face_box(dataset: str) -> Box | None:
    """The face box of a data set's images, or None for the centred square
    (docs/design.md section 4)."""
    return RAFD_BOX if dataset == "rafd" else None


@dataclass(frozen=True)
class Record:
    """One labelled image file.

    Attributes:
      path: Image file path.
      subject: Subject (identity) name, e.g. ``"01"``.
      expression: Expression name, e.g. ``"happy"``; ``""`` when unknown.
      pose: Head yaw in degrees (0 = frontal).
      gaze: Gaze direction (``"frontal"``, ``"left"``, ``"right"``).
    """

    path: str
    subject: str
    expression: str = ""
    pose: float = 0.0
    gaze: str = "frontal"


@dataclass
class FaceSet:
    """Decoded, cropped and resized faces with their labels, all in memory.

    Attributes:
      images: ``uint8 [N, S, S, 3]`` RGB faces.
      subjects: ``int32 [N]`` indices into ``subject_names``.
      expressions: ``int32 [N]`` indices into ``expression_names`` (-1 unknown).
      poses: ``float32 [N]`` yaw in degrees.
      gazes: ``N`` gaze names.
      paths: ``N`` source paths (empty strings for rendered faces).
      subject_names: Subject names.
      expression_names: Expression names; includes ``"neutral"`` when known.
      extras: Source-specific arrays aligned with the images (e.g. the
        synthetic faces' ``identity`` parameters and ``intensity``).
    """

    images: np.ndarray
    subjects: np.ndarray
    expressions: np.ndarray
    poses: np.ndarray
    gazes: list[str]
    paths: list[str]
    subject_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "FaceSet":
        """The faces at ``indices``, keeping every name table."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self, images=self.images[indices], subjects=self.subjects[indices],
            expressions=self.expressions[indices], poses=self.poses[indices],
            gazes=[self.gazes[i] for i in indices], paths=[self.paths[i] for i in indices],
            extras={k: v[indices] for k, v in self.extras.items()})

    def neutral_indices(self) -> np.ndarray:
        """For each face, the index of the same subject's neutral face with the
        same pose and gaze (falling back to the same pose, then any pose);
        -1 where the subject has no neutral face."""
        if NEUTRAL not in self.expression_names:
            return np.full(len(self), -1, np.int64)
        neutral_id = self.expression_names.index(NEUTRAL)
        exact, same_pose, any_pose = {}, {}, {}
        for i in np.flatnonzero(self.expressions == neutral_id):
            s, p, g = int(self.subjects[i]), float(self.poses[i]), self.gazes[i]
            exact.setdefault((s, p, g), i)
            same_pose.setdefault((s, p), i)
            any_pose.setdefault(s, i)
        out = np.full(len(self), -1, np.int64)
        for i in range(len(self)):
            s, p, g = int(self.subjects[i]), float(self.poses[i]), self.gazes[i]
            out[i] = exact.get((s, p, g), same_pose.get((s, p), any_pose.get(s, -1)))
        return out


def _subject_rank(subject: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\0{subject}".encode()).digest()


def split_by_subject(records_or_subjects: Iterable, test_fraction: float = 0.1,
                     seed: int = 0) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Splits subjects into disjoint train and test sets.

    Subjects are ranked by a seeded hash of their name and the first
    ``round(n * test_fraction)`` go to test, so the split depends only on the
    set of subjects and the seed (never on record order) and a subject keeps
    its side when others are added, unless the test count itself changes.

    Args:
      records_or_subjects: ``Record``s or subject names (repeats are fine).
      test_fraction: Fraction of subjects held out, in [0, 1). Above 0, each
        side gets at least one subject when there are at least two.
      seed: Seed of the ranking.

    Returns:
      ``(train_subjects, test_subjects)``, each sorted.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    subjects = sorted({r.subject if isinstance(r, Record) else str(r) for r in records_or_subjects})
    num_test = int(round(len(subjects) * test_fraction))
    if test_fraction > 0 and len(subjects) >= 2:
        num_test = min(max(num_test, 1), len(subjects) - 1)
    ranked = sorted(subjects, key=lambda s: _subject_rank(s, seed))
    test = set(ranked[:num_test])
    return (tuple(s for s in subjects if s not in test), tuple(s for s in subjects if s in test))
