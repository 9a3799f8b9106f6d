"""The loop every training stage shares: epochs, checkpoints, resume,
TensorBoard, progress, the non-finite-loss guard, and the distribution of
steps over replicas (``training.distribute``).

A stage subclasses ``StageTrainer`` and provides its checkpointed objects,
its per-epoch dataset, one training step (a Python function that calls the
stage's ``tf.function`` critic/generator steps in order and returns a dict of
named scalar tensors) and its validation images. Each ``tf.function`` step
makes the step's random draws for the global batch, then runs a replica
function on every replica (``run_replicas``, XLA-compiled with
``Config.jit_compile``); a replica function differentiates
``loss_for_gradients`` and applies ``apply_gradients``.

Crash safety: ``tf.train.CheckpointManager`` writes a checkpoint's data and
index files first (TF saves into ``ckpt-N_temp/`` and merges) and only then
rewrites the ``checkpoint`` state file, atomically (a temporary file
renamed), so a process killed at any moment leaves the state naming complete
checkpoints only. A checkpoint damaged later (a disk fault, a copy cut short)
is reported on resume and the previous one used.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from leed_tf.config import Config
from leed_tf.model import variables_by_path
from leed_tf.run_folder import STAGE_NETWORKS, RunFolder, write_json
from leed_tf.training import distribute
from leed_tf.training.schedules import epoch_schedule


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class StageTrainer:
    """Base of the three stages (neutralizer, auto-encoder, LEED).

    The trainer itself is built outside ``strategy.scope()``, its networks
    inside (it builds its optimizers there): its step counter and random
    generator stay plain variables, used in cross-replica context. Only the
    chief writes checkpoints, summaries, samples and the finished marker;
    every worker restores from the chief's checkpoints (``run_dir`` on a file
    system all workers share).

    Args:
      name: Stage name; checkpoints go to ``<run_dir>/<name>/``.
      run_dir: The run folder.
      config: The run's settings (seed, logging and checkpoint intervals,
        precision, jit_compile).
      num_examples: Training examples per epoch.
      batch_size: Examples per step (the global batch, over every replica).
      epochs: Epochs of the stage.
      strategy: The ``tf.distribute`` strategy its networks were built
        under; default: the current one.
    """

    name = "stage"

    def __init__(self, name: str, run_dir: str, config: Config, num_examples: int, batch_size: int,
                 epochs: int, strategy: tf.distribute.Strategy | None = None):
        if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
            raise ValueError("Build trainers outside strategy.scope() (their networks inside it).")
        self.name = name
        self.run_dir = run_dir
        self.folder = RunFolder(run_dir)
        self.stage_dir = self.folder.stage_dir(name)
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = config.seed
        self.log_every, self.image_every = config.log_every, config.image_every
        self.checkpoint_every = config.checkpoint_every
        self.checkpoint_seconds = 60.0 * config.checkpoint_minutes
        self.precision, self.jit_compile = config.precision, config.jit_compile
        self.strategy = strategy or tf.distribute.get_strategy()
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Workers must save at the same steps, and their clocks disagree.
            self.checkpoint_seconds = math.inf
        self.is_chief = distribute.is_chief(self.strategy)
        distribute.check_jit_compile(self.strategy, self.jit_compile)
        replicas = self.strategy.num_replicas_in_sync
        if batch_size % replicas:
            raise ValueError(f"Stage {name}: the batch size {batch_size} is global and must be a "
                             f"multiple of the {replicas} replicas.")
        self.steps_per_epoch = num_examples // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"Stage {name}: {num_examples} training examples are fewer than "
                             f"one batch of {batch_size}; lower the batch size or add data.")
        self.total_steps = self.steps_per_epoch * epochs
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_step")
        self.rng = tf.random.Generator.from_seed(self.seed)
        self._xla_steps = {}

    # -- to be provided by each stage -------------------------------------
    def checkpoint_objects(self) -> dict:
        """Networks, optimizers and anything else a resume must restore."""
        raise NotImplementedError

    def network_variables(self) -> dict:
        """The stage's networks (``STAGE_NETWORKS``) as checkpointable dicts."""
        return {name: variables_by_path(getattr(self.nets, name)) for name in STAGE_NETWORKS[self.name]}

    def prepare(self) -> None:
        """Work a fresh stage does once before its first step (a resumed
        stage finds the result in its checkpoint). Default: nothing."""

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

    def adam(self, schedule, beta_1, beta_2, variables):
        """Adam for ``variables``, built under the strategy (slots exist before
        a restore); wrapped in a dynamic ``LossScaleOptimizer`` for float16."""
        distribute.check_built_in_scope(self.strategy, variables)
        with self.strategy.scope():
            optimizer = distribute.SummedGradientsAdam(schedule, beta_1=beta_1, beta_2=beta_2)
            if self.precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(variables)
        return optimizer

    # -- one step on every replica -------------------------------------------
    def distribute(self, dataset: tf.data.Dataset):
        """``dataset``'s global batches, split over the replicas."""
        return distribute.distribute_batches(self.strategy, dataset, self.batch_size)

    def run_replicas(self, replica_step, *args) -> dict:
        """Runs ``replica_step(*args)`` on every replica (compiled with XLA when
        ``jit_compile``); returns its named scalars averaged over replicas.

        Call inside the stage's ``tf.function`` step, after the step's random
        draws. Each replica's values are its slice's means, or global-batch
        values, so their mean is the global batch's.
        """
        outputs = self.strategy.run(self._compiled(replica_step), args=args)
        if self.strategy.num_replicas_in_sync == 1:
            return outputs
        return {key: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for key, value in outputs.items()}

    def _compiled(self, replica_step):
        if not self.jit_compile:
            return replica_step  # Traced into the calling tf.function.
        name = replica_step.__name__
        if name not in self._xla_steps:
            self._xla_steps[name] = tf.function(replica_step, jit_compile=True)
        return self._xla_steps[name]

    @staticmethod
    def loss_for_gradients(loss, optimizer):
        """What a replica differentiates: its share of the global batch's loss,
        times the dynamic loss scale under float16. Call inside the tape."""
        return optimizer.scale_loss(distribute.replica_share(loss))

    @staticmethod
    def apply_gradients(optimizer, gradients: list, variables: list):
        """Sums a replica's gradients of ``loss_for_gradients`` over the
        replicas and applies them; returns the global batch gradient's norm."""
        gradients = distribute.sum_gradients(gradients)
        norm = tf.linalg.global_norm(gradients)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            norm = norm / optimizer.dynamic_scale  # The scale before this update.
        optimizer.apply(gradients, variables)
        return norm

    # -- checkpoints -------------------------------------------------------------
    def _checkpoint(self):
        if not hasattr(self, "_manager"):
            objects = dict(self.checkpoint_objects(), step=self.step, rng=self.rng)
            # A float16 run's optimizers carry a dynamic loss scale. It is saved
            # beside the optimizer's own state and restored only where present,
            # so a run may resume under another precision.
            loss_scales = {}
            for key, value in list(objects.items()):
                if isinstance(value, keras.optimizers.LossScaleOptimizer):
                    objects[key] = value.inner_optimizer
                    loss_scales[f"{key}_loss_scale"] = {"scale": value.dynamic_scale,
                                                        "steps": value.step_counter}
            self._restorable = tf.train.Checkpoint(**objects)
            self._loss_scales = tf.train.Checkpoint(**loss_scales) if loss_scales else None
            self._ckpt = tf.train.Checkpoint(**objects, **loss_scales)
            self._manager = tf.train.CheckpointManager(
                self._ckpt, self.folder.checkpoint_dir(self.name), max_to_keep=3)
        return self._ckpt, self._manager

    def restore(self) -> bool:
        """Restores the newest readable checkpoint; returns whether one existed.

        A damaged newest checkpoint is reported and the previous one used.

        Raises:
          RuntimeError: if checkpoints exist but none can be restored (rather
            than training afresh and sweeping them away).
        """
        _, manager = self._checkpoint()
        if self.is_chief:
            self._remove_interrupted_saves()
        errors = []
        for path in reversed(manager.checkpoints):
            try:
                self._restorable.restore(path).assert_existing_objects_matched()
            # A truncated data file fails in the checkpoint reader with IndexError.
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
                errors.append(f"{os.path.basename(path)}: {str(e).splitlines()[0]}")
                logging.warning("Checkpoint %s of stage %s cannot be read (%s); trying the previous one.",
                                path, self.name, errors[-1])
                continue
            if self._loss_scales is not None:
                self._loss_scales.restore(path).expect_partial()
            logging.info("Stage %s resumes from %s at step %d.", self.name, path, int(self.step))
            return True
        if errors:
            raise RuntimeError(f"Stage {self.name}: no checkpoint in {manager.directory} can be restored "
                               f"({'; '.join(errors)}). Move the folder away to train the stage afresh.")
        return False

    def _remove_interrupted_saves(self):
        """Deletes what saves killed mid-write left (``ckpt-N_temp`` folders);
        the state file never names them."""
        for leftover in glob.glob(os.path.join(self.folder.checkpoint_dir(self.name), "*_temp")):
            logging.info("Removing %s, left by an interrupted save.", leftover)
            shutil.rmtree(leftover, ignore_errors=True)

    def save(self) -> str | None:
        """Writes a checkpoint; returns its path (``None`` on non-chief workers).

        Every worker saves at the same steps (saving may take part in
        collective ops); only the chief's checkpoint is kept. Other workers
        write theirs into a temporary folder and delete it at once.
        """
        ckpt, manager = self._checkpoint()
        if self.is_chief:
            return manager.save(checkpoint_number=int(self.step))
        scratch = tempfile.mkdtemp(prefix=f"leed_{self.name}_worker_")
        try:
            ckpt.write(os.path.join(scratch, "ckpt"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None

    @property
    def finished(self) -> bool:
        return self.folder.is_finished(self.name)

    def _check_finite(self, values: dict):
        for key, value in values.items():
            if key.startswith("grad_norm") and self.precision == "mixed_float16":
                # Float16 gradients overflowed: the LossScaleOptimizer skipped
                # this update and lowered its loss scale.
                continue
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
            for key, optimizer in self.checkpoint_objects().items():
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                    tf.summary.scalar(f"loss_scale/{self.name}/{key}", optimizer.dynamic_scale)
            tf.summary.scalar(f"learning_rate/{self.name}", self.learning_rate())

    def _writer(self, split: str):
        if not self.is_chief:
            return tf.summary.create_noop_writer()
        return tf.summary.create_file_writer(self.folder.log_dir(split))

    def _write_images(self, writer):
        grid = self.validation_images()
        with writer.as_default(step=int(self.step)):
            tf.summary.image(f"images/{self.name}", grid[None])
        samples = self.folder.samples_dir
        os.makedirs(samples, exist_ok=True)
        keras.utils.save_img(os.path.join(samples, f"{self.name}.png"), grid, scale=False)

    def validation_metrics(self) -> dict:
        """Scalar validation metrics, computed with each image grid (optional)."""
        return {}

    def _validate(self, writer) -> dict:
        """Writes the validation grid and metrics (chief only); returns the metrics."""
        if not self.is_chief:
            return {}
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
        if self.is_chief:
            os.makedirs(self.stage_dir, exist_ok=True)
        restored = self.restore()
        if not restored:
            self.prepare()
        train_writer, val_writer = self._writer("train"), self._writer("validation")
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
            for batch in self.distribute(dataset):
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
        if int(self.step) > start_step or not restored:
            self.save()
        metrics = self._validate(val_writer)
        train_writer.flush()
        val_writer.flush()
        elapsed = time.time() - start_time
        summary = {"stage": self.name, "step": int(self.step), "total_steps": self.total_steps,
                   "seconds": elapsed, "losses": last, "metrics": metrics}
        if int(self.step) >= self.total_steps and self.is_chief:
            self._mark_finished(summary)
        done = int(self.step) - start_step
        print(f"[{self.name}] {done} steps in {elapsed:.1f} s"
              + (f" ({elapsed / done:.3f} s/step)" if done else ""), flush=True)
        return summary

    def _mark_finished(self, summary: dict):
        write_json(self.folder.finished_path(self.name), summary)
