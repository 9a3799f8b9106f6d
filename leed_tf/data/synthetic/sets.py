"""Sets of synthetic faces: in memory (:func:`render_face_set`,
:func:`render_ground_truth`, :func:`expression_sheet`) and on disk as a
RaFD-like or folder data set (:func:`write_dataset` and its RaFD naming and
canvas helpers). RaFD's portrait geometry comes from
:mod:`leed_tf.data.records`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from leed_tf.data.records import RAFD_BOX, RAFD_HEIGHT, RAFD_WIDTH, FaceSet
from leed_tf.data.sheets import contact_sheet
from leed_tf.data.synthetic.face import render
from leed_tf.data.synthetic.identity import (EXPRESSIONS, IDENTITY_DIM, NEUTRAL_INDEX, Identity,
                                             expression_index, make_identities)

RAFD_ETHNICITIES = ("Caucasian", "Moroccan", "Kid")
RAFD_GENDERS = ("male", "female")


def render_face_set(num_subjects: int, seed: int = 0,
                    poses: Sequence[float] = (-45.0, 0.0, 45.0),
                    intensities: Sequence[float] = (1.0,),
                    expressions: Sequence[str] = EXPRESSIONS, size: int = 128,
                    first_subject: int = 0) -> FaceSet:
    """Every subject x expression x pose x intensity, in that nesting order.

    Neutral has no intensity, so it is rendered once per pose (with intensity
    0 in ``extras["intensity"]``).

    Args:
      num_subjects: Number of identities.
      seed: Population seed (see :func:`make_identities`).
      poses: Yaw angles in degrees.
      intensities: Expression intensities.
      expressions: Expression names (subset of ``EXPRESSIONS``).
      size: Image side.
      first_subject: Index of the first identity, e.g. to render held-out
        subjects that a smaller training set does not contain.

    Returns:
      A :class:`FaceSet` with ``expression_names == EXPRESSIONS`` and extras
      ``identity`` (``float32 [N, IDENTITY_DIM]``) and ``intensity``
      (``float32 [N]``).
    """
    identities = make_identities(num_subjects, seed, first_subject)
    names = tuple(f"s{first_subject + k:03d}" for k in range(num_subjects))
    images, subjects, exprs, pose_list, vecs, strengths = [], [], [], [], [], []
    for k, identity in enumerate(identities):
        vector = identity.to_vector()
        for expression in expressions:
            e = expression_index(expression)
            levels = (0.0,) if e == NEUTRAL_INDEX else tuple(intensities)
            for pose in poses:
                for level in levels:
                    images.append(render(identity, e, level, pose, size))
                    subjects.append(k)
                    exprs.append(e)
                    pose_list.append(pose)
                    vecs.append(vector)
                    strengths.append(level)
    n = len(images)
    return FaceSet(
        images=np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        subjects=np.asarray(subjects, np.int32),
        expressions=np.asarray(exprs, np.int32),
        poses=np.asarray(pose_list, np.float32),
        gazes=["frontal"] * n,
        paths=[""] * n,
        subject_names=names,
        expression_names=tuple(EXPRESSIONS),
        extras={"identity": np.asarray(vecs, np.float32).reshape(n, IDENTITY_DIM),
                "intensity": np.asarray(strengths, np.float32)})


def render_ground_truth(identity_vectors, expressions, intensities, poses,
                        size: int = 128) -> np.ndarray:
    """Renders ``[N]`` faces from identity vectors, e.g. the targets of edits.

    Args:
      identity_vectors: ``[N, IDENTITY_DIM]`` from :meth:`Identity.to_vector`.
      expressions: ``[N]`` expression indices.
      intensities: ``[N]`` expression intensities.
      poses: ``[N]`` yaw angles in degrees.
      size: Image side.

    Returns:
      ``uint8 [N, size, size, 3]``.
    """
    vectors = np.asarray(identity_vectors, np.float32).reshape(-1, IDENTITY_DIM)
    expressions = np.asarray(expressions).reshape(-1)
    intensities = np.broadcast_to(np.asarray(intensities, np.float32), expressions.shape)
    poses = np.broadcast_to(np.asarray(poses, np.float32), expressions.shape)
    out = np.zeros((len(vectors), size, size, 3), np.uint8)
    for n, vector in enumerate(vectors):
        out[n] = render(Identity.from_vector(vector), int(expressions[n]), float(intensities[n]),
                        float(poses[n]), size)
    return out


# --------------------------------------------------------------------------
# Writing to disk.


def rafd_angle_code(pose: float) -> str:
    """RaFD's camera-angle code of a yaw: -90/-45/0/45/90 -> 000/045/090/135/180."""
    code = 90 + int(round(pose))
    if code not in (0, 45, 90, 135, 180):
        raise ValueError(f"RaFD has poses -90, -45, 0, 45 and 90 only, got {pose}.")
    return f"{code:03d}"


