"""The StarGAN neutralizer: generator and critic (docs/design.md section 2.A).

Follows the official implementation, yunjey/stargan ``model.py`` at commit
3c5aa6b57ff9e6171cc1d7d53801a8b561847b32:

Generator::

    concat[image, tiled one-hot label]          128 x 128 x (3 + c)
    Conv 7x7/1 64, IN, ReLU                     128 x 128
    Conv 4x4/2 128, IN, ReLU                    64 x 64
    Conv 4x4/2 256, IN, ReLU                    32 x 32
    6 x residual block (Conv 3x3 256, IN, ReLU, Conv 3x3 256, IN; + input)
    ConvT 4x4/2 128, IN, ReLU                   64 x 64
    ConvT 4x4/2 64, IN, ReLU                    128 x 128
    Conv 7x7/1 3, tanh                          128 x 128 x 3

Critic::

    6 x (Conv 4x4/2, LeakyReLU(0.01)): 64, 128, 256, 512, 1024, 2048 -> 2 x 2
    source head: Conv 3x3/1 1 -> 2 x 2 x 1 patch scores
    domain head: Conv 2x2 (image_size / 64) c -> c logits

With ``output="attention"`` (not in StarGAN; GANimation, Pumarola et al.
2018) the last conv gives 4 channels: a colour image ``C = tanh(c[:3])``
and a mask ``A = sigmoid(c[3])``, and the output is ``A * input + (1 - A) * C``.
The mask's bias starts at +3 (``A`` about 0.95, the kernel at 0), so the
generator starts as the identity mapping and learns only what a domain
changes.

Notes:
  Convolutions of the generator and of the critic's heads have no bias, as
  in the official code. Instance norm is affine and always uses per-image
  statistics (the official code tracks running statistics but evaluates in
  train mode too).
"""

from __future__ import annotations

import keras
from keras import ops

from leed_tf.networks.layers import instance_norm, scaled


def _conv_in_relu(filters, kernel, stride, name, transpose=False):
    conv_cls = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return [conv_cls(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"),
            instance_norm(name=f"{name}_norm"),
            keras.layers.ReLU(name=f"{name}_relu")]


@keras.saving.register_keras_serializable(package="leed_tf")
class ResidualBlock(keras.layers.Layer):
    """Conv-IN-ReLU-Conv-IN plus the input (StarGAN's ``ResidualBlock``)."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.layers_ = _conv_in_relu(filters, 3, 1, "a") + [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="b_conv"),
            instance_norm(name="b_norm")]

    def call(self, x):
        y = x
        for layer in self.layers_:
            y = layer(y)
        return x + y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def tile_label(images, labels):
    """Concatenates a ``[B, c]`` label, tiled over space, to ``[B, H, W, 3]`` images."""
    shape = ops.shape(images)
    tiled = ops.broadcast_to(ops.cast(labels, images.dtype)[:, None, None, :],
                             (shape[0], shape[1], shape[2], ops.shape(labels)[-1]))
    return ops.concatenate([images, tiled], axis=-1)


@keras.saving.register_keras_serializable(package="leed_tf")
class StarGANGenerator(keras.Model):
    """Generator. Inputs ``images [B, H, W, 3]`` in [-1, 1] and one-hot
    ``labels [B, c]``; output ``[B, H, W, 3]`` in [-1, 1]."""

    def __init__(self, width: float = 1.0, num_domains: int = 8, residual_blocks: int = 6,
                 output: str = "direct", **kwargs):
        super().__init__(**kwargs)
        if output not in ("direct", "attention"):
            raise ValueError(f"output must be 'direct' or 'attention', got {output!r}.")
        self.width, self.num_domains, self.residual_blocks = width, num_domains, residual_blocks
        self.output_form = output
        c = [scaled(n, width) for n in (64, 128, 256)]
        self.body = (_conv_in_relu(c[0], 7, 1, "in") + _conv_in_relu(c[1], 4, 2, "down1")
                     + _conv_in_relu(c[2], 4, 2, "down2")
                     + [ResidualBlock(c[2], name=f"res{i + 1}") for i in range(residual_blocks)]
                     + _conv_in_relu(c[1], 4, 2, "up1", transpose=True)
                     + _conv_in_relu(c[0], 4, 2, "up2", transpose=True)
                     + [keras.layers.Conv2D(3, 7, padding="same", use_bias=False, name="out_conv"),
                        keras.layers.Activation("tanh", name="out_tanh")])
        if output == "attention":
            self.mask_conv = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="zeros",
                                                 bias_initializer=keras.initializers.Constant(3.0),
                                                 name="mask_conv")

    def call(self, inputs, training=None, return_mask=False):
        """The translated images; with ``return_mask`` (attention output
        only) also the mask ``A [B, H, W, 1]``, the weight of the input."""
        images, labels = inputs
        x = tile_label(images, labels)
        for layer in self.body[:-2]:
            x = layer(x)
        colour = self.body[-1](self.body[-2](x))
        if self.output_form == "direct":
            if return_mask:
                raise ValueError("return_mask needs output='attention'.")
            return colour
        mask = ops.sigmoid(self.mask_conv(x))
        out = mask * ops.cast(images, colour.dtype) + (1.0 - mask) * colour
        return (out, mask) if return_mask else out

    def get_config(self):
        return {**super().get_config(), "width": self.width, "num_domains": self.num_domains,
                "residual_blocks": self.residual_blocks, "output": self.output_form}


@keras.saving.register_keras_serializable(package="leed_tf")
class StarGANCritic(keras.Model):
    """Critic. Input ``[B, H, W, 3]``; outputs patch scores
    ``[B, H/64, W/64, 1]`` and domain logits ``[B, c]``."""

    def __init__(self, width: float = 1.0, num_domains: int = 8, image_size: int = 128,
                 repeat_num: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.width, self.num_domains = width, num_domains
        self.image_size, self.repeat_num = image_size, repeat_num
        self.body = []
        for i in range(repeat_num):
            self.body += [keras.layers.Conv2D(scaled(64 * 2 ** i, width), 4, strides=2, padding="same",
                                              name=f"conv{i + 1}"),
                          keras.layers.LeakyReLU(negative_slope=0.01, name=f"lrelu{i + 1}")]
        self.source_head = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, name="source")
        self.domain_head = keras.layers.Conv2D(num_domains, image_size // 2 ** repeat_num,
                                               padding="valid", use_bias=False, name="domain")

    def call(self, x, training=None):
        for layer in self.body:
            x = layer(x)
        logits = self.domain_head(x)
        return self.source_head(x), ops.reshape(logits, (-1, self.num_domains))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "num_domains": self.num_domains,
                "image_size": self.image_size, "repeat_num": self.repeat_num}
