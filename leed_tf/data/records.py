"""What every data source produces: per-image records and decoded face sets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

# RaFD's eight expressions, alphabetical as in its file names; the synthetic
# faces use the same list. ``NEUTRAL`` is the neutralizer's target domain.
RAFD_EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy",
                    "neutral", "sad", "surprised")
NEUTRAL = "neutral"


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
