"""Learning-rate schedule of the seed: constant, then linear decay to 0."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="leed_tf")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``initial`` for ``constant_steps``, then linearly to 0 over ``decay_steps``.

    The seed: lr 1e-4 for the first 50 epochs, then linear decay to 0 over
    another 50. With ``decay_steps == 0`` the rate stays constant.
    """

    def __init__(self, initial: float, constant_steps: int, decay_steps: int):
        self.initial = float(initial)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.decay_steps <= 0:
            return ops.full((), self.initial, "float32")
        remaining = (self.constant_steps + self.decay_steps - step) / float(self.decay_steps)
        return self.initial * ops.clip(remaining, 0.0, 1.0)

    def get_config(self):
        return {"initial": self.initial, "constant_steps": self.constant_steps,
                "decay_steps": self.decay_steps}


def epoch_schedule(initial: float, epochs: int, decay_epochs: int, steps_per_epoch: int):
    """The schedule for ``epochs`` epochs whose last ``decay_epochs`` decay to 0."""
    if not 0 <= decay_epochs <= epochs:
        raise ValueError(f"decay_epochs must be in [0, epochs={epochs}], got {decay_epochs}.")
    return ConstantThenLinearDecay(initial, (epochs - decay_epochs) * steps_per_epoch,
                                   decay_epochs * steps_per_epoch)
