"""Expression banks: mean expression codes per named expression (docs/design.md §3).

A bank lets ``Editor.edit(image, expression="happy")`` work without a
reference image: the expression code ``e = X(E(I) - E(N))`` of every labelled
face is computed with the model, and the codes of each expression are
averaged. Labels are used only here, after training, never by LEED itself.

A bank belongs to the model that computed it (its encoder, neutralizer and
extractor); the SavedModel export embeds the bank of its run.

File format (``.npz``, written by ``ExpressionBank.save``)::

    names   str    [K]                 expression names
    codes   float32[K, S/16, S/16, C]  mean expression code of each name
    counts  int64  [K]                 faces averaged into each code
    source  str    []                  what the faces were (free text)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import numpy as np

from leed_tf.data.images import uint8_to_01
from leed_tf.run_folder import write_atomically

SOURCES = ("synthetic", "rafd", "cfee", "folder", "manifest")


class UnknownExpressionError(ValueError):
    """An expression name that the bank does not hold."""


@dataclasses.dataclass
class ExpressionBank:
    """Mean expression codes per named expression.

    Attributes:
      names: Expression names, unique.
      codes: ``float32 [K, h, w, c]`` mean expression code of each name.
      counts: ``int64 [K]`` faces averaged into each code.
      source: Free text saying which faces the codes come from.
    """

    names: tuple[str, ...]
    codes: np.ndarray
    counts: np.ndarray
    source: str = ""

    def __post_init__(self):
        self.names = tuple(str(n) for n in self.names)
        self.codes = np.asarray(self.codes, np.float32)
        self.counts = np.asarray(self.counts, np.int64).reshape(-1)
        if self.codes.ndim != 4 or len(self.codes) != len(self.names) or len(self.counts) != len(self.names):
            raise ValueError(f"An expression bank needs codes [K, h, w, c] and counts [K] for K names; got "
                             f"{len(self.names)} names, codes {self.codes.shape}, counts {self.counts.shape}.")
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Expression names must be unique; repeated: {', '.join(duplicates)}.")

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self.names

    @property
    def code_shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape[1:])

    def code(self, name: str) -> np.ndarray:
        """The mean expression code of ``name``, ``float32 [h, w, c]``.

        Raises:
          UnknownExpressionError: naming the bank's expressions.
        """
        if name not in self:
            known = ", ".join(self.names) if self.names else "none (the bank is empty)"
            raise UnknownExpressionError(f"Unknown expression {name!r}; this expression bank has: {known}.")
        return self.codes[self.names.index(name)]

    def codes_for(self, names: Sequence[str]) -> np.ndarray:
        """``float32 [len(names), h, w, c]``, one code per name."""
        return np.stack([self.code(n) for n in names]) if len(names) else np.zeros(
            (0,) + self.code_shape, np.float32)

    def save(self, path: str) -> str:
        """Writes the bank to ``path`` (``.npz``) atomically; returns the path."""
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return write_atomically(path, lambda f: np.savez(
            f, names=np.asarray(self.names, dtype=str), codes=self.codes, counts=self.counts,
            source=np.asarray(self.source)))

    @classmethod
    def load(cls, path: str) -> "ExpressionBank":
        """Reads a bank written by ``save``.

        Raises:
          FileNotFoundError: no such file.
          ValueError: the file is not an expression bank.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No expression bank at {path}; build one with "
                                    f"scripts/build_expression_bank.py.")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError(f"a single {type(data).__name__}, not an .npz archive")
            with data:
                return cls(tuple(data["names"].tolist()), data["codes"], data["counts"],
                           str(data["source"]) if "source" in data else "")
        except (KeyError, OSError, ValueError) as e:
            raise ValueError(f"{path} is not an expression bank (names, codes, counts): {e}") from None

    @classmethod
    def from_codes(cls, codes, labels, names: Sequence[str], source: str = "") -> "ExpressionBank":
        """Averages ``codes`` (``[N, h, w, c]``) per label.

        Args:
          codes: Expression codes of N faces.
          labels: ``[N]`` indices into ``names``; negative for unlabelled faces.
          names: Expression names.
          source: Free text stored with the bank.

        Returns:
          A bank of every name that has at least one face, in ``names`` order.

        Raises:
          ValueError: no labelled face at all.
        """
        codes = np.asarray(codes, np.float64)
        labels = np.asarray(labels).reshape(-1)
        if len(codes) != len(labels):
            raise ValueError(f"Got {len(codes)} codes for {len(labels)} labels.")
        kept, means, counts = [], [], []
        for index, name in enumerate(names):
            chosen = labels == index
            if chosen.any():
                kept.append(name)
                means.append(codes[chosen].mean(axis=0))
                counts.append(int(chosen.sum()))
        if not kept:
            raise ValueError("No labelled face to build an expression bank from.")
        return cls(tuple(kept), np.stack(means).astype(np.float32), np.asarray(counts), source)


