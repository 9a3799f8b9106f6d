"""Batched, stateless-seeded augmentation for use inside ``tf.function``.

Every function here works on whole batches ``[B, H, W, C]`` with per-sample
random parameters, so the input pipeline and the training steps (the siamese
network's two views, docs/design.md section 2.C) pay one op per batch rather than
one per image. Randomness comes only from ``tf.random.stateless_*`` ops keyed
by an explicit ``seed`` of shape ``[2]``: the same seed gives the same
transforms, on any machine and in any execution order of tf.data's parallel
map.

The transforms are the ones docs/design.md names: horizontal flip, integer
translation with reflected borders, and colour jitter (brightness and
contrast). ``augment_together`` applies one draw to several tensors, so a face
and its neutral face move and change colour alike.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import tensorflow as tf


class Transform(NamedTuple):
    """Per-sample augmentation parameters of a batch.

    Attributes:
      flips: ``bool [B]``; mirror the sample left-right.
      shifts: ``int32 [B, 2]`` translation ``(dy, dx)`` in pixels: content
        moves down by ``dy`` and right by ``dx``.
      brightness: ``float32 [B]`` offset added on the [-1, 1] scale.
      contrast: ``float32 [B]`` scale about mid-grey (0 on the [-1, 1] scale).
    """

    flips: tf.Tensor
    shifts: tf.Tensor
    brightness: tf.Tensor
    contrast: tf.Tensor


def sample_transform(batch_size, seed, flip: bool = True, max_shift: int = 4,
                     jitter: float = 0.0) -> Transform:
    """Draws one ``Transform`` per sample from a stateless seed.

    Each kind of parameter has its own sub-seed, so turning one augmentation
    off leaves the draws of the others unchanged.

    Args:
      batch_size: Number of samples ``B`` (a Python int or scalar tensor).
      seed: ``int32``/``int64 [2]`` stateless seed.
      flip: Flip with probability 0.5; otherwise never.
      max_shift: Shifts are uniform integers in ``[-max_shift, max_shift]``,
        independently for ``dy`` and ``dx``.
      jitter: Brightness offsets uniform in ``[-jitter, jitter]`` and contrast
        scales uniform in ``[1 - jitter, 1 + jitter]``.

    Returns:
      The batch's ``Transform``; disabled parts are identities.
    """
    if max_shift < 0 or jitter < 0:
        raise ValueError(f"max_shift and jitter must be >= 0, got {max_shift} and {jitter}.")
    # int32 and int64 seeds would give different streams; one dtype makes a
    # seed mean the same whichever way it was built.
    seed = tf.cast(seed, tf.int64)
    flip_seed, shift_seed, bright_seed, contrast_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=4))
    batch_size = tf.cast(batch_size, tf.int32)
    if flip:
        flips = tf.random.stateless_uniform([batch_size], flip_seed) < 0.5
    else:
        flips = tf.zeros([batch_size], tf.bool)
    if max_shift > 0:
        shifts = tf.random.stateless_uniform([batch_size, 2], shift_seed, minval=-max_shift,
                                             maxval=max_shift + 1, dtype=tf.int32)
    else:
        shifts = tf.zeros([batch_size, 2], tf.int32)
    brightness = tf.random.stateless_uniform([batch_size], bright_seed, -jitter, jitter)
    contrast = tf.random.stateless_uniform([batch_size], contrast_seed, 1.0 - jitter, 1.0 + jitter)
    return Transform(flips, shifts, brightness, contrast)


def reflect_index(index, size):
    """Maps integer pixel coordinates into ``[0, size)`` by mirroring.

    The edge pixel is repeated (``... b a | a b c ... z | z y ...``), which is
    what ``tf.raw_ops.ImageProjectiveTransformV3``'s ``REFLECT`` mode and
    ``numpy.pad(mode="symmetric")`` do. Valid for any integer, however far
    outside.

    Args:
      index: Integer tensor of coordinates.
      size: Length of the axis.

    Returns:
      Tensor like ``index`` with values in ``[0, size)``.
    """
    period = index % (2 * size)  # floor-mod: non-negative for negative index too
    return tf.where(period < size, period, 2 * size - 1 - period)


def _source_coordinates(size, shifts, flips):
    """Source coordinate of each output pixel along one axis, ``[B, size]``."""
    positions = tf.range(size, dtype=tf.int32)[tf.newaxis, :]
    source = positions - shifts[:, tf.newaxis]
    if flips is not None:
        # out = shift(flip(in)): mirror the shifted source coordinate.
        source = tf.where(flips[:, tf.newaxis], size - 1 - source, source)
    return reflect_index(source, size)


def flip_shift(images, flips, shifts):
    """Mirrors and translates each sample by whole pixels, exactly.

    A flip and an integer shift are separable permutations of rows and
    columns, so two batched gathers do the whole batch with no interpolation
    (values are copied, never resampled) and for any dtype, uint8 included.
    Borders are filled by reflection (see ``reflect_index``). The flip comes
    first, so ``shifts`` are in output coordinates: content always moves by
    ``(+dy, +dx)``, flipped or not.

    Args:
      images: ``[B, H, W, C]`` tensor of any dtype.
      flips: ``bool [B]``.
      shifts: ``int32 [B, 2]`` translations ``(dy, dx)``; without a flip,
        ``out[y, x] = in[y - dy, x - dx]`` away from the borders, like
        ``numpy.roll``.

    Returns:
      Tensor like ``images``.
    """
    return _flip_shift_all([images], flips, shifts)[0]


def _flip_shift_all(tensors, flips, shifts):
    """``flip_shift`` of tensors sharing ``B``, ``H`` and ``W``; coordinates computed once."""
    shape = tf.shape(tensors[0])
    rows = _source_coordinates(shape[1], shifts[:, 0], None)
    cols = _source_coordinates(shape[2], shifts[:, 1], flips)
    # One pair of gathers per tensor: concatenating the tensors on channels
    # first would gather fewer, larger pixels, but measured 2.5x slower with
    # the concat and split copies included.
    return [tf.gather(tf.gather(t, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
            for t in tensors]


def colour_jitter(images, brightness, contrast):
    """Per-sample ``clip(contrast * x + brightness, -1, 1)`` on [-1, 1] images.

    Contrast scales about mid-grey rather than each image's own mean, so the
    same parameters are the same pixel function for every tensor they are
    applied to: a face and its neutral face change colour identically.

    Args:
      images: ``float32 [B, H, W, C]`` in [-1, 1].
      brightness: ``float32 [B]`` offsets.
      contrast: ``float32 [B]`` scales.

    Returns:
      ``float32 [B, H, W, C]`` in [-1, 1].
    """
    contrast = tf.reshape(contrast, [-1, 1, 1, 1])
    brightness = tf.reshape(brightness, [-1, 1, 1, 1])
    return tf.clip_by_value(images * contrast + brightness, -1.0, 1.0)


def apply_transform(tensors: Sequence[tf.Tensor], transform: Transform,
                    jitter: bool = True) -> list[tf.Tensor]:
    """Applies one ``Transform`` to every tensor of a list.

    Args:
      tensors: ``[B, H, W, C_i]`` tensors sharing ``B``, ``H`` and ``W``
        (channels and dtype may differ).
      transform: Parameters from ``sample_transform``.
      jitter: Apply the colour part too (needs float tensors in [-1, 1]).

    Returns:
      The transformed tensors, in order.
    """
    tensors = _flip_shift_all([tf.convert_to_tensor(t) for t in tensors], transform.flips,
                              transform.shifts)
    if jitter:
        tensors = [colour_jitter(t, transform.brightness, transform.contrast) for t in tensors]
    return tensors


def augment_together(tensors: Sequence[tf.Tensor], seed, flip: bool = True, max_shift: int = 4,
                     jitter: float = 0.0) -> list[tf.Tensor]:
    """Augments several aligned batches with the same per-sample transform.

    Sample ``i`` of every tensor gets the same flip, shift and colour change
    (so an image and its neutral face stay aligned); different samples get
    independent draws. With ``flip=False``, ``max_shift=0`` and ``jitter=0``
    the tensors are returned unchanged.

    Args:
      tensors: ``float32 [B, H, W, C_i]`` tensors in [-1, 1] (any dtype when
        ``jitter`` is 0) sharing ``B``, ``H`` and ``W``.
      seed: ``int32``/``int64 [2]`` stateless seed.
      flip: Random horizontal flips with probability 0.5.
      max_shift: Largest translation in pixels, in x and in y.
      jitter: Colour jitter strength (see ``sample_transform``).

    Returns:
      The augmented tensors, in order.
    """
    tensors = list(tensors)
    if not tensors:
        return []
    if not flip and max_shift == 0 and jitter == 0:
        return tensors
    transform = sample_transform(tf.shape(tensors[0])[0], seed, flip=flip, max_shift=max_shift,
                                 jitter=jitter)
    return apply_transform(tensors, transform, jitter=jitter > 0)


def random_flip_shift(images, seed, flip: bool = True, max_shift: int = 4):
    """``augment_together`` for a single tensor without colour jitter."""
    return augment_together([images], seed, flip=flip, max_shift=max_shift)[0]
