"""Scalars read back from a run's TensorBoard event files.

Training writes ``<run_dir>/train`` (losses, learning rates, gradient norms)
and ``<run_dir>/validation`` (per-epoch metrics, image grids); a resumed run
adds files, and may write a step again. Records are read with
``tf.data.TFRecordDataset`` (``tf.compat.v1.train.summary_iterator`` is
deprecated); for a step written twice the later file wins.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from leed_tf.run_folder import LOG_DIRS
from absl import logging



def read_scalars(log_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar series in ``log_dir``'s event files.

    Args:
      log_dir: A folder of ``events.out.tfevents.*`` files.

    Returns:
      Tag -> (``steps [T]``, ``values [T]``), sorted by step; empty if the
      folder does not exist. A file cut short (e.g. by a running training)
      is read up to the cut, with a warning.
    """
    if not os.path.isdir(log_dir):
        return {}
    series: dict[str, dict[int, float]] = {}
    # Event file names start with their creation time, so name order is write order.
    for name in sorted(n for n in os.listdir(log_dir) if "tfevents" in n):
        path = os.path.join(log_dir, name)
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    scalar = _scalar(value)
                    if scalar is not None:
                        series.setdefault(value.tag, {})[int(event.step)] = scalar
        except tf.errors.DataLossError as e:
            logging.warning("Event file %s is cut short (%s); using what precedes the cut.", path,
                            str(e).splitlines()[0])
    out = {}
    for tag, points in sorted(series.items()):
        steps = np.asarray(sorted(points), np.int64)
        out[tag] = (steps, np.asarray([points[s] for s in steps], np.float64))
    return out


def _scalar(value) -> float | None:
    """The value of a scalar summary (TF2 tensor or TF1 simple_value), else None."""
    if value.HasField("tensor"):
        array = tf.make_ndarray(value.tensor)
        if array.size == 1 and np.issubdtype(array.dtype, np.number):
            return float(array.reshape(()))
        return None
    if value.HasField("simple_value"):
        return float(value.simple_value)
    return None


def run_scalars(run_dir: str) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``read_scalars`` of ``<run_dir>/train`` and ``<run_dir>/validation``."""
    return {name: read_scalars(os.path.join(run_dir, name)) for name in LOG_DIRS}
