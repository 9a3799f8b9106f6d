"""tf.data input pipelines over faces held in memory (docs/design.md section 4).

Faces are decoded once into a ``FaceSet`` (``uint8 [N, S, S, 3]``); the
pipelines then move only *indices*::

    range(N) -> shuffle (seeded, reshuffled each epoch) -> batch
      -> map(one tf.gather per batch from the uint8 array, flip/shift in
             uint8, scale to [-1, 1], colour jitter) -> prefetch(AUTOTUNE)

so there is no per-image work in Python or in tf.data, and the image array is
turned into a tensor once. It enters the dataset through
``Dataset.from_tensors(...).repeat()`` zipped beside the index batches: the
map function receives it as an argument instead of capturing it, so the
array is never embedded in a function's graph, and each batch gathers its
rows from the same buffer, epoch after epoch. tf.data's graph rewrites are
off (see ``dataset_options``) because serialising the dataset would copy the
array.

Reproducibility: with the same ``seed`` (and the same TensorFlow global seed,
e.g. from ``keras.utils.set_random_seed``, which tf.data's seeded ops combine
with the op seed) a new dataset yields the same batches, and every further
pass over it (every epoch) yields a new order and new augmentations, also
reproducibly. Augmentations are drawn with stateless ops from a per-batch
seed, so they do not depend on the order in which tf.data's parallel map runs.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from leed_tf.data import augment
from leed_tf.data.images import scale_to_unit

AUTOTUNE = tf.data.AUTOTUNE

# Salts of the independent random streams of one dataset; sub-seeds are derived
# from (seed, stream) so that two streams never share a permutation.
_INPUT_ORDER, _REFERENCE_ORDER, _AUGMENT = 0, 1, 2



def steps_per_epoch(num_images: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Batches in one pass of ``image_dataset`` or ``paired_dataset``.

    Args:
      num_images: Faces in the set.
      batch_size: Faces (or input/reference pairs) per batch.
      drop_remainder: Whether the last, partial batch is dropped.

    Returns:
      Number of batches per epoch.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if drop_remainder:
        return num_images // batch_size
    return math.ceil(num_images / batch_size)


def dataset_options(deterministic: bool = True) -> tf.data.Options:
    """tf.data options of every pipeline here.

    Args:
      deterministic: Produce elements in a fixed order even though the map
        runs in parallel. The augmentation is stateless-seeded per batch, so
        turning this off changes only the order batches arrive in, and buys
        throughput when one batch is slow.

    Returns:
      ``tf.data.Options`` with autotuned parallelism and no graph rewrites.
    """
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = True
    # Any graph rewrite serialises the dataset, image tensor included: the
    # first pass then costs a second resident copy of the whole array and
    # about a second (measured with 5,000 faces, TF 2.21). The pipelines are
    # already what the default rewrites would make of them (parallel map,
    # prefetch, nothing to fuse), so they are switched off.
    options.experimental_optimization.apply_default_optimizations = False
    return options


def image_dataset(images: np.ndarray, labels: np.ndarray | None, batch_size: int, seed: int = 0,
                  shuffle: bool = True, flip: bool = True, max_shift: int = 4,
                  drop_remainder: bool = True, repeat: bool = False, jitter: float = 0.0,
                  deterministic: bool = True) -> tf.data.Dataset:
    """Batches of augmented single faces, e.g. for the neutralizer and auto-encoder.

    Args:
      images: ``uint8 [N, S, S, 3]`` faces (e.g. ``FaceSet.images``).
      labels: ``int [N]`` labels aligned with ``images``, or None.
      batch_size: Faces per batch.
      seed: Seed of the order and of the augmentation.
      shuffle: Shuffle, with a new order each epoch; else the stored order.
      flip: Random horizontal flips.
      max_shift: Largest random translation in pixels (reflected borders).
      drop_remainder: Drop the last, partial batch of each epoch.
      repeat: Loop over epochs forever instead of stopping after one.
      jitter: Colour jitter strength (see ``augment.sample_transform``).
      deterministic: See ``dataset_options``.

    Returns:
      A dataset of ``{"image": float32 [B, S, S, 3] in [-1, 1],
      "label": int32 [B]}``; no ``"label"`` when ``labels`` is None.
    """
    num_images = _check_images(images, "images")
    image_table = _as_tensor(images)
    label_table = None
    if labels is not None:
        label_table = tf.convert_to_tensor(
            _check_aligned(labels, num_images, "labels").astype(np.int32))
    order = _index_batches(num_images, batch_size, _stream_seed(seed, _INPUT_ORDER), shuffle,
                           drop_remainder)
    dataset = tf.data.Dataset.zip(order, _augment_seeds(seed), _constant(image_table))

    def load(indices, aug_seed, table):
        image, = _load_augmented([table], indices, aug_seed, flip, max_shift, jitter)
        batch = {"image": image}
        if label_table is not None:
            batch["label"] = tf.gather(label_table, indices)
        return batch

    return _finish(dataset, load, repeat, deterministic)


def paired_dataset(images: np.ndarray, neutrals: np.ndarray, batch_size: int, seed: int = 0,
                   shuffle: bool = True, flip: bool = True, max_shift: int = 4,
                   drop_remainder: bool = True, repeat: bool = False,
                   carry: dict[str, np.ndarray] | None = None, jitter: float = 0.0,
                   deterministic: bool = True, references: bool = True,
                   carry_mirrored: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   pair_targets: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> tf.data.Dataset:
    """Batches of (input, reference) faces with their neutral faces, for LEED.

    Each epoch visits every face once as an input and once as a reference,
    through two independently shuffled orders, so a reference is unrelated to
    its input (it is the input itself with probability 1/N, which the
    self-edit reconstruction loss sees anyway). With ``shuffle=False`` inputs
    come in stored order and the reference of face ``i`` is face ``(i + N // 2)
    % N``: fixed, and never the input itself when ``N > 1``.

    The input and its neutral face share one augmentation draw; the reference
    and its neutral face share another, independent one.

    Args:
      images: ``uint8 [N, S, S, 3]`` faces.
      neutrals: ``uint8 [N, S, S, 3]``, the neutral face of each image (the
        same subject's neutral photo, or the neutralizer's output).
      batch_size: Pairs per batch.
      seed: Seed of both orders and of the augmentation.
      shuffle: Shuffle both orders, anew each epoch.
      flip: Random horizontal flips.
      max_shift: Largest random translation in pixels (reflected borders).
      drop_remainder: Drop the last, partial batch of each epoch.
      repeat: Loop over epochs forever instead of stopping after one.
      carry: Arrays aligned with ``images`` (subject ids, synthetic identity
        parameters, ...) to gather alongside, dtype kept.
      jitter: Colour jitter strength (see ``augment.sample_transform``).
      deterministic: See ``dataset_options``.
      references: Draw references too; with False, batches hold only inputs
        and their neutral faces (e.g. for the auto-encoder).
      carry_mirrored: Per-face values that depend on the face's orientation,
        e.g. codes of a frozen encoder computed once: for each key, a pair
        ``(as_is, mirrored)`` of arrays aligned with ``images``, the second
        holding the values of the left-right mirrored faces. A batch takes
        each row from the array matching its face's flip. Needs
        ``max_shift=0`` (values of shifted faces are not known).
      pair_targets: ``(groups, table)`` from ``training.pairs``: each face's
        group id ``[N]`` and the match table ``[G, N]``. Each pair then also
        names its target, the face of the input's group matched to the
        reference (``table[groups[input], reference]``, -1 for none), and
        carries the target's ``carry_mirrored`` values in the *input's*
        orientation (the target stands in for the input edited). Needs
        references and ``carry_mirrored``.

    Returns:
      A dataset of dicts (for LEED, ``leed_tf.training.batch.LeedBatch``)
      with ``"input"``, ``"input_neutral"``, ``"reference"``, ``"reference_neutral"`` (``float32 [B, S, S, 3]`` in
      [-1, 1]), ``"input_index"`` and ``"reference_index"`` (``int32 [B]``,
      rows of ``images``) and, for each key ``k`` of ``carry`` or
      ``carry_mirrored``, ``"input_" + k`` and ``"reference_" + k``; no
      ``"reference*"`` keys with ``references=False``. With ``pair_targets``,
      also ``"target_index"`` (``int32 [B]``, -1 where the input's group has
      no match) and ``"target_" + k`` for each ``carry_mirrored`` key (face
      0's rows where there is no target).
    """
    num_images = _check_images(images, "images")
    _check_images(neutrals, "neutrals")
    if neutrals.shape != images.shape:
        raise ValueError(f"neutrals must match images' shape {images.shape}, got {neutrals.shape}.")
    image_table = _as_tensor(images)
    neutral_table = image_table if neutrals is images else _as_tensor(neutrals)
    carried = {key: tf.convert_to_tensor(_check_aligned(value, num_images, f"carry[{key!r}]"))
               for key, value in (carry or {}).items()}
    if carry_mirrored and max_shift != 0:
        raise ValueError(f"carry_mirrored needs max_shift=0 (values of shifted faces are unknown), "
                         f"got max_shift={max_shift}.")
    mirrored = {}
    for key, pair in (carry_mirrored or {}).items():
        if len(pair) != 2:
            raise ValueError(f"carry_mirrored[{key!r}] must be a pair (as_is, mirrored).")
        as_is, flipped = (_check_aligned(v, num_images, f"carry_mirrored[{key!r}]") for v in pair)
        if as_is.shape != flipped.shape:
            raise ValueError(f"carry_mirrored[{key!r}]: the mirrored array's shape {flipped.shape} "
                             f"differs from {as_is.shape}.")
        with tf.init_scope():
            mirrored[key] = tf.convert_to_tensor(np.stack([as_is, flipped]))

    pairs = ()
    if pair_targets is not None:
        if not references or not carry_mirrored:
            raise ValueError("pair_targets needs references=True and carry_mirrored (the targets' values).")
        groups, table = (np.asarray(v) for v in pair_targets)
        _check_aligned(groups, num_images, "pair_targets groups")
        if table.ndim != 2 or table.shape[1] != num_images or groups.min() < 0 or groups.max() >= len(table):
            raise ValueError(f"pair_targets table must be [groups, {num_images}] covering every group id, "
                             f"got shape {table.shape} for group ids up to {groups.max()}.")
        if table.min() < -1 or table.max() >= num_images:
            raise ValueError("pair_targets table holds face indices out of range.")
        with tf.init_scope():
            pairs = tuple(tf.convert_to_tensor(v.astype(np.int64)) for v in (groups, table))
    inputs = _index_batches(num_images, batch_size, _stream_seed(seed, _INPUT_ORDER), shuffle,
                            drop_remainder)
    orders = [inputs]
    if references and shuffle:
        orders.append(_index_batches(num_images, batch_size, _stream_seed(seed, _REFERENCE_ORDER),
                                     shuffle, drop_remainder))
    elif references:
        orders.append(tf.data.Dataset.range(num_images).map(
            lambda i: (i + num_images // 2) % num_images).batch(batch_size, drop_remainder))
    tables = _constant((image_table, neutral_table, mirrored, pairs))
    dataset = tf.data.Dataset.zip(*orders, _augment_seeds(seed), tables)

    def load_side(batch, side, indices, side_seed, tables):
        image_table, neutral_table, mirrored_tables, _ = tables
        (batch[side], batch[side + "_neutral"]), flips = _load_augmented(
            (image_table, neutral_table), indices, side_seed, flip, max_shift, jitter, return_flips=True)
        batch[side + "_index"] = tf.cast(indices, tf.int32)
        for key, table in carried.items():
            batch[f"{side}_{key}"] = tf.gather(table, indices)
        for key, table in mirrored_tables.items():
            batch[f"{side}_{key}"] = tf.gather_nd(table, tf.stack([tf.cast(flips, indices.dtype), indices], 1))
        return flips

    def load_targets(batch, input_indices, reference_indices, input_flips, tables):
        _, _, mirrored_tables, (group_table, match_table) = tables
        input_indices, reference_indices = (tf.cast(i, tf.int64) for i in (input_indices, reference_indices))
        targets = tf.gather_nd(match_table, tf.stack([tf.gather(group_table, input_indices),
                                                      reference_indices], 1))
        batch["target_index"] = tf.cast(targets, tf.int32)
        rows = tf.stack([tf.cast(input_flips, tf.int64), tf.maximum(targets, 0)], 1)
        for key, table in mirrored_tables.items():
            batch["target_" + key] = tf.gather_nd(table, rows)

    def load(*args):
        if references:
            input_indices, reference_indices, aug_seed, tables = args
        else:
            input_indices, aug_seed, tables = args
        input_seed, reference_seed = tf.unstack(
            tf.random.experimental.stateless_split(aug_seed, num=2))
        batch = {}
        input_flips = load_side(batch, "input", input_indices, input_seed, tables)
        if references:
            load_side(batch, "reference", reference_indices, reference_seed, tables)
        if pairs:
            load_targets(batch, input_indices, reference_indices, input_flips, tables)
        return batch

    return _finish(dataset, load, repeat, deterministic)


def _check_images(images, name: str) -> int:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{name} must be a uint8 numpy array [N, H, W, C], got "
                         f"{getattr(images, 'dtype', type(images))} "
                         f"{getattr(images, 'shape', '')}.")
    if len(images) == 0:
        raise ValueError(f"{name} is empty: there are no faces to feed.")
    return len(images)


def _check_aligned(values, num_images: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if len(values) != num_images:
        raise ValueError(f"{name} has {len(values)} rows, expected {num_images} (one per image).")
    return values


def _as_tensor(images: np.ndarray) -> tf.Tensor:
    # One copy, made eagerly even if the dataset is built inside a tf.function
    # (where it would otherwise become a graph constant); tf.data then passes
    # this buffer by reference.
    with tf.init_scope():
        return tf.convert_to_tensor(np.ascontiguousarray(images))


def _constant(value) -> tf.data.Dataset:
    """An endless dataset repeating ``value`` (no copy: the same tensor each time)."""
    return tf.data.Dataset.from_tensors(value).repeat()


def _stream_seed(seed: int, stream: int) -> int:
    """A 31-bit op seed for one of a dataset's random streams."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0] >> 1)


def _index_batches(num_images: int, batch_size: int, op_seed: int, shuffle: bool,
                   drop_remainder: bool) -> tf.data.Dataset:
    """Batches of row indices covering ``range(num_images)`` once."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if drop_remainder and num_images < batch_size:
        raise ValueError(f"{num_images} images cannot fill one batch of {batch_size} "
                         "with drop_remainder=True.")
    indices = tf.data.Dataset.range(num_images)
    if shuffle:
        # A full-size buffer of int64s is a uniform permutation and costs
        # 8 bytes per face; the seed generator gives each pass a new one.
        indices = indices.shuffle(num_images, seed=op_seed, reshuffle_each_iteration=True)
    return indices.batch(batch_size, drop_remainder=drop_remainder)


def _augment_seeds(seed: int) -> tf.data.Dataset:
    """One stateless seed ``int64 [2]`` per batch, different each pass."""
    return tf.data.Dataset.random(seed=_stream_seed(seed, _AUGMENT),
                                  rerandomize_each_iteration=True).batch(2)


def _load_augmented(tables, indices, seed, flip: bool, max_shift: int, jitter: float,
                    return_flips: bool = False):
    """Gathers ``indices`` from each uint8 table and augments them together.

    Returns the augmented rows, and with ``return_flips`` also the ``bool [B]``
    flips they got.
    """
    rows = [tf.gather(table, indices) for table in tables]
    transform = augment.sample_transform(tf.shape(indices)[0], seed, flip=flip,
                                         max_shift=max_shift, jitter=jitter)
    if flip or max_shift > 0:
        # Moving uint8 pixels is a quarter of the memory traffic of float32.
        rows = augment.apply_transform(rows, transform, jitter=False)
    rows = [scale_to_unit(r) for r in rows]
    if jitter > 0:
        rows = [augment.colour_jitter(r, transform.brightness, transform.contrast) for r in rows]
    return (rows, transform.flips) if return_flips else rows


def _finish(dataset: tf.data.Dataset, load, repeat: bool, deterministic: bool) -> tf.data.Dataset:
    dataset = dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if repeat:
        dataset = dataset.repeat()
    return dataset.prefetch(AUTOTUNE).with_options(dataset_options(deterministic))
