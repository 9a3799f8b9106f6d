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


def test_l1_psnr_and_classification():
    a = tf.zeros([2, 4, 4, 3])
    assert float(losses.l1_loss(a, a + 0.5)) == pytest.approx(0.5)
    assert float(losses.l2_loss(a, a + 0.5)) == pytest.approx(0.25)
    # Error 0.2 on a range of 2: PSNR = 20 log10(2 / 0.2) = 20 dB.
    np.testing.assert_allclose(losses.psnr(a, a + 0.2).numpy(), [20.0, 20.0], rtol=1e-5)
    logits = tf.constant([[10.0, 0.0], [0.0, 10.0]])
    assert float(losses.domain_classification_loss([0, 1], logits)) < 1e-3
    assert float(losses.domain_classification_loss([1, 0], logits)) > 9.0
