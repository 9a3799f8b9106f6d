"""Batched stateless augmentation: exactness, sharing across tensors, seeds."""

import numpy as np
import pytest
import tensorflow as tf

from leed_tf.data import augment

SEED = tf.constant([3, 7], tf.int64)


def random_images(batch=8, size=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-1, 1, (batch, size, size, channels)).astype(np.float32))


def expected_flip_shift(images, flips, shifts):
    """numpy reference: a mirror, then symmetric padding and a crop."""
    images = np.asarray(images)
    size_y, size_x = images.shape[1:3]
    pad = int(np.abs(shifts).max())
    out = []
    for image, flip, (dy, dx) in zip(images, flips, shifts):
        image = image[:, ::-1] if flip else image
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
        out.append(padded[pad - dy:pad - dy + size_y, pad - dx:pad - dx + size_x])
    return np.stack(out)


def test_reflect_index_matches_numpy_symmetric_padding():
    size = 5
    index = tf.range(-12, 17)
    expected = np.pad(np.arange(size), 12, mode="symmetric")
    np.testing.assert_array_equal(augment.reflect_index(index, size), expected)


def test_flip_really_flips():
    images = random_images()
    flips = tf.constant([True, False] * 4)
    out = augment.flip_shift(images, flips, tf.zeros([8, 2], tf.int32)).numpy()
    np.testing.assert_array_equal(out[0::2], images.numpy()[0::2, :, ::-1])
    np.testing.assert_array_equal(out[1::2], images.numpy()[1::2])


def test_integer_shift_is_exact():
    images = random_images(batch=4, size=12)
    shifts = np.array([[0, 0], [2, -3], [-4, 4], [1, 0]], np.int32)
    out = augment.flip_shift(images, tf.zeros([4], tf.bool), shifts).numpy()
    for image, moved, (dy, dx) in zip(images.numpy(), out, shifts):
        # Away from the borders a shift is a roll.
        rolled = np.roll(image, (dy, dx), axis=(0, 1))
        np.testing.assert_array_equal(moved[4:-4, 4:-4], rolled[4:-4, 4:-4])
    # Borders included: reflect padding, then a crop.
    np.testing.assert_array_equal(out, expected_flip_shift(images, [False] * 4, shifts))


def test_flip_and_shift_together_match_numpy_and_projective_transform():
    images = random_images(batch=6, size=10)
    flips = np.array([True, False, True, True, False, False])
    shifts = np.array([[1, 2], [-3, 0], [4, -4], [0, 0], [-1, -2], [2, 3]], np.int32)
    out = augment.flip_shift(images, flips, shifts).numpy()
    np.testing.assert_array_equal(out, expected_flip_shift(images, flips, shifts))
    # The same map as TF's own projective transform (NEAREST, REFLECT).
    sign = np.where(flips, -1.0, 1.0)
    offset_x = np.where(flips, 9.0, 0.0) - sign * shifts[:, 1]  # x_in = sign * x + offset_x
    zeros, ones = np.zeros(6), np.ones(6)
    matrices = np.stack([sign, zeros, offset_x, zeros, ones, -shifts[:, 0], zeros, zeros], 1)
    projected = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.constant(matrices, tf.float32), output_shape=[10, 10],
        fill_value=0.0, interpolation="NEAREST", fill_mode="REFLECT")
    np.testing.assert_array_equal(out, projected)


def test_flip_shift_works_on_uint8():
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), np.uint8))
    flips, shifts = np.array([True, False, True]), np.array([[1, -1], [2, 2], [0, 3]], np.int32)
    out = augment.flip_shift(images, flips, shifts)
    assert out.dtype == tf.uint8
    np.testing.assert_array_equal(out, expected_flip_shift(images, flips, shifts))


def test_no_change_when_everything_is_off():
    images = random_images()
    out, = augment.augment_together([images], SEED, flip=False, max_shift=0, jitter=0.0)
    np.testing.assert_array_equal(out, images)


def test_flip_only_mirrors_some_samples_and_keeps_others():
    images = tf.repeat(random_images(batch=1), 64, axis=0)
    out = augment.augment_together([images], SEED, flip=True, max_shift=0)[0].numpy()
    mirrored = np.array([np.array_equal(o, images[0].numpy()[:, ::-1]) for o in out])
    kept = np.array([np.array_equal(o, images[0].numpy()) for o in out])
    assert np.all(mirrored ^ kept)
    assert 16 < mirrored.sum() < 48  # p = 0.5


