"""Runs the training stages in order inside one run folder (its layout:
``leed_tf.run_folder``)."""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from leed_tf.config import Config
from leed_tf.data import images as images_lib
from leed_tf.data import sources
from leed_tf.data.records import NEUTRAL, FaceSet
from leed_tf.model import LeedNetworks
from leed_tf.networks import encoder as encoder_lib
from leed_tf.run_folder import STAGES, RunFolder, has_neutralizer, stages_of, write_atomically, write_json
from leed_tf.training import distribute, losses, pairs
from leed_tf.training.stages import (VALIDATION_OUTPUTS, AutoencoderTrainer, LeedTrainer, NeutralizerTrainer,
                                     ValidationBatch)

VALIDATION_PAIRS = 64
# Model settings that shape only LEED's own networks (X, I) or its outputs:
# the neutralizer and the auto-encoder do not depend on them.
LEED_ONLY_MODEL_SETTINGS = ("code_skips", "residual_base")


def prepare_run_dir(config: Config, run_dir: str, write: bool = True) -> Config:
    """Writes ``config`` into ``run_dir``, or checks it against the saved one.

    Architecture and data settings of an existing run cannot change (its
    checkpoints would no longer fit); training settings may (e.g. more
    epochs, another strategy or precision). The settings of LEED's own
    networks (``LEED_ONLY_MODEL_SETTINGS``) may change too while the run has
    no LEED checkpoint, so a finished auto-encoder can be reused by
    ``--stages=leed`` with another editor.

    Args:
      config: The settings of this training run.
      run_dir: The run folder.
      write: Write the config (the chief); other workers only check it.

    Raises:
      ValueError: naming every changed architecture or data setting.
    """
    if write:
        os.makedirs(run_dir, exist_ok=True)
    path = RunFolder(run_dir).config_path
    if os.path.exists(path):
        saved = Config.load(path)
        editor_free = not os.path.exists(RunFolder(run_dir).checkpoint_dir("leed"))
        changed = [f"{section}.{key}: {old!r} -> {getattr(getattr(config, section), key)!r}"
                   for section in ("model", "data")
                   for key, old in dataclasses.asdict(getattr(saved, section)).items()
                   if _comparable(getattr(getattr(config, section), key)) != _comparable(old)
                   and not (section == "model" and key in LEED_ONLY_MODEL_SETTINGS and editor_free)]
        if changed:
            raise ValueError(f"{run_dir} holds a run with other architecture/data settings; "
                             f"use a new --run_dir or the saved settings. Changed: {'; '.join(changed)}.")
    if write:
        config.save(path)
    return config


