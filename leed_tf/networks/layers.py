"""Small building blocks shared by the networks of the six tables."""

from __future__ import annotations

import keras
import tensorflow as tf

from leed_tf.config import CODE_STRIDES


def code_pools(code_stride: int, owner: str) -> int:
    """How many 2x poolings (or upsamplings) a ``code_stride`` means: 4 for
    Table 3's 16, 3 for 8. ``owner`` names the network in the error.

    Raises:
      ValueError: for a stride not in ``config.CODE_STRIDES``.
    """
    if code_stride not in CODE_STRIDES:
        raise ValueError(f"{owner} code_stride must be one of {CODE_STRIDES}, got {code_stride!r}.")
    return code_stride.bit_length() - 1


@keras.saving.register_keras_serializable(package="leed_tf")
class PatchPath(keras.layers.Layer):
    """The linear patch path of ``model.patch_path`` (not in the paper).

    ``direction="encode"``: the image's ``stride x stride`` patches, each
    flattened (``space_to_depth``), through a learned 1x1 conv to the code's
    channels: ``[B, S, S, 3] -> [B, S/stride, S/stride, C]``.
    ``direction="decode"``: the inverse form, a 1x1 conv from the code to
    ``stride * stride * 3`` numbers per cell, laid out as pixels
    (``depth_to_space``): ``[B, S/stride, S/stride, C] -> [B, S, S, 3]``.
    Added to Table 3's and Table 4's outputs, the two make the auto-encoder
    start from a per-patch linear code, like a patch embedding.
    """

    def __init__(self, stride: int, channels: int, direction: str, **kwargs):
        super().__init__(**kwargs)
        if direction not in ("encode", "decode"):
            raise ValueError(f"PatchPath direction must be 'encode' or 'decode', got {direction!r}.")
        self.stride, self.channels, self.direction = stride, channels, direction
        out = channels if direction == "encode" else stride * stride * 3
        self.project = keras.layers.Conv2D(out, 1, name="project")

    def build(self, input_shape):
        shape = list(input_shape)
        if self.direction == "encode":
            shape[1:] = [None, None, self.stride * self.stride * shape[-1]]
        self.project.build(tuple(shape))

    def call(self, x):
        if self.direction == "encode":
            return self.project(tf.nn.space_to_depth(x, self.stride))
        return tf.nn.depth_to_space(self.project(x), self.stride)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "channels": self.channels,
                "direction": self.direction}


def scaled(channels: int, width: float) -> int:
    """Scales a table's channel count by ``width`` (at least one channel)."""
    return max(1, int(round(channels * width)))


def instance_norm(name: str | None = None) -> keras.layers.Layer:
    """Affine instance normalisation: per-image, per-channel statistics.

    ``GroupNormalization`` with one group per channel is instance norm; it
    always normalises with the image's own statistics, at test time too.
    """
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def batch_norm(name: str | None = None) -> keras.layers.Layer:
    """Batch normalisation with PyTorch's BatchNorm2d defaults (momentum 0.1
    there is 0.9 here), synchronized over ``tf.distribute`` replicas."""
    return SyncBatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


@keras.saving.register_keras_serializable(package="leed_tf")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """``BatchNormalization`` whose training statistics are the global batch's.

    With several replicas, mean and variance are computed over every
    replica's rows, in two passes as ``tf.nn.moments`` does: the mean, then
    the mean squared deviation from it. Keras' own ``synchronized=True``
    computes ``E[x^2] - E[x]^2``, which cancels digits in float32: on LEED's
    tiny test networks it moved a loss by 1 % against one device. With one
    replica (the default strategy) this is ``BatchNormalization`` exactly.
    """

    def _moments(self, inputs, mask):
        context = tf.distribute.get_replica_context()
        if mask is not None or context is None or context.num_replicas_in_sync == 1:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(inputs), axes)), inputs.dtype)
        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [tf.reduce_sum(inputs, axes), count])
        mean = total / count
        # As tf.nn.moments: the variance's gradient does not flow through the mean.
        squares = tf.reduce_sum(tf.square(inputs - tf.stop_gradient(mean)), axes)
        variance = context.all_reduce(tf.distribute.ReduceOp.SUM, squares) / count
        return mean, variance


def normalization(kind: str, name: str | None = None) -> keras.layers.Layer | None:
    """Returns the normalisation layer of a table's "Normalization" column."""
    if kind == "-":
        return None
    if kind == "IN":
        return instance_norm(name)
    if kind == "BN":
        return batch_norm(name)
    raise ValueError(f"Unknown normalization {kind!r}; expected '-', 'IN' or 'BN'.")


def activation(kind: str, leaky_slope: float, name: str | None = None) -> keras.layers.Layer | None:
    """Returns the activation of a table's "Activation" column."""
    if kind == "-":
        return None
    if kind == "ReLU":
        return keras.layers.ReLU(name=name)
    if kind == "LeakyReLU":
        return keras.layers.LeakyReLU(negative_slope=leaky_slope, name=name)
    raise ValueError(f"Unknown activation {kind!r}; expected '-', 'ReLU' or 'LeakyReLU'.")


def padding(kernel: int, stride: int, pad: int) -> str:
    """Maps a table's PyTorch (kernel, stride, padding) to Keras padding.

    'same' equals PyTorch's symmetric padding whenever ``kernel - stride ==
    2 * pad`` (3/1/1 and 4/2/1 here); 'valid' is padding 0.
    """
    if pad == 0:
        return "valid"
    if kernel - stride == 2 * pad or (stride == 1 and kernel == 2 * pad + 1):
        return "same"
    raise ValueError(f"No Keras padding matches kernel={kernel}, stride={stride}, padding={pad}.")


class ConvBlock(keras.layers.Layer):
    """One row of a table: Conv2d, then optional normalisation and activation.

    Args:
      filters: Output channels (already scaled by width).
      kernel: Kernel size.
      stride: Stride.
      pad: The table's PyTorch padding.
      norm: '-', 'IN' or 'BN'.
      act: '-', 'ReLU' or 'LeakyReLU'.
      leaky_slope: Negative slope of LeakyReLU.
      use_bias: Whether the convolution has a bias.
    """

    def __init__(self, filters, kernel, stride=1, pad=0, norm="-", act="-",
                 leaky_slope=0.2, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel, self.stride, self.pad = filters, kernel, stride, pad
        self.norm_kind, self.act_kind, self.leaky_slope = norm, act, leaky_slope
        self.use_bias = use_bias
        self.conv = keras.layers.Conv2D(filters, kernel, strides=stride,
                                        padding=padding(kernel, stride, pad),
                                        use_bias=use_bias, name="conv")
        self.norm = normalization(norm, name="norm")
        self.act = activation(act, leaky_slope, name="act")

    def call(self, x, training=None):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        if self.act is not None:
            x = self.act(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel=self.kernel, stride=self.stride,
                      pad=self.pad, norm=self.norm_kind, act=self.act_kind,
                      leaky_slope=self.leaky_slope, use_bias=self.use_bias)
        return config