def empty_bank(code_shape: Sequence[int]) -> ExpressionBank:
    """A bank with no expression (for exports without one)."""
    return ExpressionBank((), np.zeros((0,) + tuple(code_shape), np.float32), np.zeros(0, np.int64),
                          "empty")


@dataclasses.dataclass
class LabelledFaces:
    """Faces to build a bank from.

    Attributes:
      images: ``uint8 [N, S, S, 3]`` face crops.
      labels: ``int [N]`` indices into ``names`` (-1 unlabelled).
      names: Expression names.
      neutrals: ``uint8 [N, S, S, 3]`` each face's real neutral photo, or
        None (then the model's neutralizer makes them).
      source: What the faces are.
    """

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    neutrals: np.ndarray | None
    source: str


def labelled_faces(source: str, data_dir: str = "", *, image_size: int = 128,
                   real_neutrals: bool = False, synthetic_subjects: int = 8, synthetic_seed: int = 0,
                   synthetic_poses: Sequence[float] = (0.0,)) -> LabelledFaces:
    """Loads labelled faces from a data set, a folder or synthetic renders.

    Args:
      source: ``synthetic`` (rendered, identities 1000 onwards so they are
        not training identities), or a data set layout of
        ``leed_tf.data.loaders`` (``rafd``, ``cfee``/``cfeed``, ``folder``:
        ``root/<expression>/<file>``, ``manifest``: a CSV).
      data_dir: The data set's root (or manifest) for real sources.
      image_size: Side of the face crops.
      real_neutrals: Also return each face's real neutral photo (for models
        trained with ``neutral_source=dataset``, which have no neutralizer).
      synthetic_subjects: Identities rendered for ``synthetic``.
      synthetic_seed: Population seed of the rendered identities.
      synthetic_poses: Yaws rendered for ``synthetic``.

    Returns:
      The faces, cropped as the data set's training faces are.
    """
    from leed_tf.config import canonical_dataset

    source = canonical_dataset(source)
    if source == "synthetic":
        from leed_tf.data import synthetic

        faces = synthetic.render_face_set(synthetic_subjects, synthetic_seed, poses=tuple(synthetic_poses),
                                          size=image_size, first_subject=1000)
        described = (f"synthetic renders: {synthetic_subjects} identities (from 1000), "
                     f"poses {tuple(synthetic_poses)}")
    else:
        from leed_tf.data import loaders

        if not data_dir:
            raise ValueError(f"--data_dir is required to build an expression bank from {source} faces.")
        faces = loaders.load_face_set(source, data_dir, size=image_size, split="all",
                                      require_neutral=real_neutrals)
        described = f"{source} faces in {data_dir}"
    neutrals = None
    if real_neutrals:
        from leed_tf.data import sources

        neutrals = sources.real_neutrals(faces)
    return LabelledFaces(faces.images, faces.expressions, tuple(faces.expression_names), neutrals,
                         f"{described}, {len(faces)} faces")


def build_expression_bank(expression_codes: Callable, faces: LabelledFaces,
                          batch_size: int = 32) -> ExpressionBank:
    """Computes every face's expression code and averages them per expression.

    Args:
      expression_codes: ``f(images, neutrals) -> codes`` on float32 images in
        [0, 1] (``neutrals`` None when the model has a neutralizer), e.g.
        ``Editor.expression_codes``.
      faces: The labelled faces.
      batch_size: Faces per call.

    Returns:
      The bank.
    """
    codes = []
    for start in range(0, len(faces.images), batch_size):
        images = uint8_to_01(faces.images[start:start + batch_size])
        neutrals = None if faces.neutrals is None else (
            uint8_to_01(faces.neutrals[start:start + batch_size]))
        codes.append(np.asarray(expression_codes(images, neutrals)))
    if not codes:
        raise ValueError(f"No face in {faces.source}.")
    return ExpressionBank.from_codes(np.concatenate(codes), faces.labels, faces.names, faces.source)
