"""Evaluation on synthetic faces, where every edit has a ground truth.

Protocol (docs/design.md section 5): the run's held-out identities, every face
(every expression and pose) edited towards every other expression, the
reference being another held-out identity showing it. The ground truth of a
pair is ``render(identity_input, expression_reference, intensity_reference,
pose_input)``, which the held-out set already holds as a real render.

Per method (``leed_tf.evaluation.methods``) and pair:

* ``psnr``, ``ssim``, ``l1`` against the ground truth, in [-1, 1];
* ``expression_accuracy``: the expression classifier (trained on the
  training identities' renders) says the reference's expression;
* ``identity_retention``: the identity classifier (trained on renders of
  every identity) says the input's identity.

Methods anchored at the input's neutral face (``NEUTRAL_ANCHORED``) are
averaged over the pairs whose target is not neutral (towards neutral their
edit is the real neutral photo, the ground truth itself); every method's
means over those pairs are under ``expressive_targets``.

The classifiers' scores on the ground-truth renders themselves, judged as
the edits are, are reported next to them (``ground_truth``): the best an
edit can get. Means are overall, per target expression and per input pose.
FID is not computed here: every edit has its own ground truth, a stronger
reference than a distribution (``real_eval`` computes FID).
"""

from __future__ import annotations

import time

import numpy as np

from leed_tf.data import sources
from leed_tf.data.records import NEUTRAL, FaceSet
from leed_tf.evaluation import metrics as metrics_lib
from leed_tf.evaluation.classifiers import ImageClassifier
from leed_tf.evaluation.examples import Evaluation, ExampleCollector, add_expression_grid
from leed_tf.evaluation.methods import NEUTRAL_ANCHORED, EditMethods, RunNetworks, neutral_faces, run_summary
from leed_tf.evaluation.pairs import Pairs, breakdowns, edit_pairs, expressive_targets, iterate_edits


def held_out_faces(run: RunNetworks) -> FaceSet:
    """The run's held-out identities, rendered as in training.

    Raises:
      ValueError: not a synthetic run.
    """
    if run.config.data.dataset != "synthetic":
        raise ValueError(f"The synthetic protocol needs a synthetic run; {run.run_dir} was trained on "
                         f"{run.config.data.dataset} (use the real-data protocol).")
    return sources.load_splits(run.config.data, run.config.model.image_size)[1]


def truth_indices(face_set: FaceSet, pairs: Pairs) -> np.ndarray:
    """Index of each pair's ground-truth render in ``face_set``, -1 if absent."""
    intensity = face_set.extras["intensity"]
    where = {(int(s), int(e), float(p), float(i)): n for n, (s, e, p, i) in
             enumerate(zip(face_set.subjects, face_set.expressions, face_set.poses, intensity))}
    return np.asarray([where.get((int(face_set.subjects[a]), int(face_set.expressions[b]),
                                  float(face_set.poses[a]), float(intensity[b])), -1)
                       for a, b in zip(pairs.inputs, pairs.references)], np.int64)


def ground_truths(face_set: FaceSet, pairs: Pairs) -> np.ndarray:
    """``uint8 [P, S, S, 3]``: looked up among the renders, rendered if absent."""
    found = truth_indices(face_set, pairs)
    truths = face_set.images[np.maximum(found, 0)].copy()
    missing = np.flatnonzero(found < 0)
    if len(missing):
        truths[missing] = sources.ground_truth(face_set, pairs.inputs[missing], pairs.references[missing])
    return truths


def neutralizer_quality(faces: FaceSet, neutrals: np.ndarray, expression_classifier: ImageClassifier,
                        identity_classifier: ImageClassifier) -> dict:
    """The neutralizer's faces of the held-out expressive faces against their
    real neutral renders: PSNR/SSIM (beside copying the input), the share the
    expression classifier calls neutral, and identity retention."""
    rows = np.flatnonzero(faces.expressions != faces.expression_names.index(NEUTRAL))
    truth = faces.images[faces.neutral_indices()[rows]]
    out = neutrals[rows]
    neutral_class = expression_classifier.class_indices([NEUTRAL] * len(rows), "expressions")
    identities = identity_classifier.class_indices([faces.subject_names[s] for s in faces.subjects[rows]],
                                                   "identities")
    scores = {name: metrics_lib.summarize(metrics_lib.image_metrics(images, truth))
              for name, images in (("neutralizer", out), ("copy_input", faces.images[rows]))}
    scores["neutralizer"].update(
        classified_neutral=float(np.mean(expression_classifier.predict(out) == neutral_class)),
        identity_retention=float(np.mean(identity_classifier.predict(out) == identities)))
    return {"faces": int(len(rows)), "description": "G_neu of each held-out expressive face against the "
            "real neutral render of its identity and pose", **scores}


