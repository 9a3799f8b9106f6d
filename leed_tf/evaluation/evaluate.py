"""One call evaluates a run folder: ``scripts/evaluate.py`` is this function.

Writes into ``<run_dir>/eval/`` (or ``out_dir``)::

    metrics.json        every number (see synthetic_eval.py / real_eval.py)
    results.md          Markdown tables: all methods (and, on synthetic data, the pairs
                        whose target is not neutral), per expression, per pose
    chart_*.png         bar charts of the metrics
    fig2_triplets.png   input | reference | LEED (the seed's Fig. 2)
    comparison.png      every method side by side on the same pairs
    fig3_expressions.png  inputs x expressions (the seed's Fig. 3)
    loss_curves.png     training losses from the TensorBoard logs
    classifiers/        expression (and identity) classifiers, trained on
                        first use and reused (``classifier_dir``)
"""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np

from leed_tf.evaluation import fid as fid_lib
from leed_tf.evaluation import identity as identity_lib
from leed_tf.evaluation import report
from leed_tf.evaluation.classifiers import ClassifierSettings, ImageClassifier, load_or_train
from leed_tf.evaluation.figures import write_figures
from leed_tf.evaluation.methods import restore_run
from leed_tf.evaluation.real_eval import evaluate_real
from leed_tf.evaluation.synthetic_eval import evaluate_synthetic
from leed_tf.run_folder import RunFolder, write_atomically

PROTOCOLS = ("auto", "synthetic", "real")
IDENTITY_EMBEDDINGS = ("auto", "dlib", "none")
METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.md"


def evaluate_run(run_dir: str, *, out_dir: str | None = None, classifier_dir: str | None = None,
                 protocol: str = "auto", classifier_settings: ClassifierSettings | None = None,
                 max_pairs: int | None = None, batch_size: int = 32, seed: int = 0, fid: bool = True,
                 fid_weights: str = "", fid_input_size: int = fid_lib.INCEPTION_INPUT_SIZE,
                 inception: keras.Model | None = None, identity_embedding: str = "auto",
                 identity_pairs: int = 200, figures: bool = True, command: str | None = None,
                 log=print) -> dict:
    """Evaluates every method on a trained run and writes the results.

    Args:
      run_dir: The run folder (config and stage checkpoints).
      out_dir: Where results go (default ``<run_dir>/eval``).
      classifier_dir: Folder of the ``expression/`` and ``identity/``
        classifiers (default ``<out_dir>/classifiers``); missing ones are
        trained there. Share one between runs on the same data (ablations).
      protocol: ``synthetic`` (ground truth), ``real`` (no ground truth: FID,
        dlib) or ``auto`` (synthetic for synthetic runs).
      classifier_settings: How missing classifiers are trained.
      max_pairs: Evaluate a seeded subsample of this many pairs at most
        (default: all on synthetic data, 2000 on real data).
      batch_size: Pairs per batch.
      seed: Seed of references and subsamples.
      fid: Compute FID (real protocol).
      fid_weights: InceptionV3 notop weights file; empty: the Keras cache.
        A missing file stops the evaluation when given here and only skips
        FID (with the reason) when looked for in the cache.
      fid_input_size: Inception's input side (299; >= 75).
      inception: A ready network instead (tests: random weights).
      identity_embedding: ``dlib``, ``none`` or ``auto`` (dlib if installed).
      identity_pairs: Pairs measured with dlib, at most.
      figures: Write the figures and charts.
      command: The command line, for ``results.md``.
      log: Progress messages.

    Returns:
      The metrics (also in ``metrics.json``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if identity_embedding not in IDENTITY_EMBEDDINGS:
        raise ValueError(f"identity_embedding must be one of {IDENTITY_EMBEDDINGS}, got {identity_embedding!r}.")
    run = restore_run(run_dir)
    config = run.config
    synthetic = config.data.dataset == "synthetic" if protocol == "auto" else protocol == "synthetic"
    folder = RunFolder(run_dir)
    out_dir = out_dir or folder.eval_dir
    classifier_dir = classifier_dir or os.path.join(out_dir, "classifiers")
    cache_dir = folder.cache_dir
    size = config.model.image_size

    def classifier(kind):
        path = os.path.join(classifier_dir, kind)
        model, trained_now = load_or_train(kind, path, config.data, size, classifier_settings, cache_dir, log)
        return model, _classifier_summary(model, path, trained_now)

    summaries = {}
    expression, summaries["expression"] = classifier("expression")
    if synthetic:
        identity, summaries["identity"] = classifier("identity")
        evaluation = evaluate_synthetic(run, expression, identity, batch_size=batch_size, seed=seed,
                                        max_pairs=max_pairs, log=log)
    else:
        features, fid_reason = _fid_features(fid, fid_weights, fid_input_size, inception, batch_size, log)
        embedder, identity_reason = _embedder(identity_embedding, log)
        evaluation = evaluate_real(run, expression, features=features, fid_unavailable=fid_reason,
                                   embedder=embedder, identity_unavailable=identity_reason,
                                   identity_pairs=identity_pairs, batch_size=batch_size, seed=seed,
                                   max_pairs=2000 if max_pairs is None else max_pairs, log=log)
    metrics = evaluation.metrics
    metrics["classifiers"] = summaries
    metrics["command"] = command or f"python scripts/evaluate.py --run_dir={run_dir}"
    os.makedirs(out_dir, exist_ok=True)
    metrics["files"] = sorted(os.path.basename(p) for p in (
        write_figures(evaluation.examples, metrics, run_dir, out_dir) if figures else []))
    _write_json(_json_ready(metrics), os.path.join(out_dir, METRICS_FILE))
    with open(os.path.join(out_dir, RESULTS_FILE), "w") as f:
        f.write(report.markdown_report(metrics))
    log("\n".join(report.summary_tables(metrics) + report.neutralizer_table(metrics)).rstrip())
    log(f"Results in {out_dir}: {METRICS_FILE}, {RESULTS_FILE}, {len(metrics['files'])} figures.")
    return metrics


def _classifier_summary(classifier: ImageClassifier, path: str, trained_now: bool) -> dict:
    info = classifier.info
    return {"path": os.path.abspath(path), "trained_now": trained_now, "classes": len(classifier.class_names),
            **{k: info.get(k) for k in ("trained_on", "checked_on", "validation_accuracy", "seconds")}}


def _fid_features(enabled, weights, input_size, inception, batch_size, log):
    """Inception features for FID, or None and why not."""
    if not enabled:
        return None, "disabled (--nofid)"
    if inception is None:
        try:
            inception = fid_lib.build_inception(weights, input_size)
        except FileNotFoundError as e:
            if weights:
                raise
            log(f"FID skipped: {e}")
            return None, str(e)
    return fid_lib.InceptionFeatures(inception, batch_size), None


def _embedder(choice, log):
    """dlib's face embedder, or None and why not."""
    if choice == "none":
        return None, "disabled (--identity_embedding=none)"
    reason = identity_lib.available()
    if reason and choice == "auto":
        log(f"dlib identity similarity skipped: {reason}")
        return None, reason
    return identity_lib.FaceEmbedder(), None  # Raises with the install command if missing.


def _json_ready(value):
    """Plain JSON: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _write_json(value, path: str) -> None:
    write_atomically(path, lambda f: json.dump(value, f, indent=2, allow_nan=False), mode="w")
