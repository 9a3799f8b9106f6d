"""One entry point for every data source: train/validation face sets and the
fixed validation pairs (with ground truth on synthetic data)."""

from __future__ import annotations

import numpy as np

from leed_tf.config import DataConfig
from leed_tf.data.records import FaceSet


def load_splits(data: DataConfig, image_size: int = 128, cache_dir: str | None = None
                ) -> tuple[FaceSet, FaceSet]:
    """Returns the (train, validation) face sets, subject-disjoint.

    Synthetic identities are rendered: the last ``test_fraction`` of the
    ``synthetic_subjects`` identities are held out. Real data sets are read
    from ``data.data_dir`` and split by subject with ``data.split_seed``.
    """
    if data.dataset == "synthetic":
        from leed_tf.data import synthetic

        held_out = max(1, int(round(data.synthetic_subjects * data.test_fraction)))
        train_subjects = data.synthetic_subjects - held_out
        if train_subjects < 2:
            raise ValueError(f"synthetic_subjects={data.synthetic_subjects} leaves {train_subjects} "
                             f"training identities; use at least 3.")
        common = dict(seed=data.synthetic_seed, poses=data.synthetic_poses,
                      intensities=data.synthetic_intensities, size=image_size)
        return (synthetic.render_face_set(train_subjects, **common),
                synthetic.render_face_set(held_out, first_subject=train_subjects, **common))

    from leed_tf.data import loaders

    if not data.data_dir:
        raise ValueError(f"--data_dir is required for dataset {data.dataset!r}.")
    common = dict(size=image_size, test_fraction=data.test_fraction, seed=data.split_seed,
                  cache_dir=cache_dir, require_neutral=data.neutral_source == "dataset")
    return (loaders.load_face_set(data.dataset, data.data_dir, split="train", **common),
            loaders.load_face_set(data.dataset, data.data_dir, split="test", **common))


def real_neutrals(face_set: FaceSet) -> np.ndarray:
    """Each face's real neutral photo (same subject, pose and gaze).

    Raises:
      ValueError: naming the subjects that have no neutral photo.
    """
    indices = face_set.neutral_indices()
    missing = sorted({face_set.subject_names[s] for s in face_set.subjects[indices < 0]})
    if missing:
        raise ValueError(
            f"neutral_source=dataset needs a neutral photo of every subject, but "
            f"{len(missing)} subject(s) have none: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}. Use --neutral_source=stargan instead.")
    return face_set.images[indices]


def validation_pairs(face_set: FaceSet, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (input, reference) index pairs: each reference shows another
    subject and, where labels are known, another expression, so every pair
    asks for a real edit."""
    rng = np.random.default_rng(seed)
    inputs = rng.choice(len(face_set), size=count, replace=count > len(face_set))
    references = np.empty_like(inputs)
    for i, index in enumerate(inputs):
        other = face_set.subjects != face_set.subjects[index]
        if face_set.expressions[index] >= 0:
            other &= face_set.expressions != face_set.expressions[index]
        candidates = np.flatnonzero(other)
        references[i] = rng.choice(candidates) if len(candidates) else rng.integers(len(face_set))
    return inputs, references


def ground_truth(face_set: FaceSet, inputs: np.ndarray, references: np.ndarray) -> np.ndarray | None:
    """``render(identity_input, expression_reference, pose_input)`` on synthetic
    faces; None when the face set has no identity parameters."""
    if "identity" not in face_set.extras:
        return None
    from leed_tf.data import synthetic

    return synthetic.render_ground_truth(
        face_set.extras["identity"][inputs], face_set.expressions[references],
        face_set.extras["intensity"][references], face_set.poses[inputs],
        size=face_set.images.shape[1])
