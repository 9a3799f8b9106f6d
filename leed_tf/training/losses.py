"""Loss functions of the three training stages, as pure functions.

Naming follows TF-GAN: ``<kind>_generator_loss`` / ``<kind>_critic_loss``.
Every loss returns a float32 scalar averaged over the batch.

References:
  WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs", 2017,
    https://arxiv.org/abs/1704.00028.
  InfoNCE: van den Oord et al., "Representation Learning with Contrastive
    Predictive Coding", 2018, https://arxiv.org/abs/1807.03748.
  StarGAN: Choi et al., CVPR 2018, https://arxiv.org/abs/1711.09020.
"""

from __future__ import annotations

import tensorflow as tf

GRADIENT_NORM_EPSILON = 1e-10


def wasserstein_generator_loss(fake_scores):
    """Generator term of WGAN: ``-mean(C(fake))``.

    Args:
      fake_scores: Critic scores of generated samples, any shape.

    Returns:
      Scalar loss.
    """
    return -tf.reduce_mean(tf.cast(fake_scores, tf.float32))


def wasserstein_critic_loss(real_scores, fake_scores):
    """Critic term of WGAN: ``mean(C(fake)) - mean(C(real))``.

    Args:
      real_scores: Critic scores of real samples.
      fake_scores: Critic scores of generated samples.

    Returns:
      Scalar loss (the negated Wasserstein estimate).
    """
    return (tf.reduce_mean(tf.cast(fake_scores, tf.float32))
            - tf.reduce_mean(tf.cast(real_scores, tf.float32)))


def gradient_penalty(critic_fn, real, fake, mix):
    """WGAN-GP penalty ``mean((||grad C(x_hat)||_2 - 1)^2)`` at interpolates.

    Args:
      critic_fn: Maps a batch ``[B, ...]`` to scores; only the sum of its
        outputs per sample matters for the gradient.
      real: Real samples ``[B, ...]``.
      fake: Generated samples, same shape.
      mix: Uniform [0, 1) mixing factors, shape ``[B, 1, ..., 1]``:
        ``x_hat = real + mix * (fake - real)``.

    Returns:
      Scalar penalty, not yet multiplied by lambda_gp; float32 under every
      precision policy (the critic sees float32 interpolates and casts them
      to its compute dtype; their gradient comes back in float32).
    """
    real, fake, mix = (tf.cast(t, tf.float32) for t in (real, fake, mix))
    interpolates = real + mix * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        scores = critic_fn(interpolates)
    gradients = tf.cast(tape.gradient(scores, interpolates), tf.float32)
    squares = tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients)))
    norms = tf.sqrt(squares + GRADIENT_NORM_EPSILON)
    return tf.reduce_mean(tf.square(norms - 1.0))


def l1_loss(predictions, targets):
    """Mean absolute error."""
    return tf.reduce_mean(tf.abs(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)))


def l2_loss(predictions, targets):
    """Mean squared error."""
    return tf.reduce_mean(tf.square(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)))


PIXEL_LOSSES = {"l1": l1_loss, "l2": l2_loss}


def get_pixel_loss(name: str):
    """The pixel loss named ``name`` (``l1`` or ``l2``).

    Raises:
      ValueError: for an unknown name.
    """
    if name not in PIXEL_LOSSES:
        raise ValueError(f"Unknown pixel loss {name!r}; expected one of {sorted(PIXEL_LOSSES)}.")
    return PIXEL_LOSSES[name]


def info_nce_loss(queries, keys, temperature=0.1, valid=None):
    """Symmetric InfoNCE: each query must pick its own key among the batch's.

    ``log(B) - loss`` is a lower bound on the mutual information between the
    two views, so minimising the loss maximises the bound. Positives are on
    the diagonal; vectors are L2-normalised and compared by cosine / tau.

    Args:
      queries: ``[B, D]``.
      keys: ``[B, D]``, row i the positive of query i.
      temperature: Softmax temperature tau.
      valid: Optional ``[B]``, bool or 0/1: rows that take part. A row left
        out is neither a query nor anyone's negative (e.g. a neutral face,
        whose expression displacement is zero and has no direction); then
        ``log(#valid) - loss`` is the bound.

    Returns:
      Scalar loss, the mean of both directions' cross-entropies over the
      valid rows (0 if there is none).
    """
    queries = tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=-1)
    keys = tf.math.l2_normalize(tf.cast(keys, tf.float32), axis=-1)
    logits = tf.matmul(queries, keys, transpose_b=True) / temperature
    labels = tf.range(tf.shape(logits)[0])
    valid = tf.ones_like(labels, tf.bool) if valid is None else tf.cast(valid, tf.bool)
    weights = tf.cast(valid, tf.float32)
    # Excluded keys get a logit far below any cosine / tau: no probability mass.
    logits = tf.where(valid[None, :], logits, tf.fill(tf.shape(logits), -1e9))
    forward = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    logits = tf.where(valid[:, None], logits, tf.fill(tf.shape(logits), -1e9))
    backward = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.transpose(logits))
    return 0.5 * _masked_mean(forward + backward, weights)


