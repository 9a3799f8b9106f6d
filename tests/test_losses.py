"""Loss functions on inputs with known answers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from leed_tf.training import losses


def test_gradient_penalty_of_linear_critic_is_nine_times_lambda():
    # C(x) = 2 * sum(x) has gradient 2 at each of 4 elements: norm 4, (4 - 1)^2 = 9.
    real = tf.random.normal([3, 2, 2, 1])
    fake = tf.random.normal([3, 2, 2, 1])
    mix = tf.random.uniform([3, 1, 1, 1])
    critic = lambda x: 2.0 * tf.reduce_sum(x, axis=[1, 2, 3])  # noqa: E731
    lambda_gp = 100.0
    penalty = lambda_gp * losses.gradient_penalty(critic, real, fake, mix)
    np.testing.assert_allclose(float(penalty), 9.0 * lambda_gp, rtol=1e-6)


def test_gradient_penalty_is_zero_for_unit_gradient():
    critic = lambda x: tf.reduce_sum(x, axis=[1, 2, 3]) / 2.0  # noqa: E731  gradient norm 1
    value = losses.gradient_penalty(critic, tf.zeros([2, 2, 2, 1]), tf.ones([2, 2, 2, 1]),
                                    tf.fill([2, 1, 1, 1], 0.5))
    assert float(value) < 1e-8


def test_wasserstein_losses():
    real, fake = tf.constant([1.0, 3.0]), tf.constant([0.0, -2.0])
    assert float(losses.wasserstein_critic_loss(real, fake)) == pytest.approx(-3.0)
    assert float(losses.wasserstein_generator_loss(fake)) == pytest.approx(1.0)


def test_info_nce_prefers_matched_pairs():
    x = tf.random.normal([8, 16], seed=1)
    matched = float(losses.info_nce_loss(x, x, temperature=0.1))
    shuffled = float(losses.info_nce_loss(x, tf.roll(x, 1, axis=0), temperature=0.1))
    assert matched < 0.1 < math.log(8) < shuffled
    # Uninformative keys give exactly log(B).
    same = tf.ones([8, 16])
    assert float(losses.info_nce_loss(same, same)) == pytest.approx(math.log(8), rel=1e-5)


def test_siamese_displacement_and_loss():
    u = losses.expression_displacement(tf.constant([[3.0, 4.0]]), tf.constant([[0.0, 0.0]]))
    np.testing.assert_allclose(u.numpy(), [[0.6, 0.8]], rtol=1e-6)
    assert float(losses.siamese_generator_loss(u, -u)) == pytest.approx((1.2 ** 2 + 1.6 ** 2) / 2)


def test_info_nce_leaves_out_invalid_rows():
    x = tf.random.normal([6, 16], seed=2)
    keys = x + 0.3 * tf.random.normal([6, 16], seed=3)
    valid = tf.constant([True, True, False, True, False, True])
    kept = tf.boolean_mask(x, valid), tf.boolean_mask(keys, valid)
    expected = float(losses.info_nce_loss(*kept))
    # Whatever the left-out rows hold (here a zero vector, a neutral face's
    # displacement), the loss is that of the valid rows alone ...
    garbage = tf.where(valid[:, None], x, tf.zeros_like(x))
    with tf.GradientTape() as tape:
        tape.watch(garbage)
        loss = losses.info_nce_loss(garbage, keys, valid=tf.cast(valid, tf.float32))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # ... and they receive no gradient.
    gradient = tape.gradient(loss, garbage).numpy()
    assert np.all(gradient[[2, 4]] == 0) and np.any(gradient[[0, 1, 3, 5]] != 0)
    assert float(losses.info_nce_loss(x, keys, valid=tf.zeros([6], tf.bool))) == 0.0


def test_shows_expression_within_half_a_grey_level():
    neutral = tf.zeros([3, 4, 4, 3])
    level = 2.0 / 255.0  # one grey level in [-1, 1]
    faces = tf.stack([neutral[0], neutral[1] + 0.4 * level,
                      tf.tensor_scatter_nd_update(neutral[2], [[1, 2, 0]], [level])])
    np.testing.assert_array_equal(losses.shows_expression(faces, neutral).numpy(), [False, False, True])


def test_siamese_generator_loss_over_valid_pairs():
    edit = tf.constant([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    reference = tf.constant([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])  # the last one neutral: u = 0
    # Pair 0: ((1-0)^2 + (0-1)^2) / 2 = 1; pair 1: 0; pair 2 left out.
    assert float(losses.siamese_generator_loss(edit, reference, valid=[1.0, 1.0, 0.0])) == pytest.approx(0.5)
    assert float(losses.siamese_generator_loss(edit, reference)) == pytest.approx(1.0)  # pair 2 counts: 2


def test_l1_psnr_and_classification():
    a = tf.zeros([2, 4, 4, 3])
    assert float(losses.l1_loss(a, a + 0.5)) == pytest.approx(0.5)
    assert float(losses.l2_loss(a, a + 0.5)) == pytest.approx(0.25)
    # Error 0.2 on a range of 2: PSNR = 20 log10(2 / 0.2) = 20 dB.
    np.testing.assert_allclose(losses.psnr(a, a + 0.2).numpy(), [20.0, 20.0], rtol=1e-5)
    logits = tf.constant([[10.0, 0.0], [0.0, 10.0]])
    assert float(losses.domain_classification_loss([0, 1], logits)) < 1e-3
    assert float(losses.domain_classification_loss([1, 0], logits)) > 9.0


def test_matched_pair_loss_counts_only_pairs_with_a_target():
    rng = np.random.default_rng(0)
    edits = tf.Variable(rng.normal(size=(4, 2, 2, 3)).astype(np.float32))
    targets = rng.normal(size=(4, 2, 2, 3)).astype(np.float32)
    valid = np.array([True, False, True, False])
    with tf.GradientTape() as tape:
        loss = losses.matched_pair_loss(losses.pair_l1(edits, targets), valid)
    expected = np.abs(edits.numpy() - targets)[valid].mean()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    gradient = tape.gradient(loss, edits).numpy()
    assert np.all(gradient[~valid] == 0) and np.all(gradient[valid] != 0)
    assert float(losses.matched_pair_loss(losses.pair_l1(edits, targets), np.zeros(4))) == 0.0
