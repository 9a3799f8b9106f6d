"""Table 3: the encoder E, VGG-19 up to conv5_1 (128x128x3 -> 8x8x512).

Table 3 (every conv 3/1/1 with ReLU but the last; pools 2/2/0)::

    block1: Conv 64, Conv 64, MaxPool                      -> 64 x 64
    block2: Conv 128, Conv 128, MaxPool                    -> 32 x 32
    block3: Conv 256 x4, MaxPool                           -> 16 x 16
    block4: Conv 512 x4, MaxPool                           -> 8 x 8
    block5: Conv 512 (conv5_1, no activation)              -> 8 x 8

The layers carry Keras' VGG19 names (``block1_conv1`` ...), so ImageNet
weights load from Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``
with ``load_vgg19_weights``; the encoder then equals
``keras.applications.VGG19`` up to ``block5_conv1`` before its ReLU.

Notes:
  Images enter in [-1, 1] RGB. The encoder converts them to the "caffe"
  input of the ImageNet weights itself (0-255, BGR, ImageNet mean removed),
  so callers never preprocess.
"""

from __future__ import annotations


import keras
from keras import ops

from leed_tf import weights
from leed_tf.config import ENCODER_NORMS
from leed_tf.networks.layers import PatchPath, batch_norm, code_pools, scaled

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

# (block, convs, channels); each block but the last ends in a 2x2 max pool.
TABLE_3 = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 1, 512))


@keras.saving.register_keras_serializable(package="leed_tf")
class Encoder(keras.Model):
    """E (Table 3). Input ``[B, 128, 128, 3]`` in [-1, 1]; output ``[B, 8, 8, 512 * width]``.

    ``norm="batch"`` (a deviation, for training from scratch at small
    widths) puts a batch normalisation between each conv and its ReLU and
    He-initialises the convs; the convs and pools stay Table 3's.
    ``code_stride=8`` (a deviation) drops block 4's pool: codes are
    ``[B, 16, 16, 512 * width]``, the convs unchanged.

    ``patch_path=True`` (a deviation) adds a linear path to the output: the
    image's ``code_stride``-pixel patches through a 1x1 conv
    (``layers.PatchPath``), beside Table 3's convs.
    """

    def __init__(self, width: float = 1.0, norm: str = "none", code_stride: int = 16,
                 patch_path: bool = False, **kwargs):
        super().__init__(**kwargs)
        if norm not in ENCODER_NORMS:
            raise ValueError(f"Encoder norm must be one of {ENCODER_NORMS}, got {norm!r}.")
        pooled_blocks = code_pools(code_stride, "Encoder")  # blocks 1..log2(stride) end in a pool
        self.width, self.norm, self.code_stride, self.patch_path = width, norm, code_stride, patch_path
        self.body = []
        for block, convs, channels in TABLE_3:
            for i in range(1, convs + 1):
                last = block == TABLE_3[-1][0]
                normalised = norm == "batch" and not last
                self.body.append(keras.layers.Conv2D(
                    scaled(channels, width), 3, padding="same",
                    activation=None if last or normalised else "relu",
                    kernel_initializer="he_normal" if norm == "batch" else "glorot_uniform",
                    name=f"block{block}_conv{i}"))
                if normalised:
                    self.body += [batch_norm(f"block{block}_bn{i}"), keras.layers.ReLU(name=f"block{block}_relu{i}")]
            if block <= pooled_blocks:
                self.body.append(keras.layers.MaxPooling2D(2, name=f"block{block}_pool"))
        self.patches = (PatchPath(code_stride, scaled(512, width), "encode", name="patch_path")
                        if patch_path else None)

    def call(self, x, training=None):
        image = x
        x = (x + 1.0) * 127.5
        x = ops.flip(x, axis=-1) - ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=x.dtype)
        for layer in self.body:
            x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
        return x if self.patches is None else x + self.patches(image)

    @property
    def conv_layers(self) -> list[keras.layers.Conv2D]:
        return [layer for layer in self.body if isinstance(layer, keras.layers.Conv2D)]

    def get_config(self):
        return {**super().get_config(), "width": self.width, "norm": self.norm, "code_stride": self.code_stride,
                "patch_path": self.patch_path}


def vgg19_weights_search_paths() -> list[str]:
    """Where Keras caches ``VGG19_NOTOP_FILE`` (see ``leed_tf.weights``)."""
    return weights.keras_cache_paths(VGG19_NOTOP_FILE)


def find_vgg19_weights(path: str = "") -> str:
    """Returns the path of the ImageNet VGG-19 notop weights file.

    Args:
      path: An explicit file; when empty the Keras cache is searched.

    Raises:
      FileNotFoundError: naming the file needed and every place looked in.
    """
    return weights.find_weights_file(
        VGG19_NOTOP_FILE, path,
        f"ImageNet VGG-19 weights not found. The encoder needs Keras' file {VGG19_NOTOP_FILE} (from "
        f"keras.applications.VGG19(include_top=False, weights='imagenet'), about 80 MB).",
        "Copy it to one of those places or pass its path with --encoder_weights; pass "
        "--encoder_weights=none to train the encoder from scratch instead.")


def load_vgg19_weights(encoder: Encoder, path: str = "") -> str:
    """Loads ImageNet VGG-19 weights into a full-width ``encoder``.

    Reads the legacy Keras HDF5 layout of ``VGG19_NOTOP_FILE``: a group per
    layer name whose ``weight_names`` attribute lists kernel then bias.

    Returns:
      The path the weights were read from.

    Raises:
      FileNotFoundError: when the file is missing (see ``find_vgg19_weights``).
      ValueError: when the encoder is not full width or the file lacks a layer.
    """
    import h5py  # Keras' own dependency.

    if encoder.width != 1.0 or encoder.norm != "none":
        raise ValueError(f"ImageNet weights need Table 3's full-width encoder (width=1.0, norm='none'), "
                         f"got width={encoder.width}, norm={encoder.norm!r}.")
    path = find_vgg19_weights(path)
    encoder(ops.zeros((1, 32, 32, 3)))  # Creates the variables; any size works.
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            for layer in encoder.conv_layers:
                if layer.name not in root:
                    raise ValueError(f"{path} has no weights for layer {layer.name!r}; "
                                     f"is it {VGG19_NOTOP_FILE}?")
                group = root[layer.name]
                names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
                layer.set_weights([group[name][()] for name in names])
    except OSError as e:
        raise ValueError(f"Cannot read VGG-19 weights from {path}: {e}") from e
    return path
