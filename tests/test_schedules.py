"""The seed's schedule: 1e-4 for 50 epochs, then linear decay to 0 over 50."""

import pytest

from leed_tf.training.schedules import ConstantThenLinearDecay, epoch_schedule


def test_start_middle_end():
    schedule = epoch_schedule(1e-4, epochs=100, decay_epochs=50, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(1e-4)
    assert float(schedule(499)) == pytest.approx(1e-4)           # last constant step
    assert float(schedule(500)) == pytest.approx(1e-4)           # decay starts here
    assert float(schedule(750)) == pytest.approx(0.5e-4)         # halfway through the decay
    assert float(schedule(1000)) == pytest.approx(0.0, abs=1e-12)
    assert float(schedule(1200)) == pytest.approx(0.0, abs=1e-12)  # never negative


def test_no_decay_and_config_round_trip():
    schedule = epoch_schedule(2e-4, epochs=5, decay_epochs=0, steps_per_epoch=3)
    assert float(schedule(100)) == pytest.approx(2e-4)
    copy = ConstantThenLinearDecay(**schedule.get_config())
    assert float(copy(7)) == float(schedule(7))
    with pytest.raises(ValueError, match="decay_epochs"):
        epoch_schedule(1e-4, epochs=5, decay_epochs=6, steps_per_epoch=1)
