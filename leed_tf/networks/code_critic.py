"""Table 2: the critic D on codes, real ``z_ref`` against edited ``z_out``.

Table 2::

    Layer   Output          Channel  Kernel  Stride  Padding  Norm  Activation
    Conv2d  256 x 8 x 8     256      1       1       0        IN    LeakyReLU
    Conv2d  512 x 4 x 4     512      4       2       1        IN    LeakyReLU
    Conv2d  1024 x 2 x 2    1024     4       2       1        IN    LeakyReLU
    Conv2d  1024 x 1 x 1    1024     2       2       0        -     -

Notes:
  The 1x1x1024 output is averaged to one Wasserstein score per code
  (docs/design.md section 1). Instance norm inside a WGAN-GP critic keeps the
  per-sample gradient penalty well defined (no batch statistics).
"""

from __future__ import annotations

import keras
from keras import ops

from leed_tf.networks.layers import ConvBlock, scaled

TABLE_2 = (
    (256, 1, 1, 0, "IN", "LeakyReLU"),
    (512, 4, 2, 1, "IN", "LeakyReLU"),
    (1024, 4, 2, 1, "IN", "LeakyReLU"),
    (1024, 2, 2, 0, "-", "-"),
)


@keras.saving.register_keras_serializable(package="leed_tf")
class CodeCritic(keras.Model):
    """Wasserstein critic on codes (Table 2).

    Input: ``[B, 8, 8, 512 * width]``. Output: ``[B]`` scores.
    """

    def __init__(self, width: float = 1.0, leaky_slope: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.width, self.leaky_slope = width, leaky_slope
        self.blocks = [
            ConvBlock(scaled(c, width), k, s, p, norm, act, leaky_slope, name=f"conv{i + 1}")
            for i, (c, k, s, p, norm, act) in enumerate(TABLE_2)
        ]

    def call(self, x, training=None):
        for block in self.blocks:
            x = block(x, training=training)
        return ops.mean(x, axis=(1, 2, 3))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "leaky_slope": self.leaky_slope}