def rafd_demographics(seed: int, subject: int) -> tuple[str, str]:
    """Deterministic (ethnicity, gender) of a synthetic subject for RaFD names."""
    rng = np.random.default_rng([seed, subject, 0x2AFD])
    return (RAFD_ETHNICITIES[int(rng.integers(len(RAFD_ETHNICITIES)))],
            RAFD_GENDERS[int(rng.integers(len(RAFD_GENDERS)))])


def to_rafd_canvas(face: np.ndarray, background) -> np.ndarray:
    """Places a square render in a 681x1024 RaFD-like portrait.

    The render is upscaled (bicubic) into RaFD's face box so that cropping the
    box and resizing gives the render back.
    """
    from PIL import Image

    top, left, bottom, right = RAFD_BOX
    side = bottom - top  # 621: the box is square, side == right - left
    canvas = np.empty((RAFD_HEIGHT, RAFD_WIDTH, 3), np.uint8)
    canvas[:] = np.clip(np.asarray(background) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    big = Image.fromarray(face).resize((side, side), Image.BICUBIC)
    canvas[top:top + side, left:left + side] = np.asarray(big)
    return canvas


def write_dataset(out_dir: str, fmt: str = "rafd", num_subjects: int = 10, seed: int = 0,
                  poses: Sequence[float] = (-45.0, 0.0, 45.0),
                  expressions: Sequence[str] = EXPRESSIONS, intensity: float = 1.0,
                  first_subject: int = 0, size: int = 128, quality: int = 95,
                  progress=None) -> list[str]:
    """Writes synthetic faces as image files.

    Args:
      out_dir: Destination folder (created).
      fmt: ``"rafd"``: RaFD's file names and 681x1024 JPEG geometry,
        ``Rafd{angle}_{subject:02d}_{ethnicity}_{gender}_{expression}_frontal.jpg``
        with subjects numbered from 1; ``"folder"``:
        ``<expression>/<subject>_<pose>.png`` at ``size``.
      num_subjects: Number of identities.
      seed: Population seed.
      poses: Yaw angles in degrees.
      expressions: Expression names.
      intensity: Intensity of the non-neutral expressions.
      first_subject: Index of the first identity.
      size: Render side (the ``folder`` image size).
      quality: JPEG quality of ``rafd`` files.
      progress: Optional ``callable(done, total)``.

    Returns:
      The written paths, in writing order.
    """
    from PIL import Image

    if fmt not in ("rafd", "folder"):
        raise ValueError(f"fmt must be 'rafd' or 'folder', got {fmt!r}.")
    identities = make_identities(num_subjects, seed, first_subject)
    total = num_subjects * len(expressions) * len(poses)
    paths, done = [], 0
    os.makedirs(out_dir, exist_ok=True)
    for k, identity in enumerate(identities):
        index = first_subject + k
        ethnicity, gender = rafd_demographics(seed, index)
        for expression in expressions:
            e = expression_index(expression)
            for pose in poses:
                face = render(identity, e, intensity, pose, size)
                if fmt == "rafd":
                    name = (f"Rafd{rafd_angle_code(pose)}_{index + 1:02d}_{ethnicity}_{gender}_"
                            f"{EXPRESSIONS[e]}_frontal.jpg")
                    path = os.path.join(out_dir, name)
                    Image.fromarray(to_rafd_canvas(face, identity.background)).save(path, quality=quality)
                else:
                    folder = os.path.join(out_dir, EXPRESSIONS[e])
                    os.makedirs(folder, exist_ok=True)
                    path = os.path.join(folder, f"s{index:03d}_{pose:g}.png")
                    Image.fromarray(face).save(path)
                paths.append(path)
                done += 1
                if progress is not None:
                    progress(done, total)
    return paths



def expression_sheet(num_subjects: int = 6, seed: int = 0, pose: float = 0.0,
                     first_subject: int = 0, size: int = 128) -> np.ndarray:
    """A labelled grid: one row per subject, one column per expression.

    Args:
      num_subjects: Rows.
      seed: Population seed.
      pose: Yaw of every face.
      first_subject: Index of the first identity.
      size: Face side.

    Returns:
      ``uint8 [H, W, 3]`` image.
    """
    faces = render_face_set(num_subjects, seed, poses=(pose,), size=size,
                            first_subject=first_subject)
    return contact_sheet(faces, num_subjects, len(EXPRESSIONS), column_labels=EXPRESSIONS,
                         row_labels=faces.subject_names)