def _comparable(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def _match_domains(config: Config, face_set: FaceSet) -> None:
    """Sizes the neutralizer's domains to the data set's expression names."""
    names = face_set.expression_names
    if has_neutralizer(config):
        if NEUTRAL not in names:
            raise ValueError(f"The neutralizer needs a '{NEUTRAL}' expression, but the data set has "
                             f"only {', '.join(names)}.")
        config.model.num_expressions = len(names)
        config.model.neutral_index = names.index(NEUTRAL)


def load_encoder_weights(config: Config, nets: LeedNetworks) -> bool:
    """Loads ImageNet VGG-19 weights when asked or cached; returns whether loaded."""
    choice = config.encoder_weights
    if choice.lower() == "none":
        return False
    if config.model.width != 1.0 or config.model.encoder_norm != "none":
        if choice:
            raise ValueError(f"--encoder_weights needs Table 3's encoder, --width=1.0 and --encoder_norm=none "
                             f"(got {config.model.width}, {config.model.encoder_norm}).")
        return False
    try:
        path = encoder_lib.load_vgg19_weights(nets.encoder, choice)
    except FileNotFoundError:
        if choice:
            raise
        logging.info("No ImageNet VGG-19 weights in the Keras cache; the encoder is trained from scratch.")
        return False
    print(f"Encoder initialised from ImageNet VGG-19 weights: {path}")
    return True


def neutral_faces(nets: LeedNetworks, images: np.ndarray, cache_path: str, batch_size: int = 32,
                  write: bool = True) -> np.ndarray:
    """The neutralizer's faces of ``images`` (uint8), computed once and cached
    (``write``: by the chief)."""
    if os.path.exists(cache_path):
        cached = np.load(cache_path)
        if cached.shape == images.shape:
            return cached
    neutralize = tf.function(nets.neutralize)
    batches = (images_lib.scale_to_unit(tf.constant(images[i:i + batch_size]))
               for i in range(0, len(images), batch_size))
    out = np.concatenate([images_lib.to_uint8(np.asarray(neutralize(batch))) for batch in batches])
    if write:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        write_atomically(cache_path, lambda f: np.save(f, out))
    return out


def _validation_batch(face_set: FaceSet, neutrals: np.ndarray, seed: int) -> ValidationBatch:
    inputs, references = sources.validation_pairs(face_set, VALIDATION_PAIRS, seed)
    return ValidationBatch(face_set.images[inputs], neutrals[inputs], face_set.images[references],
                           neutrals[references], sources.ground_truth(face_set, inputs, references),
                           face_set.expressions[inputs])


def _neutralizer_validation(face_set: FaceSet, config: Config, count: int = 32) -> ValidationBatch:
    """Held-out expressive faces for the neutralizer's grid and metrics; their
    real neutral photos where the data set has them (the metrics' truth)."""
    expressive = np.flatnonzero(face_set.expressions != config.model.neutral_index)
    rows = expressive[np.linspace(0, len(expressive) - 1, min(count, len(expressive))).astype(int)]
    faces = face_set.images[rows]
    indices = face_set.neutral_indices()[rows]
    neutrals = face_set.images[indices] if np.all(indices >= 0) else None
    return ValidationBatch(faces, faces if neutrals is None else neutrals, faces, faces,
                           labels=face_set.expressions[rows], ground_truth=neutrals)


def evaluate_edits(nets: LeedNetworks, autoencoder_decoder, validation: ValidationBatch) -> dict:
    """PSNR and L1 against the ground truth of LEED and the two baselines,
    each edit in the validation's output forms (``VALIDATION_OUTPUTS``)."""
    if validation.ground_truth is None:
        return {}
    unit = lambda x: images_lib.scale_to_unit(tf.constant(x))  # noqa: E731
    truth = unit(validation.ground_truth)
    images = [unit(validation.input), unit(validation.input_neutral), unit(validation.reference),
              unit(validation.reference_neutral)]
    methods = {"copy_input": images[0]}
    for output in VALIDATION_OUTPUTS:
        suffix = "" if output == "decoded" else "_" + output
        methods["feature_arithmetic" + suffix] = nets.feature_arithmetic(
            *images, decoder=autoencoder_decoder, output=output)
        methods["leed" + suffix] = nets.edit(*images, output=output)
    results = {}
    for name, edits in methods.items():
        edits = tf.clip_by_value(edits, -1.0, 1.0)
        results[name] = {"psnr": float(tf.reduce_mean(losses.psnr(edits, truth))),
                         "l1": float(losses.l1_loss(edits, truth))}
    return results


def default_stages(config: Config, run_dir: str) -> list[str]:
    """Every stage whose finished marker is missing, in order."""
    return RunFolder(run_dir).unfinished(stages_of(config))


def train(config: Config, run_dir: str, stages: list[str] | None = None,
          max_steps: int | None = None) -> dict:
    """Trains the requested stages (default: the missing ones) in order.

    Args:
      config: The run's settings, ``strategy`` and ``precision`` included.
      run_dir: The run folder (created, or resumed).
      stages: Stages to train; earlier stages must then have checkpoints.
      max_steps: Stop each trained stage at this step (interrupted runs, tests).

    Returns:
      A summary: per-stage results and, on synthetic data, the final
      validation metrics of LEED and of both baselines.
    """
    return train_networks(config, run_dir, stages, max_steps)[0]


def train_networks(config: Config, run_dir: str, stages: list[str] | None = None,
                   max_steps: int | None = None) -> tuple[dict, LeedNetworks]:
    """``train``, also returning the trained networks (for callers that keep
    using them in the same process)."""
    # First: thread counts and MultiWorkerMirroredStrategy must be set before
    # TensorFlow runs anything.
    if config.deterministic:
        if config.strategy != "default":
            raise ValueError(f"deterministic=True is supported with the default strategy only, not "
                             f"{config.strategy!r} (its single-threaded runtime is untested with collectives).")
        distribute.make_deterministic()
    strategy = distribute.make_strategy(config.strategy)
    with distribute.precision_policy(config.precision):
        return _train(config, run_dir, stages, max_steps, strategy)


def _train(config, run_dir, stages, max_steps, strategy) -> tuple[dict, LeedNetworks]:
    start = time.time()
    chief = distribute.is_chief(strategy)
    folder = RunFolder(run_dir)
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = sources.load_splits(config.data, config.model.image_size,
                                             cache_dir=folder.cache_dir)
    _match_domains(config, train_set)
    prepare_run_dir(config, run_dir, write=chief)
    stages = default_stages(config, run_dir) if stages is None else list(stages)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"Unknown stages {unknown}; expected a subset of {STAGES}.")
    print(f"Data: {len(train_set)} training faces of {len(train_set.subject_names)} subjects, "
          f"{len(val_set)} validation faces of {len(val_set.subject_names)} held-out subjects.")
    print(f"Stages to train: {', '.join(stages) or 'none (all finished)'}")
    if strategy.num_replicas_in_sync > 1:
        print(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas, "
              f"{'chief' if chief else 'worker'}; batch sizes are global.")

    with strategy.scope():
        nets = LeedNetworks(config.model)
    imagenet = load_encoder_weights(config, nets)
    summary = {"run_dir": run_dir, "stages": {}}

    def run_or_restore(trainer, name):
        if name in stages:
            summary["stages"][name] = trainer.fit(max_steps)
        elif not trainer.restore():
            raise FileNotFoundError(f"Stage {name!r} has no checkpoint in {run_dir}; train it first "
                                    f"(--stages={name}).")
        return trainer

    # A subset of stages ends after its last stage: later stages are neither
    # trained nor restored (they may not exist yet).
    last = max((STAGES.index(name) for name in stages), default=len(STAGES) - 1)

    def finish():
        summary["seconds"] = time.time() - start
        if chief:
            write_json(folder.metrics_path, summary)
        print_summary(summary)
        return summary, nets

    stargan = has_neutralizer(config)
    if stargan:
        run_or_restore(NeutralizerTrainer(config, run_dir, nets, train_set.images, train_set.expressions,
                                          _neutralizer_validation(val_set, config), strategy), "neutralizer")
    if last <= STAGES.index("neutralizer"):
        if not stargan:
            print("No neutralizer to train: this run takes its neutral faces from the data set "
                  "(neutral_source=dataset).")
        return finish()
    if stargan:
        cache = folder.cache_dir
        train_neutrals = neutral_faces(nets, train_set.images, os.path.join(cache, "neutrals_train.npy"),
                                       write=chief)
        val_neutrals = neutral_faces(nets, val_set.images, os.path.join(cache, "neutrals_validation.npy"),
                                     write=chief)
    else:
        train_neutrals, val_neutrals = sources.real_neutrals(train_set), sources.real_neutrals(val_set)
    validation = _validation_batch(val_set, val_neutrals, config.seed)

    run_or_restore(AutoencoderTrainer(config, run_dir, nets, train_set.images, train_neutrals, validation,
                                      train_encoder=not imagenet, strategy=strategy), "autoencoder")
    # The baseline keeps the auto-encoder's decoder; LEED fine-tunes its own.
    baseline_decoder = nets.decoder_copy()
    if "leed" in stages or (last == STAGES.index("leed")
                            and folder.is_finished("leed")):
        groups = pairs.group_ids(train_set.subjects, train_set.poses, train_set.gazes)
        run_or_restore(LeedTrainer(config, run_dir, nets, train_set.images, train_neutrals, validation,
                                   strategy, groups=groups), "leed")
        summary["validation"] = evaluate_edits(nets, baseline_decoder, validation)
    return finish()


def print_summary(summary: dict) -> None:
    print(f"Finished in {summary['seconds'] / 60:.1f} min; run folder {summary['run_dir']}")
    results = summary.get("validation")
    if results:
        print("Validation edits against the ground truth (held-out identities):")
        print(f"  {'method':<20} {'PSNR dB':>8} {'L1':>8}")
        for name, values in results.items():
            print(f"  {name:<20} {values['psnr']:>8.2f} {values['l1']:>8.4f}")