def evaluate_synthetic(run: RunNetworks, expression_classifier: ImageClassifier,
                       identity_classifier: ImageClassifier, *, batch_size: int = 32, seed: int = 0,
                       max_pairs: int | None = None, num_examples: int = 8, log=print) -> Evaluation:
    """Every method on every held-out pair against the ground truth.

    Args:
      run: The restored run (``methods.restore_run``).
      expression_classifier: Its classes include the data set's expressions.
      identity_classifier: Its classes include the held-out subjects.
      batch_size: Pairs per batch.
      seed: Seed of the reference draw and subsample.
      max_pairs: Evaluate a seeded subsample of this many pairs at most.
      num_examples: Example pairs kept for the figures.
      log: Progress messages.

    Returns:
      The metrics (see the module docstring) and example images.
    """
    start = time.time()
    faces = held_out_faces(run)
    neutrals = neutral_faces(run, faces, batch_size)
    pairs = edit_pairs(faces, seed, max_pairs)
    truths = ground_truths(faces, pairs)
    target_classes = expression_classifier.class_indices(
        [faces.expression_names[e] for e in pairs.targets], "expressions")
    identity_classes = identity_classifier.class_indices(
        [faces.subject_names[s] for s in faces.subjects[pairs.inputs]], "identities")
    methods = EditMethods(run, len(faces.expression_names), with_truth=True)
    log(f"Synthetic evaluation: {len(pairs)} pairs of {len(faces.subject_names)} held-out identities; "
        f"methods: {', '.join(methods.methods)}.")

    def judged(images, positions):
        return {"expression_accuracy": expression_classifier.predict(images) == target_classes[positions],
                "identity_retention": identity_classifier.predict(images) == identity_classes[positions]}

    per_pair = {name: {} for name in methods.methods}
    collector = ExampleCollector(pairs, num_examples, seed)
    for positions, edits in iterate_edits(methods, faces, neutrals, pairs, batch_size, truths):
        collector.add(positions, edits)
        for name, images in edits.items():
            values = metrics_lib.image_metrics(images, truths[positions])
            values.update(judged(images, positions))
            for key, value in values.items():
                per_pair[name].setdefault(key, []).append(value)

    results = methods.results({
        name: breakdowns({k: np.concatenate(v).astype(float) for k, v in values.items()}, faces, pairs,
                         expressive_only=name in NEUTRAL_ANCHORED)
        for name, values in per_pair.items()})
    truth_scores = {k: v.astype(float) for k, v in judged(truths, slice(None)).items()}
    metrics = {
        "protocol": "synthetic",
        "run": run_summary(run),
        "pairs": {"count": len(pairs), "expressive": int(expressive_targets(faces, pairs).sum()),
                  "held_out_subjects": list(faces.subject_names),
                  "expressions": list(faces.expression_names),
                  "poses": sorted(set(float(p) for p in faces.poses)), "seed": seed, "max_pairs": max_pairs,
                  "description": "each held-out face (every expression and pose) edited towards every other "
                                 "expression; the reference is another held-out identity showing it; ground "
                                 "truth render(identity_input, expression_reference, pose_input)"},
        "image_range": "[-1, 1]",
        "methods": results,
        "ground_truth": {"description": "the classifiers on the ground-truth renders themselves",
                         **breakdowns(truth_scores, faces, pairs)},
        "seconds": round(time.time() - start, 1),
    }
    if run.neutral_from_neutralizer:
        metrics["neutralizer"] = neutralizer_quality(faces, neutrals, expression_classifier, identity_classifier)
    examples = collector.examples(faces, pairs, truths)
    add_expression_grid(examples, run, faces, neutrals, seed, ground_truths, batch_size)
    return Evaluation(metrics, examples)