def _masked_mean(values, weights):
    return tf.reduce_sum(weights * values) / tf.maximum(tf.reduce_sum(weights), 1.0)


# A face with no pixel further than half a grey level from its neutral face
# shows no expression (in [-1, 1] units; one grey level is 2 / 255).
NEUTRAL_TOLERANCE = 1.0 / 255.0


def shows_expression(images, neutrals, tolerance=NEUTRAL_TOLERANCE):
    """``bool [B]``: whether each face differs from its neutral face.

    The neutral faces of a data set are their own neutral photos: their
    expression displacement ``S(I) - S(N)`` is exactly zero, has no
    direction, and normalising it would multiply its gradient by 1e6.
    """
    difference = tf.abs(tf.cast(images, tf.float32) - tf.cast(neutrals, tf.float32))
    return tf.reduce_max(difference, axis=tf.range(1, tf.rank(difference))) > tolerance


def expression_displacement(image_embedding, neutral_embedding):
    """``u(I, N) = normalize(S(I) - S(N))``: an expression's direction in S-space
    (the zero vector for a zero displacement; see ``shows_expression``)."""
    difference = tf.cast(image_embedding, tf.float32) - tf.cast(neutral_embedding, tf.float32)
    return tf.math.l2_normalize(difference, axis=-1)


def siamese_generator_loss(edit_displacement, reference_displacement, valid=None):
    """Mean squared difference of two S-space displacements over the dims.

    Args:
      edit_displacement: ``u(I_out, N_in)``, ``[B, D]``.
      reference_displacement: ``u(I_ref, N_ref)``, ``[B, D]``.
      valid: Optional ``[B]``, bool or 0/1: the pairs that count, those whose
        reference shows an expression (a neutral reference's displacement
        has no direction to match).

    Returns:
      Scalar loss, the mean over the valid pairs (0 if there is none).
    """
    per_pair = tf.reduce_mean(tf.square(tf.cast(edit_displacement, tf.float32)
                                        - tf.cast(reference_displacement, tf.float32)), axis=-1)
    if valid is None:
        return tf.reduce_mean(per_pair)
    return _masked_mean(per_pair, tf.cast(valid, tf.float32))


def pair_l1(predictions, targets):
    """``[B]``: the mean absolute error of each row."""
    difference = tf.abs(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32))
    return tf.reduce_mean(tf.reshape(difference, [tf.shape(difference)[0], -1]), axis=1)


def matched_pair_loss(pair_errors, valid):
    """The matched-pair term: the mean of ``pair_errors`` (``pair_l1`` of the
    edits' codes against their matched targets' codes, ``training.pairs``)
    over the pairs that have a target (``valid``, ``[B]`` bool or 0/1);
    0 if none has."""
    return _masked_mean(tf.cast(pair_errors, tf.float32), tf.cast(valid, tf.float32))


def domain_classification_loss(labels, logits):
    """Softmax cross-entropy for single-label domains (StarGAN on RaFD).

    Args:
      labels: Integer domain ids ``[B]``.
      logits: ``[B, num_domains]``.
    """
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.cast(labels, tf.int32), tf.cast(logits, tf.float32)))


def psnr(images, targets, max_db=100.0):
    """Per-image PSNR in dB of images in [-1, 1] (range 2).

    Identical images give ``max_db`` rather than infinity, so means stay finite.
    """
    values = tf.image.psnr(tf.cast(images, tf.float32), tf.cast(targets, tf.float32), max_val=2.0)
    return tf.minimum(values, max_db)