def test_same_transform_for_every_tensor_of_the_list():
    first = random_images(batch=16, channels=3, seed=1)
    second = random_images(batch=16, channels=1, seed=2)
    copy = tf.identity(first)
    out_first, out_second, out_copy = augment.augment_together(
        [first, second, copy], SEED, flip=True, max_shift=4, jitter=0.3)
    np.testing.assert_array_equal(out_first, out_copy)
    assert out_second.shape == second.shape
    # The one draw, applied to each tensor on its own, gives the same result.
    transform = augment.sample_transform(16, SEED, flip=True, max_shift=4, jitter=0.3)
    for before, after in [(first, out_first), (second, out_second)]:
        alone, = augment.apply_transform([before], transform)
        np.testing.assert_array_equal(after, alone)


def test_samples_of_a_batch_get_different_transforms():
    images = tf.repeat(random_images(batch=1), 16, axis=0)
    out = augment.augment_together([images], SEED, flip=True, max_shift=4)[0].numpy()
    distinct = {o.tobytes() for o in out}
    assert len(distinct) > 8


def test_drawn_shifts_cover_the_range_and_match_the_output():
    transform = augment.sample_transform(512, SEED, flip=False, max_shift=3)
    shifts = transform.shifts.numpy()
    assert shifts.min() == -3 and shifts.max() == 3
    images = random_images(batch=512, size=8)
    out = augment.augment_together([images], SEED, flip=False, max_shift=3)[0]
    np.testing.assert_array_equal(out, expected_flip_shift(images, [False] * 512, shifts))


def test_stateless_determinism():
    images = random_images()
    kwargs = dict(flip=True, max_shift=4, jitter=0.2)
    a = augment.augment_together([images], SEED, **kwargs)[0]
    b = augment.augment_together([images], tf.constant([3, 7], tf.int32), **kwargs)[0]
    c = augment.augment_together([images], tf.constant([3, 8]), **kwargs)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_turning_one_augmentation_off_keeps_the_others_draws():
    with_flip = augment.sample_transform(32, SEED, flip=True, max_shift=4, jitter=0.1)
    without = augment.sample_transform(32, SEED, flip=False, max_shift=4, jitter=0.1)
    np.testing.assert_array_equal(with_flip.shifts, without.shifts)
    np.testing.assert_array_equal(with_flip.contrast, without.contrast)


def test_jitter_range_and_formula():
    jitter = 0.25
    transform = augment.sample_transform(1000, SEED, flip=False, max_shift=0, jitter=jitter)
    brightness, contrast = transform.brightness.numpy(), transform.contrast.numpy()
    assert brightness.min() >= -jitter and brightness.max() <= jitter
    assert contrast.min() >= 1 - jitter and contrast.max() <= 1 + jitter
    assert brightness.std() > 0.1 and contrast.std() > 0.1

    images = random_images(batch=32)
    out = augment.augment_together([images], SEED, flip=False, max_shift=0, jitter=jitter)[0]
    transform = augment.sample_transform(32, SEED, flip=False, max_shift=0, jitter=jitter)
    expected = np.clip(images.numpy() * transform.contrast.numpy()[:, None, None, None]
                       + transform.brightness.numpy()[:, None, None, None], -1, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.numpy().min() >= -1 and out.numpy().max() <= 1


def test_runs_in_tf_function_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3]), tf.TensorSpec([2], tf.int64)])
    def run(images, seed):
        image, copy = augment.augment_together([images, images], seed, jitter=0.1)
        return image, copy

    images = random_images(batch=5)
    image, copy = run(images, SEED)
    assert image.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(image, copy)
    eager = augment.augment_together([images], SEED, jitter=0.1)[0]
    np.testing.assert_array_equal(image, eager)


def test_random_flip_shift_is_augment_together_without_jitter():
    images = random_images()
    np.testing.assert_array_equal(
        augment.random_flip_shift(images, SEED, max_shift=2),
        augment.augment_together([images], SEED, max_shift=2)[0])


def test_rejects_negative_settings():
    with pytest.raises(ValueError, match="max_shift"):
        augment.sample_transform(4, SEED, max_shift=-1)
