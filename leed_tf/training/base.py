"""The loop every training stage shares: epochs, checkpoints, resume,
TensorBoard, progress and the non-finite-loss guard.

A stage subclasses ``StageTrainer`` and provides its checkpointed objects,
its per-epoch dataset, one training step (a Python function that calls the
stage's ``tf.function`` critic/generator steps in order and returns a dict of
named scalar tensors) and its validation images.
"""

from __future__ import annotations

import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from leed_tf.model import STAGE_NETWORKS, variables_by_path
from leed_tf.training.schedules import epoch_schedule

FINISHED_FILE = "finished.json"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class StageTrainer:
    """Base of the three stages (neutralizer, auto-encoder, LEED).

    Args:
      name: Stage name; checkpoints go to ``<run_dir>/<name>/``.
      run_dir: The run folder.
      num_examples: Training examples per epoch.
      batch_size: Examples per step.
      epochs: Epochs of the stage.
      seed: Seed of the stage's random generator and data order.
      log_every: Steps between scalar summaries.
      image_every: Steps between validations (image grid and metrics).
      checkpoint_every: Steps between checkpoints.
      checkpoint_minutes: Also checkpoint when this much time has passed
        since the last checkpoint (long steps on slow machines).
    """

    name = "stage"

    def __init__(self, name, run_dir, num_examples, batch_size, epochs, seed=0,
                 log_every=20, image_every=200, checkpoint_every=500, checkpoint_minutes=10.0):
        self.name = name
        self.run_dir = run_dir
        self.stage_dir = os.path.join(run_dir, name)
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.log_every, self.image_every, self.checkpoint_every = log_every, image_every, checkpoint_every
        self.checkpoint_seconds = 60.0 * checkpoint_minutes
        self.steps_per_epoch = num_examples // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"Stage {name}: {num_examples} training examples are fewer than "
                             f"one batch of {batch_size}; lower the batch size or add data.")
        self.total_steps = self.steps_per_epoch * epochs
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_step")
        self.rng = tf.random.Generator.from_seed(seed)

    # -- to be provided by each stage -------------------------------------
    def checkpoint_objects(self) -> dict:
        """Networks, optimizers and anything else a resume must restore."""
        raise NotImplementedError

    def network_variables(self) -> dict:
        """The stage's networks (``STAGE_NETWORKS``) as checkpointable dicts."""
        return {name: variables_by_path(getattr(self.nets, name)) for name in STAGE_NETWORKS[self.name]}

    def epoch_dataset(self, epoch: int) -> tf.data.Dataset:
        """The batches of ``epoch`` (seeded by the epoch for exact resumes)."""
        raise NotImplementedError

    def train_step(self, batch) -> dict:
        """One step on ``batch``; returns named scalar tensors."""
        raise NotImplementedError

    def validation_images(self) -> np.ndarray:
        """A uint8 grid ``[H, W, 3]`` of the fixed validation batch."""
        raise NotImplementedError

    def learning_rate(self) -> float:
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------
    def schedule(self, learning_rate, decay_epochs, updates_per_step=1.0):
        """The seed's lr schedule, in units of one optimizer's own updates."""
        steps = max(1, int(round(self.steps_per_epoch * updates_per_step)))
        return epoch_schedule(learning_rate, self.epochs, decay_epochs, steps)

    @staticmethod
    def adam(schedule, beta_1, beta_2, variables):
        optimizer = keras.optimizers.Adam(schedule, beta_1=beta_1, beta_2=beta_2)
        optimizer.build(variables)  # Slots exist before a restore.
        return optimizer

    def _checkpoint(self):
        if not hasattr(self, "_manager"):
            objects = dict(self.checkpoint_objects(), step=self.step, rng=self.rng)
            self._ckpt = tf.train.Checkpoint(**objects)
            self._manager = tf.train.CheckpointManager(
                self._ckpt, os.path.join(self.stage_dir, "checkpoints"), max_to_keep=3)
        return self._ckpt, self._manager

    def restore(self) -> bool:
        """Restores the newest readable checkpoint; returns whether one existed.

        A damaged newest checkpoint is reported and the previous one used.
        """
        ckpt, manager = self._checkpoint()
        for path in reversed(manager.checkpoints):
            try:
                ckpt.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError) as e:
                logging.warning("Checkpoint %s of stage %s cannot be read (%s); trying the previous one.",
                                path, self.name, str(e).splitlines()[0])
                continue
            logging.info("Stage %s resumes from %s at step %d.", self.name, path, int(self.step))
            return True
        return False

    def save(self) -> str:
        _, manager = self._checkpoint()
        return manager.save(checkpoint_number=int(self.step))

    @property
    def finished(self) -> bool:
        return os.path.exists(os.path.join(self.stage_dir, FINISHED_FILE))

    def _check_finite(self, values: dict):
        for key, value in values.items():
            if not math.isfinite(value):
                _, manager = self._checkpoint()
                kept = manager.latest_checkpoint or "none yet"
                raise NonFiniteLossError(
                    f"Stage {self.name}: loss {key!r} became {value} at step {int(self.step)}. "
                    f"Training stopped; the last good checkpoint ({kept}) is kept. Lower the "
                    f"learning rate or the loss weights, or check the data.")

    def _write_scalars(self, writer, values: dict):
        with writer.as_default(step=int(self.step)):
            for key, value in values.items():
                group = "gradients" if key.startswith("grad_norm") else "losses"
                tf.summary.scalar(f"{group}/{self.name}/{key}", value)
            tf.summary.scalar(f"learning_rate/{self.name}", self.learning_rate())

    def _write_images(self, writer):
        grid = self.validation_images()
        with writer.as_default(step=int(self.step)):
            tf.summary.image(f"images/{self.name}", grid[None])
        samples = os.path.join(self.run_dir, "samples")
        os.makedirs(samples, exist_ok=True)
        keras.utils.save_img(os.path.join(samples, f"{self.name}.png"), grid, scale=False)

    def validation_metrics(self) -> dict:
        """Scalar validation metrics, computed with each image grid (optional)."""
        return {}

    def _validate(self, writer) -> dict:
        """Writes the validation grid and metrics; returns the metrics."""
        self._write_images(writer)
        metrics = self.validation_metrics()
        if metrics:
            with writer.as_default(step=int(self.step)):
                for key, value in metrics.items():
                    tf.summary.scalar(f"metrics/{self.name}/{key}", value)
            print(f"\n[{self.name}] step {int(self.step)} validation: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
        return metrics

    def fit(self, max_steps: int | None = None) -> dict:
        """Trains to the end of the stage (or to ``max_steps``), resuming if possible.

        Checkpoints every ``checkpoint_every`` steps, every
        ``checkpoint_minutes`` and when it stops; validates every
        ``image_every`` steps and when it stops.

        Args:
          max_steps: Stop after this global step (for tests and interrupted runs).

        Returns:
          The last step's losses and validation metrics.
        """
        os.makedirs(self.stage_dir, exist_ok=True)
        self.restore()
        train_writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "train"))
        val_writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "validation"))
        last, start_time, start_step = {}, time.time(), int(self.step)
        last_save = start_time
        stop_at = self.total_steps if max_steps is None else min(max_steps, self.total_steps)
        print(f"[{self.name}] {self.epochs} epochs x {self.steps_per_epoch} steps, "
              f"batch {self.batch_size}, from step {start_step}", flush=True)
        while int(self.step) < stop_at:
            epoch, skip = divmod(int(self.step), self.steps_per_epoch)
            dataset = self.epoch_dataset(epoch).skip(skip).take(
                min(self.steps_per_epoch - skip, stop_at - int(self.step)))
            print(f"[{self.name}] epoch {epoch + 1}/{self.epochs}", flush=True)
            bar = keras.utils.Progbar(self.steps_per_epoch, unit_name="step")
            bar.update(skip)
            for batch in dataset:
                losses = self.train_step(batch)
                self.step.assign_add(1)
                last = {k: float(v) for k, v in losses.items()}
                self._check_finite(last)
                step = int(self.step)
                bar.update(step - epoch * self.steps_per_epoch,
                           [(k, v) for k, v in last.items() if not k.startswith("grad_norm")])
                if step % self.log_every == 0:
                    self._write_scalars(train_writer, last)
                if step % self.image_every == 0 and step < stop_at:
                    self._validate(val_writer)
                if step % self.checkpoint_every == 0 or time.time() - last_save > self.checkpoint_seconds:
                    self.save()
                    last_save = time.time()
        if int(self.step) > start_step or not self._checkpoint()[1].latest_checkpoint:
            self.save()
        metrics = self._validate(val_writer)
        train_writer.flush()
        val_writer.flush()
        elapsed = time.time() - start_time
        summary = {"stage": self.name, "step": int(self.step), "total_steps": self.total_steps,
                   "seconds": elapsed, "losses": last, "metrics": metrics}
        if int(self.step) >= self.total_steps:
            self._mark_finished(summary)
        done = int(self.step) - start_step
        print(f"[{self.name}] {done} steps in {elapsed:.1f} s"
              + (f" ({elapsed / done:.3f} s/step)" if done else ""), flush=True)
        return summary

    def _mark_finished(self, summary: dict):
        path = os.path.join(self.stage_dir, FINISHED_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(summary, f, indent=2)
        os.replace(path + ".tmp", path)
