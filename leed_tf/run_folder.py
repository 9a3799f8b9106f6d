"""The run folder: what a run writes where, and how it writes it.

Layout (docs/design.md, "Layout")::

    <run_dir>/config.json              resolved config (read back on resume)
    <run_dir>/<stage>/checkpoints/     tf.train.CheckpointManager, per stage
    <run_dir>/<stage>/finished.json    written when the stage completes
    <run_dir>/cache/                   neutral faces and codes, computed once
    <run_dir>/train/, validation/      TensorBoard event files
    <run_dir>/samples/<stage>.png      latest validation grid
    <run_dir>/metrics.json             final validation metrics
    <run_dir>/expression_bank.npz      expression codes by name (inference)
    <run_dir>/eval/                    scripts/evaluate.py's results

With several workers (``Config.strategy == "multi_worker"``) the run folder
is one folder every worker sees (a shared file system): the chief writes it,
every worker reads the chief's config and checkpoints. Every file is written
through ``write_atomically``, so a process killed meanwhile leaves the old
file or none, never half a file.

This module imports nothing else of ``leed_tf``: the config, the trainers,
the export and the evaluation all take their paths and stage lists from it.
"""

from __future__ import annotations

import json
import os
from typing import Callable

# The training stages, in order.
STAGES = ("neutralizer", "autoencoder", "leed")

# The networks each stage trains and checkpoints (``<stage>/checkpoints``).
STAGE_NETWORKS = {
    "neutralizer": ("neutralizer", "neutralizer_critic"),
    "autoencoder": ("encoder", "decoder"),
    "leed": ("code_scale", "extractor", "interpolator", "decoder", "critic", "regularizer", "siamese"),
}

# The networks inference restores from each stage's checkpoint (the decoder
# is the LEED stage's).
INFERENCE_NETWORKS = {
    "neutralizer": ("neutralizer",),
    "autoencoder": ("encoder",),
    "leed": ("code_scale", "extractor", "interpolator", "decoder"),
}

CONFIG_FILE = "config.json"
FINISHED_FILE = "finished.json"
METRICS_FILE = "metrics.json"
BANK_FILE = "expression_bank.npz"
LOG_DIRS = ("train", "validation")


def has_neutralizer(config) -> bool:
    """Whether a run (its ``Config``) trains a neutralizer: only with
    ``neutral_source=stargan``; otherwise real neutral faces stand in."""
    return config.data.neutral_source == "stargan"


def stages_of(config) -> list[str]:
    """The stages a run with ``config`` trains, in order."""
    return [s for s in STAGES if s != "neutralizer" or has_neutralizer(config)]


def write_atomically(path: str, write: Callable, mode: str = "wb") -> str:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames
    it to ``path``. The temporary's name holds the process id, so workers
    sharing a folder never share one. Returns ``path``."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json(path: str, value, indent: int = 2) -> str:
    """``value`` as JSON at ``path``, atomically."""
    return write_atomically(path, lambda f: json.dump(value, f, indent=indent), mode="w")


class RunFolder:
    """Paths and markers of one run folder (see the module docstring).

    Args:
      path: The run folder (need not exist yet).
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"RunFolder({self.path!r})"

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def config_path(self) -> str:
        return self.file(CONFIG_FILE)

    @property
    def metrics_path(self) -> str:
        return self.file(METRICS_FILE)

    @property
    def bank_path(self) -> str:
        return self.file(BANK_FILE)

    @property
    def cache_dir(self) -> str:
        return self.file("cache")

    @property
    def samples_dir(self) -> str:
        return self.file("samples")

    @property
    def eval_dir(self) -> str:
        return self.file("eval")

    def log_dir(self, split: str) -> str:
        """TensorBoard folder of ``split`` (``LOG_DIRS``)."""
        return self.file(split)

    def stage_dir(self, stage: str) -> str:
        return self.file(stage)

    def checkpoint_dir(self, stage: str) -> str:
        return self.file(stage, "checkpoints")

    def finished_path(self, stage: str) -> str:
        return self.file(stage, FINISHED_FILE)

    def is_finished(self, stage: str) -> bool:
        """Whether ``stage`` wrote its finished marker."""
        return os.path.exists(self.finished_path(stage))

    def unfinished(self, stages) -> list[str]:
        """The stages of ``stages`` without a finished marker, in order."""
        return [s for s in stages if not self.is_finished(s)]

    def has_config(self) -> bool:
        return os.path.exists(self.config_path)

    def require_config(self) -> str:
        """The config's path.

        Raises:
          FileNotFoundError: the folder holds no run (no ``config.json``).
        """
        if not self.has_config():
            raise FileNotFoundError(f"{self.path} is not a run folder (no {CONFIG_FILE}); train one "
                                    f"with python scripts/train.py --run_dir={self.path}.")
        return self.config_path
