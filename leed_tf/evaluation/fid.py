"""Fréchet Inception Distance on InceptionV3 pool features (docs/design.md section 5).

FID (Heusel et al., 2017, https://arxiv.org/abs/1706.08500) is the Fréchet
distance between Gaussians fitted to the 2048-d global-average-pool features
of two image sets: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

The ImageNet weights come from Keras' local file
``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``, given by path or
found in the Keras cache (``$KERAS_HOME/models``, ``~/.keras/models``,
``/tmp/.keras/models``); nothing is ever downloaded. Tests build the network
with random weights (``weights=None``), which keeps the distance's properties
(0 for a set against itself, growing with corruption) but not its scale.

Notes:
  Images are resized to ``input_size`` (Inception's 299 by default; any size
  from 75 works, e.g. for fast tests) with bilinear interpolation, from
  [-1, 1], which is exactly the range Keras' ``inception_v3.preprocess_input``
  produces. Reference implementations (pytorch-fid, TTUR) use the same pool
  features but their own resize, so absolute values differ slightly from
  theirs; compare FIDs computed by this module only.
"""

from __future__ import annotations


import keras
import numpy as np
import tensorflow as tf

from leed_tf.data.images import as_unit_images
from leed_tf import weights

INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_INPUT_SIZE = 299
MIN_INPUT_SIZE = 75  # keras.applications.InceptionV3's smallest input.
FEATURE_DIM = 2048


def inception_search_paths() -> list[str]:
    """Where Keras caches ``INCEPTION_NOTOP_FILE`` (see ``leed_tf.weights``)."""
    return weights.keras_cache_paths(INCEPTION_NOTOP_FILE)


def find_inception_weights(path: str = "") -> str:
    """Returns the path of the InceptionV3 notop weights file.

    Args:
      path: An explicit file; when empty the Keras cache is searched.

    Raises:
      FileNotFoundError: naming the file needed and every place looked in.
    """
    return weights.find_weights_file(
        INCEPTION_NOTOP_FILE, path,
        f"InceptionV3 weights not found. FID needs Keras' file {INCEPTION_NOTOP_FILE} (from "
        f"keras.applications.InceptionV3(include_top=False, weights='imagenet'), about 84 MB).",
        "Copy it to one of those places or pass its path with --fid_weights; --nofid skips FID.")


def build_inception(weights: str | None = "", input_size: int = INCEPTION_INPUT_SIZE) -> keras.Model:
    """InceptionV3 without its classifier, average-pooled to 2048 features.

    Args:
      weights: A path to ``INCEPTION_NOTOP_FILE``; ``""`` to look in the Keras
        cache; ``None`` for random initial weights (tests only: such
        features are not the FID's).
      input_size: Side of the network's input, at least 75.

    Raises:
      FileNotFoundError: the weights file is missing (see ``find_inception_weights``).
      ValueError: ``input_size`` below 75.
    """
    if input_size < MIN_INPUT_SIZE:
        raise ValueError(f"InceptionV3 needs inputs of at least {MIN_INPUT_SIZE} pixels, got {input_size}.")
    path = None if weights is None else find_inception_weights(weights)
    return keras.applications.InceptionV3(include_top=False, weights=path, pooling="avg",
                                          input_shape=(input_size, input_size, 3))


class InceptionFeatures:
    """Pool features of image batches, ``float64 [N, 2048]``.

    Args:
      model: A network from ``build_inception`` (its input size is used).
      batch_size: Images per forward pass.
    """

    def __init__(self, model: keras.Model, batch_size: int = 32):
        self.model = model
        self.batch_size = batch_size
        size = int(model.input_shape[1])
        self._forward = tf.function(
            lambda x: model(tf.image.resize(x, (size, size), method="bilinear"), training=False),
            reduce_retracing=True)

    def __call__(self, images) -> np.ndarray:
        """Features of faces in [-1, 1] (or ``uint8``), ``[N, H, W, 3]``."""
        images = np.asarray(images)
        out = [self._forward(tf.constant(as_unit_images(images[i:i + self.batch_size]))).numpy()
               for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, FEATURE_DIM))


def frechet_distance(features_a, features_b) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets.

    ``tr((S_a S_b)^(1/2))`` is computed without a matrix square root of a
    non-symmetric product: with centred features ``A`` (``n_a x d``) and
    ``B``, the non-zero eigenvalues of ``S_a S_b`` are the squared singular
    values of ``A B^T / sqrt((n_a - 1)(n_b - 1))``, so the trace is that
    matrix's nuclear norm (an ``n_a x n_b`` SVD: cheap for the small sets
    of an evaluation). For sets larger than the feature dimension the
    symmetric form ``eigvalsh(S_a^(1/2) S_b S_a^(1/2))`` is cheaper and used
    instead. Both are exact, and a set against itself gives 0 up to rounding.

    Args:
      features_a: ``[n_a, d]``, ``n_a >= 2``.
      features_b: ``[n_b, d]``, ``n_b >= 2``.

    Raises:
      ValueError: fewer than two samples, or different feature sizes.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"Expected two [n, d] feature sets of one d, got {a.shape} and {b.shape}.")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(a)} and {len(b)}.")
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    a, b = a - a.mean(0), b - b.mean(0)
    scale_a, scale_b = 1.0 / (len(a) - 1), 1.0 / (len(b) - 1)
    trace_a, trace_b = np.sum(a * a) * scale_a, np.sum(b * b) * scale_b
    if len(a) * len(b) <= a.shape[1] ** 2:
        cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() * np.sqrt(scale_a * scale_b)
    else:
        values, vectors = np.linalg.eigh(a.T @ a * scale_a)
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        product = root @ (b.T @ b * scale_b) @ root
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(product), 0.0, None)).sum()
    return float(mean_term + trace_a + trace_b - 2.0 * cross)


def fid(images_a, images_b, features: InceptionFeatures) -> float:
    """FID between two image sets (``[N, H, W, 3]`` in [-1, 1] or ``uint8``)."""
    return frechet_distance(features(images_a), features(images_b))
