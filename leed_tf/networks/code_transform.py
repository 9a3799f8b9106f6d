"""Table 1: the expression extractor X and the interpolator I.

X maps the expression displacement ``d = z - n`` of a reference (its code
minus its neutral face's code) to an expression code ``e``; I maps the
concatenation ``[n_in, e]`` to the residual added to the input's neutral code:
``z_out = n_in + alpha * I([n_in, e])``.

Table 1 (both networks; I's first conv sees 1024 input channels)::

    Layer   Output       Channel  Kernel  Stride  Padding  Norm  Activation
    Conv2d  512 x 8 x 8  512      3       1       1        -     LeakyReLU
    Conv2d  512 x 8 x 8  512      3       1       1        -     LeakyReLU
    Conv2d  512 x 8 x 8  512      3       1       1        -     -

Notes:
  The seed gives no LeakyReLU slope; ``ModelConfig.leaky_slope`` (0.2).
"""

from __future__ import annotations

import keras

from leed_tf.networks.layers import ConvBlock, scaled

# (channels, kernel, stride, padding, normalization, activation)
TABLE_1 = (
    (512, 3, 1, 1, "-", "LeakyReLU"),
    (512, 3, 1, 1, "-", "LeakyReLU"),
    (512, 3, 1, 1, "-", "-"),
)


@keras.saving.register_keras_serializable(package="leed_tf")
class CodeTransform(keras.Model):
    """Three 3x3 convs on 8x8 codes (Table 1): the body of X and of I.

    Input: ``[B, 8, 8, C_in]`` (X: 512, I: 1024 at full width).
    Output: ``[B, 8, 8, 512 * width]``.

    ``skip=True`` (``model.code_skips``, not in the paper) adds the input's
    last ``512 * width`` channels to the output and starts the last conv at
    zero: X starts as ``e = d`` and I as ``I([n, e]) = e``, so LEED starts
    from feature arithmetic, ``z_out = n_in + alpha * (z_ref - n_ref)``.
    """

    def __init__(self, width: float = 1.0, leaky_slope: float = 0.2, skip: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.width, self.leaky_slope, self.skip = width, leaky_slope, skip
        self.blocks = [
            ConvBlock(scaled(c, width), k, s, p, norm, act, leaky_slope, name=f"conv{i + 1}")
            for i, (c, k, s, p, norm, act) in enumerate(TABLE_1)
        ]
        if skip:
            self.blocks[-1].conv.kernel_initializer = keras.initializers.Zeros()

    def call(self, x, training=None):
        inputs = x
        for block in self.blocks:
            x = block(x, training=training)
        return x + inputs[..., -x.shape[-1]:] if self.skip else x

    def get_config(self):
        return {**super().get_config(), "width": self.width, "leaky_slope": self.leaky_slope, "skip": self.skip}


@keras.saving.register_keras_serializable(package="leed_tf")
class Extractor(CodeTransform):
    """X (Table 1): expression displacement ``d`` -> expression code ``e``."""


@keras.saving.register_keras_serializable(package="leed_tf")
class Interpolator(CodeTransform):
    """I (Table 1): ``concat[n_in, e]`` (1024 channels) -> code residual."""
