"""Table 6: the siamese network S, 128x128x3 image -> 1024-d embedding.

LEED asks that the expression displacement ``S(I_out) - S(N_in)`` of an edit
match the reference's ``S(I_ref) - S(N_ref)`` (docs/design.md section 2.C).

Table 6::

    Layer   Output          Channel  Kernel  Stride  Padding  Norm  Activation
    Conv2d  64 x 64 x 64    64       4       2       1        IN    LeakyReLU
    Conv2d  128 x 32 x 32   128      4       2       1        IN    LeakyReLU
    Conv2d  256 x 16 x 16   256      4       2       1        IN    LeakyReLU
    Conv2d  512 x 8 x 8     512      4       2       1        IN    LeakyReLU
    Conv2d  1024 x 4 x 4    1024     4       2       1        IN    LeakyReLU
    Conv2d  2048 x 2 x 2    1024     4       2       1        IN    LeakyReLU
    FC      1024            1024     -       -       -        -     -

Notes:
  The last conv's row disagrees with itself: Output Size 2048 x 2 x 2 but
  Channel 1024. We follow the Channel column (``siamese_last_channels``
  switches to 2048). The embedding size 1024 is not scaled by ``width``.
"""

from __future__ import annotations

import keras

from leed_tf.networks.layers import ConvBlock, scaled

TABLE_6_CONVS = (64, 128, 256, 512, 1024)


@keras.saving.register_keras_serializable(package="leed_tf")
class Siamese(keras.Model):
    """S (Table 6). Input ``[B, 128, 128, 3]`` in [-1, 1]; output ``[B, 1024]``."""

    def __init__(self, width: float = 1.0, leaky_slope: float = 0.2,
                 last_channels: int = 1024, embedding_dim: int = 1024, **kwargs):
        super().__init__(**kwargs)
        self.width, self.leaky_slope = width, leaky_slope
        self.last_channels, self.embedding_dim = last_channels, embedding_dim
        channels = TABLE_6_CONVS + (last_channels,)
        self.blocks = [
            ConvBlock(scaled(c, width), 4, 2, 1, "IN", "LeakyReLU", leaky_slope, name=f"conv{i + 1}")
            for i, c in enumerate(channels)
        ]
        self.flatten = keras.layers.Flatten()
        self.fc = keras.layers.Dense(embedding_dim, name="fc")

    def call(self, x, training=None):
        for block in self.blocks:
            x = block(x, training=training)
        return self.fc(self.flatten(x))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "leaky_slope": self.leaky_slope,
                "last_channels": self.last_channels, "embedding_dim": self.embedding_dim}
