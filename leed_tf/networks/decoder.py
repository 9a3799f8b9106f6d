"""Table 4: the decoder, 8x8x512 code -> 128x128x3 image; inverts the encoder.

Table 4 (BN = batch normalisation; "up" = 2x nearest-neighbour Upsample)::

    Conv2d 512 3/1/1 BN ReLU                    8 x 8
    up                                          16 x 16
    Conv2d 256 3/1/1 BN ReLU  (x4)              16 x 16
    up                                          32 x 32
    Conv2d 128 3/1/1 BN ReLU  (x4)              32 x 32
    up                                          64 x 64
    Conv2d 64 3/1/1 BN ReLU   (x2)              64 x 64
    up                                          128 x 128
    Conv2d 64 3/1/1 BN ReLU                     128 x 128
    Conv2d 3 3/1/1 - -                          128 x 128

Notes:
  The last conv has no activation, as in the table; images are in [-1, 1]
  and the editor clips to that range when it writes pixels.
"""

from __future__ import annotations

import keras

from leed_tf.networks.layers import ConvBlock, PatchPath, code_pools, scaled

# Each entry is a row: an int is a Conv2d 3/1/1 BN ReLU of that many
# channels, "up" is an Upsample. The final 3-channel conv is added apart.
TABLE_4 = (512, "up", 256, 256, 256, 256, "up", 128, 128, 128, 128, "up", 64, 64, "up", 64)


@keras.saving.register_keras_serializable(package="leed_tf")
class Decoder(keras.Model):
    """Decoder (Table 4). Input ``[B, 8, 8, 512 * width]``; output ``[B, 128, 128, 3]``.

    ``code_stride=8`` (a deviation, the encoder's counterpart) takes 16x16
    codes and drops the first upsample; the convs stay Table 4's.

    ``patch_path=True`` (a deviation, the encoder's counterpart) adds a
    linear path to the image: a 1x1 conv from each code cell to its
    ``code_stride``-pixel patch (``layers.PatchPath``).
    """

    def __init__(self, width: float = 1.0, code_stride: int = 16, patch_path: bool = False, **kwargs):
        super().__init__(**kwargs)
        skipped_ups = TABLE_4.count("up") - code_pools(code_stride, "Decoder")
        self.width, self.code_stride, self.patch_path = width, code_stride, patch_path
        self.body = []
        for i, row in enumerate(TABLE_4):
            if row == "up" and TABLE_4[:i].count("up") < skipped_ups:
                continue
            if row == "up":
                self.body.append(keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}"))
            else:
                self.body.append(ConvBlock(scaled(row, width), 3, 1, 1, "BN", "ReLU", name=f"conv{i}"))
        self.to_image = ConvBlock(3, 3, 1, 1, "-", "-", name="to_image")
        self.patches = (PatchPath(code_stride, scaled(512, width), "decode", name="patch_path")
                        if patch_path else None)

    def call(self, x, training=None):
        code = x
        for layer in self.body:
            x = layer(x, training=training) if isinstance(layer, ConvBlock) else layer(x)
        image = self.to_image(x)
        return image if self.patches is None else image + self.patches(code)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "code_stride": self.code_stride,
                "patch_path": self.patch_path}
