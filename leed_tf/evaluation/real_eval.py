"""Evaluation on real data sets (RaFD, CFEE, folders), which have no ground truth.

Protocol (docs/design.md section 5, StarGAN's for expression accuracy): every
labelled face of the held-out subjects is edited towards every other
expression, the reference being another held-out subject showing it (a
seeded subsample of ``max_pairs`` at most). Per method:

* ``expression_accuracy``: an expression classifier trained on the data
  set's *training* split recognises the reference's expression in the edit;
  its accuracy on the real held-out faces is reported next to it
  (``real_faces``);
* ``fid``: FID between all edits and all real held-out faces (InceptionV3
  pool features, ``leed_tf.evaluation.fid``), when the weights file is there;
* ``identity_distance`` / ``same_person``: dlib's 128-d embedding distance
  between edit and input, and the share under dlib's 0.6 threshold, on a
  seeded subset of ``identity_pairs`` pairs (dlib takes ~0.1 s a face on a
  CPU), when the optional ``eval`` extra is installed.
"""

from __future__ import annotations

import os
import time

import numpy as np

from leed_tf.data import sources
from leed_tf.data.records import FaceSet
from leed_tf.evaluation import fid as fid_lib
from leed_tf.evaluation import identity as identity_lib
from leed_tf.evaluation.classifiers import ImageClassifier
from leed_tf.evaluation.examples import Evaluation, ExampleCollector, add_expression_grid
from leed_tf.evaluation.methods import (METHODS, NEEDS_TRUTH, NEUTRAL_ANCHORED, EditMethods, RunNetworks,
                                        neutral_faces, run_summary)
from leed_tf.evaluation.pairs import breakdowns, edit_pairs, iterate_edits


def held_out_faces(run: RunNetworks) -> FaceSet:
    """The run's held-out (test) subjects' faces, decoded as in training."""
    return sources.load_splits(run.config.data, run.config.model.image_size,
                               cache_dir=os.path.join(run.run_dir, "cache"))[1]


def evaluate_real(run: RunNetworks, expression_classifier: ImageClassifier, *,
                  features: fid_lib.InceptionFeatures | None = None, fid_unavailable: str | None = None,
                  embedder: identity_lib.FaceEmbedder | None = None, identity_unavailable: str | None = None,
                  identity_pairs: int = 200, batch_size: int = 32, seed: int = 0, max_pairs: int | None = 2000,
                  num_examples: int = 8, log=print) -> Evaluation:
    """Every method on held-out pairs: expression accuracy, FID, identity.

    Args:
      run: The restored run.
      expression_classifier: Trained on the data set's training split.
      features: Inception features for FID; None skips FID.
      fid_unavailable: Why FID is skipped (reported).
      embedder: dlib embedder for identity similarity; None skips it.
      identity_unavailable: Why identity similarity is skipped (reported).
      identity_pairs: Pairs measured with dlib, at most.
      batch_size: Pairs per batch.
      seed: Seed of references and subsamples.
      max_pairs: Pairs evaluated, at most.
      num_examples: Example pairs kept for the figures.
      log: Progress messages.
    """
    start = time.time()
    faces = held_out_faces(run)
    neutrals = neutral_faces(run, faces, batch_size)
    pairs = edit_pairs(faces, seed, max_pairs)
    target_classes = expression_classifier.class_indices(
        [faces.expression_names[e] for e in pairs.targets], "expressions")
    # Real faces have no ground truth edit, so no ceiling of the auto-encoder.
    # The neutral-anchored forms are compared on synthetic faces only: towards
    # neutral they return the neutral photo, which FID and dlib would count.
    methods = EditMethods(run, len(faces.expression_names),
                          [m for m in METHODS if m not in NEEDS_TRUTH + NEUTRAL_ANCHORED])
    # dlib is slow (~0.1 s a face): identity is measured on a seeded subset.
    measured = np.zeros(0, np.int64)
    if embedder is not None:
        rng = np.random.default_rng(seed + 3)
        measured = np.sort(rng.choice(len(pairs), min(identity_pairs, len(pairs)), replace=False))
    log(f"Real-data evaluation: {len(pairs)} pairs of {len(faces.subject_names)} held-out subjects"
        f"{'' if features else ' (no FID)'}{f', dlib identity on {len(measured)}' if embedder else ''}; "
        f"methods: {', '.join(methods.methods)}.")
    input_descriptors = embedder.embed(faces.images[pairs.inputs[measured]])[0] if embedder else None
    real_features = features(faces.images) if features else None

    accuracy = {name: [] for name in methods.methods}
    identity = {name: [] for name in methods.methods}
    edit_features = {name: [] for name in methods.methods}
    collector = ExampleCollector(pairs, num_examples, seed)
    for positions, edits in iterate_edits(methods, faces, neutrals, pairs, batch_size):
        collector.add(positions, edits)
        in_batch = measured[(measured >= positions.start) & (measured < positions.stop)]
        for name, images in edits.items():
            accuracy[name].append(expression_classifier.predict(images) == target_classes[positions])
            if embedder is not None and len(in_batch):
                identity[name].append(embedder.embed(images[in_batch - positions.start])[0])
            if features is not None:
                edit_features[name].append(features(images))

    measured_pairs, entries = pairs.subset(measured), {}
    for name in methods.methods:
        entry = entries[name] = breakdowns(
            {"expression_accuracy": np.concatenate(accuracy[name]).astype(float)}, faces, pairs)
        if identity[name]:
            distances = identity_lib.identity_distances(np.concatenate(identity[name]), input_descriptors)
            _merge(entry, breakdowns(distances, faces, measured_pairs))
        if features is not None:
            entry["overall"]["fid"] = fid_lib.frechet_distance(real_features, np.concatenate(edit_features[name]))
    results = methods.results(entries)
    labelled = np.flatnonzero(faces.expressions >= 0)
    real_accuracy = expression_classifier.predict(faces.images[labelled]) == expression_classifier.class_indices(
        [faces.expression_names[e] for e in faces.expressions[labelled]], "expressions")
    metrics = {
        "protocol": "real",
        "run": run_summary(run),
        "pairs": {"count": len(pairs), "held_out_subjects": list(faces.subject_names),
                  "expressions": list(faces.expression_names), "seed": seed, "max_pairs": max_pairs,
                  "identity_pairs": int(len(measured)),
                  "description": "each held-out face edited towards every other expression; the reference "
                                 "is another held-out subject showing it"},
        "methods": results,
        "real_faces": {"description": "the expression classifier on the real held-out faces",
                       "overall": {"expression_accuracy": float(real_accuracy.mean())}},
        "fid": {"available": features is not None, "reason": fid_unavailable,
                "input_size": int(features.model.input_shape[1]) if features else None},
        "identity": {"available": embedder is not None, "reason": identity_unavailable,
                     "threshold": identity_lib.SAME_PERSON_DISTANCE},
        "seconds": round(time.time() - start, 1),
    }
    examples = collector.examples(faces, pairs, None)
    add_expression_grid(examples, run, faces, neutrals, seed, batch_size=batch_size)
    return Evaluation(metrics, examples)


def _merge(target: dict, extra: dict) -> None:
    """Adds ``extra``'s metric means into ``target``'s matching groups."""
    for section, values in extra.items():
        if section in ("overall", "expressive_targets"):  # means, not groups
            target[section].update(values)
            continue
        for group, means in values.items():
            target[section].setdefault(group, {}).update(means)
