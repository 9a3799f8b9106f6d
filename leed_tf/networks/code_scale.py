"""Per-channel statistics of the frozen encoder's codes (no table of the seed).

The encoder's codes are large and uneven: after auto-encoder training at the
synthetic default their channels have a spread of about 85 and the
expression displacements ``d = z - n`` about 5. X, I, the code critic and Q
are initialised for inputs of unit scale, so LEED feeds them standardised
codes and scales I's output back to the displacements' scale:

  e     = X(d / s_d)
  z_out = n + alpha * s_d * I([(n - m) / s, e])
  C(z)  = critic((z - m) / s)

with ``m``, ``s`` the codes' per-channel mean and standard deviation and
``s_d`` the displacements' per-channel standard deviation, measured once on
the training set when the LEED stage starts (then frozen in its checkpoint).
An affine per-channel change of code coordinates leaves feature arithmetic
``n_in + z_ref - n_ref`` unchanged; only the learned networks see new units.
Before they are measured the statistics are the identity (``m = 0``, ``s = 1``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="leed_tf")
class CodeScale(keras.Model):
    """Non-trainable per-channel ``mean``, ``std`` (codes) and
    ``displacement_std`` (``z - n``) of a ``channels``-channel code."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(channels,), initializer="ones", trainable=False, name="std")
        self.displacement_std = self.add_weight(shape=(channels,), initializer="ones", trainable=False,
                                                name="displacement_std")

    def measure(self, codes: np.ndarray, neutral_codes: np.ndarray, epsilon: float = 1e-3) -> dict:
        """Sets the statistics from ``[N, H, W, C]`` codes of faces and of
        their neutral faces; returns them as numpy arrays."""
        codes = np.asarray(codes, np.float64)
        displacements = codes - np.asarray(neutral_codes, np.float64)
        axes = (0, 1, 2)
        stats = {"mean": codes.mean(axes), "std": codes.std(axes) + epsilon,
                 "displacement_std": displacements.std(axes) + epsilon}
        for name, value in stats.items():
            getattr(self, name).assign(value.astype(np.float32))
        return stats

    def reset(self) -> None:
        """Back to the identity statistics (``m = 0``, ``s = s_d = 1``)."""
        self.mean.assign(np.zeros(self.channels, np.float32))
        self.std.assign(np.ones(self.channels, np.float32))
        self.displacement_std.assign(np.ones(self.channels, np.float32))

    def standardize(self, code):
        """``(z - m) / s``."""
        return (code - ops.cast(self.mean, code.dtype)) / ops.cast(self.std, code.dtype)

    def to_units(self, displacement):
        """``d / s_d``: a displacement in X's input units."""
        return displacement / ops.cast(self.displacement_std, displacement.dtype)

    def from_units(self, residual):
        """``s_d * r``: I's output back in code units."""
        return residual * ops.cast(self.displacement_std, residual.dtype)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
