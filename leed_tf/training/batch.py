"""The LEED stage's batches and codes, typed (docs/design.md section 2.C).

``pipeline.paired_dataset`` yields a ``LeedBatch``: the input and reference
faces with their neutral faces and, when the frozen encoder's codes are
cached (``cache_codes``), those codes and the matched-pair targets. The
stage's steps work on ``LeedCodes``, taken from the batch (``cached_codes``)
or computed by the encoder (``encoded_codes``). Both are ``TypedDict``s:
plain dicts at run time, so ``tf.function`` and ``tf.distribute`` take them
as they are, with their keys written down once, here.
"""

from __future__ import annotations

from typing import TypedDict

import tensorflow as tf


class LeedImages(TypedDict):
    """Faces of one batch: ``float32 [B, S, S, 3]`` in [-1, 1], and the rows
    of the training set they came from (``int32 [B]``)."""

    input: tf.Tensor
    input_neutral: tf.Tensor
    reference: tf.Tensor
    reference_neutral: tf.Tensor
    input_index: tf.Tensor
    reference_index: tf.Tensor


class LeedBatch(LeedImages, total=False):
    """A ``LeedImages`` batch with, when codes are cached, the frozen
    encoder's codes of its four faces (each in its face's orientation) and,
    with the matched-pair term, each pair's target: the face of the input's
    group matched to the reference (``target_index``, -1 for none) and its
    code in the input's orientation."""

    input_code: tf.Tensor
    input_neutral_code: tf.Tensor
    reference_code: tf.Tensor
    reference_neutral_code: tf.Tensor
    target_index: tf.Tensor
    target_code: tf.Tensor


class LeedCodes(TypedDict, total=False):
    """The codes a LEED step works on: ``z_in``, ``n_in``, ``z_ref``,
    ``n_ref`` (float32 ``[B, h, w, c]``) and, for the matched-pair term,
    ``target_code`` and ``target_index``."""

    code: tf.Tensor
    neutral_code: tf.Tensor
    reference_code: tf.Tensor
    reference_neutral_code: tf.Tensor
    target_code: tf.Tensor
    target_index: tf.Tensor


# The codes the pipeline carries for each face (``carry_mirrored`` keys);
# a batch holds them as ``input_<key>`` and ``reference_<key>``.
CACHED_CODE_KEYS = ("code", "neutral_code")


def cached_codes(batch: LeedBatch, with_targets: bool) -> LeedCodes:
    """The codes of a batch whose codes were cached by the pipeline."""
    codes = LeedCodes(code=batch["input_code"], neutral_code=batch["input_neutral_code"],
                      reference_code=batch["reference_code"],
                      reference_neutral_code=batch["reference_neutral_code"])
    if with_targets:
        codes.update(target_code=batch["target_code"], target_index=batch["target_index"])
    return codes


def stacked_faces(batch: LeedImages) -> tf.Tensor:
    """The batch's four image sets in one tensor, for one encoder pass
    (``encoded_codes`` splits its output back)."""
    return tf.concat([batch["input"], batch["input_neutral"], batch["reference"], batch["reference_neutral"]],
                     axis=0)


def encoded_codes(codes_of_stacked_faces: tf.Tensor) -> LeedCodes:
    """``LeedCodes`` from the encoder's output on ``stacked_faces``."""
    code, neutral_code, reference_code, reference_neutral_code = tf.split(codes_of_stacked_faces, 4, axis=0)
    return LeedCodes(code=code, neutral_code=neutral_code, reference_code=reference_code,
                     reference_neutral_code=reference_neutral_code)
