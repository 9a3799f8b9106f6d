"""Table 5: the regularizer Q, expression code -> 16-d projection.

Q's outputs of an expression code ``e_ref`` and of the code re-extracted from
the edit ``e'_out`` are matched by an InfoNCE bound on their mutual
information (docs/design.md section 2.C).

Table 5::

    Layer   Output       Channel  Kernel  Stride  Padding  Norm  Activation
    Conv2d  512 x 1 x 1  512      8       1       0        BN    LeakyReLU
    FC      128          128      -       -       -        BN    LeakyReLU
    FC      16           16       -       -       -        -     -

Notes:
  The 16-d output is not scaled by ``width``: it is the size of the space
  the mutual information is measured in, not a hidden width.
"""

from __future__ import annotations

import keras
from keras import ops

from leed_tf.networks.layers import ConvBlock, batch_norm, scaled


@keras.saving.register_keras_serializable(package="leed_tf")
class Regularizer(keras.Model):
    """Q (Table 5). Input ``[B, 8, 8, 512 * width]``; output ``[B, 16]``."""

    def __init__(self, width: float = 1.0, leaky_slope: float = 0.2,
                 output_dim: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.width, self.leaky_slope, self.output_dim = width, leaky_slope, output_dim
        self.conv = ConvBlock(scaled(512, width), 8, 1, 0, "BN", "LeakyReLU", leaky_slope, name="conv1")
        self.flatten = keras.layers.Flatten()
        self.fc1 = keras.layers.Dense(scaled(128, width), name="fc1")
        self.fc1_norm = batch_norm(name="fc1_norm")
        self.fc1_act = keras.layers.LeakyReLU(negative_slope=leaky_slope)
        self.fc2 = keras.layers.Dense(output_dim, name="fc2")

    def call(self, x, training=None):
        # An 8x8 code gives a 1x1 map (Table 5); a larger code (model.code_stride=8) is averaged to it.
        x = self.flatten(ops.mean(self.conv(x, training=training), axis=(1, 2), keepdims=True))
        x = self.fc1_act(self.fc1_norm(self.fc1(x), training=training))
        return self.fc2(x)

    def get_config(self):
        return {**super().get_config(), "width": self.width,
                "leaky_slope": self.leaky_slope, "output_dim": self.output_dim}
