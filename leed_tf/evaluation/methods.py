"""The editing methods compared side by side, all on one run's networks.

  =============================  =============================================================
  method                         output for input I_in and reference I_ref
  =============================  =============================================================
  copy_input                     I_in (the expression is not changed at all)
  copy_reference                 I_ref (the identity is not kept at all)
  feature_arithmetic             Dec_AE(n_in + z_ref - n_ref), the auto-encoder's decoder
  feature_arithmetic_residual    I_in + Dec_AE(n_in + z_ref - n_ref) - Dec_AE(z_in)
  stargan                        G(I_in, label_ref): the neutralizer as a labelled editor
  leed                           Dec(z_out), the paper's output
  leed_residual                  I_in + Dec(z_out) - Dec(z_self)
  truth_code                     Dec_AE(E(truth)): the ground truth's own code (a ceiling)
  truth_code_residual            I_in + Dec_AE(E(truth)) - Dec_AE(z_in)
  copy_neutral                   N_in, the input's neutral face
  feature_arithmetic_neutral_residual  N_in + Dec_AE(n_in + z_ref - n_ref) - Dec_AE(n_in)
  leed_neutral_residual          N_in + Dec(z_out) - Dec(z_nn)
  truth_code_neutral_residual    N_in + Dec_AE(E(truth)) - Dec_AE(n_in)
  =============================  =============================================================

The last two are not editors: they decode the code of the very image an
edit should produce, so no editor of this auto-encoder's codes can be
expected to do better. They show how much of the distance to the ground
truth is the auto-encoder's, and exist only where a ground truth does
(synthetic data).

The last four start from the input's neutral face (``NEUTRAL_ANCHORED``):
an edit towards neutral returns that face itself, which is the ground truth
when it is a real photo. So their means are over the pairs whose target is
not neutral (``breakdowns(..., expressive_only=True)``), and every method
is also summarised over those pairs (``expressive_targets``) to compare
with them.

The StarGAN neutralizer is trained on every expression domain (it must
reach "neutral" from each), so translating to the reference's *label* is a
labelled editor. It exists only in runs trained with
``neutral_source=stargan``; otherwise it is reported unavailable, with why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from leed_tf.inference import export
from leed_tf.config import Config
from leed_tf.data import sources
from leed_tf.data.images import scale_to_unit, to_uint8
from leed_tf.data.records import FaceSet
from leed_tf.model import LeedNetworks, restore_stage

METHODS = ("copy_input", "copy_reference", "feature_arithmetic", "feature_arithmetic_residual",
           "stargan", "leed", "leed_residual", "truth_code", "truth_code_residual",
           "copy_neutral", "feature_arithmetic_neutral_residual", "leed_neutral_residual",
           "truth_code_neutral_residual")
# Methods that need each pair's ground truth.
NEEDS_TRUTH = ("truth_code", "truth_code_residual", "truth_code_neutral_residual")
# Methods whose edit towards neutral is the input's neutral face itself.
NEUTRAL_ANCHORED = ("copy_neutral", "feature_arithmetic_neutral_residual", "leed_neutral_residual",
                    "truth_code_neutral_residual")
DESCRIPTIONS = {
    "copy_input": "copy the input",
    "copy_reference": "copy the reference",
    "feature_arithmetic": "feature arithmetic `Dec(n_in + z_ref − n_ref)` (auto-encoder's decoder)",
    "feature_arithmetic_residual":
        "feature arithmetic, residual form `I_in + Dec(n_in + z_ref − n_ref) − Dec(z_in)`",
    "stargan": "StarGAN neutralizer as a labelled editor `G(I_in, label_ref)`",
    "leed": "**LEED** `Dec(z_out)`",
    "leed_residual": "**LEED, residual form** `I_in + Dec(z_out) − Dec(z_self)` "
                     "(`Dec(z_in)` with residual_base=code)",
    "truth_code": "ceiling, not an editor: the ground truth's own code `Dec_AE(E(truth))`",
    "truth_code_residual": "ceiling, residual form `I_in + Dec_AE(E(truth)) − Dec_AE(z_in)`",
    "copy_neutral": "copy the input's neutral face `N_in`",
    "feature_arithmetic_neutral_residual":
        "feature arithmetic, neutral-anchored `N_in + Dec(n_in + z_ref − n_ref) − Dec(n_in)`",
    "leed_neutral_residual": "**LEED, neutral-anchored** `N_in + Dec(z_out) − Dec(z_nn)` "
                             "(`Dec(n_in)` with residual_base=code)",
    "truth_code_neutral_residual": "ceiling, neutral-anchored `N_in + Dec_AE(E(truth)) − Dec_AE(n_in)`",
}
# Column titles of figures: at most ~18 characters fit above a 128-pixel face.
SHORT_NAMES = {
    "copy_input": "copy input", "copy_reference": "copy reference", "feature_arithmetic": "feat. arithmetic",
    "feature_arithmetic_residual": "feat. arith. resid.", "stargan": "StarGAN", "leed": "LEED",
    "leed_residual": "LEED residual", "truth_code": "truth's code", "truth_code_residual": "truth's code res.",
    "copy_neutral": "copy neutral", "feature_arithmetic_neutral_residual": "feat. arith. neutr.",
    "leed_neutral_residual": "LEED neutral-anch.", "truth_code_neutral_residual": "truth's code neutr.",
}


@dataclass
class RunNetworks:
    """A run's networks restored for evaluation.

    Attributes:
      run_dir: The run folder.
      config: Its config.
      nets: Encoder (auto-encoder stage), X, I, Dec (LEED stage) and, when
        trained, the neutralizer.
      baseline_decoder: The auto-encoder stage's decoder, for feature
        arithmetic (LEED fine-tunes its own decoder).
      neutral_from_neutralizer: Whether neutral faces come from G_neu (else
        the data set's real neutral photos).
      stargan_unavailable: None if the neutralizer is trained, else why not.
      checkpoints: What was restored from where.
      unfinished: Stages whose checkpoint is not the end of their training.
    """

    run_dir: str
    config: Config
    nets: LeedNetworks
    baseline_decoder: keras.Model
    neutral_from_neutralizer: bool
    stargan_unavailable: str | None
    checkpoints: dict = field(default_factory=dict)
    unfinished: list = field(default_factory=list)
    _graphs: dict = field(default_factory=dict, repr=False)

    def graphs(self) -> dict:
        """The networks' methods as ``tf.function``s, made once per run so that
        every ``EditMethods`` on it shares their traces."""
        if not self._graphs:
            nets, decoder = self.nets, self.baseline_decoder
            num_domains = self.config.model.num_expressions
            functions = {
                "feature_arithmetic": lambda *x: nets.feature_arithmetic(*x, decoder=decoder, output="decoded"),
                "leed": lambda *x: nets.edit(*x, output="decoded"),
                "truth_code": lambda image, truth, neutral: nets.truth_code_edit(image, truth, decoder, "decoded"),
                "stargan": lambda image, labels: nets.neutralizer((image, tf.one_hot(labels, num_domains)),
                                                                  training=False),
            }
            for form in ("residual", "neutral_residual"):
                functions.update({
                    f"feature_arithmetic_{form}": lambda *x, form=form: nets.feature_arithmetic(
                        *x, decoder=decoder, output=form),
                    f"leed_{form}": lambda *x, form=form: nets.edit(*x, output=form),
                    f"truth_code_{form}": lambda image, truth, neutral, form=form: nets.truth_code_edit(
                        image, truth, decoder, form, neutral),
                })
            self._graphs.update({name: tf.function(fn, reduce_retracing=True) for name, fn in functions.items()})
        return self._graphs


def restore_run(run_dir: str) -> RunNetworks:
    """Restores what every method needs from ``run_dir``.

    Raises:
      FileNotFoundError: no config, or a stage LEED needs without checkpoint.
    """
    restored = export.restore_networks(run_dir)
    nets = restored.nets
    checkpoints = dict(restored.checkpoints)
    # The feature-arithmetic baseline keeps the auto-encoder's decoder (as
    # training's own validation does): restore it into the shared decoder,
    # copy it out, and put LEED's decoder back.
    leed_decoder = nets.decoder.get_weights()
    checkpoints["autoencoder_decoder"] = restore_stage(nets, run_dir, "autoencoder", ["decoder"])
    baseline_decoder = nets.decoder_copy()
    nets.decoder.set_weights(leed_decoder)
    reason = None
    if not restored.has_neutralizer:
        reason = ("not trained: this run uses the data set's real neutral faces "
                  "(neutral_source=dataset), so it has no neutralizer to edit with; train a run "
                  "with --neutral_source=stargan to compare with it")
    return RunNetworks(run_dir, restored.config, nets, baseline_decoder, restored.has_neutralizer,
                       reason, checkpoints, list(restored.unfinished))


def neutral_faces(run: RunNetworks, face_set: FaceSet, batch_size: int = 32) -> np.ndarray:
    """Each face's neutral face as the run's LEED saw them in training:
    G_neu's output, or the subject's real neutral photo (``uint8``)."""
    if not run.neutral_from_neutralizer:
        return sources.real_neutrals(face_set)
    neutralize = tf.function(run.nets.neutralize, reduce_retracing=True)
    out = [to_uint8(neutralize(_unit(face_set.images[i:i + batch_size])).numpy())
           for i in range(0, len(face_set), batch_size)]
    return np.concatenate(out) if out else np.zeros_like(face_set.images)


def _unit(images) -> tf.Tensor:
    return scale_to_unit(tf.constant(images))


class EditMethods:
    """Runs every method on batches of (input, reference) pairs.

    Args:
      run: The restored run.
      num_labels: Number of expression labels of the faces (the StarGAN
        method needs them to match its domains).
      methods: Which methods; default ``METHODS``.
      with_truth: Whether calls pass each pair's ground truth (synthetic
        data); without it the ``NEEDS_TRUTH`` methods are unavailable.

    Attributes:
      unavailable: Method name -> why it cannot run (only those).
    """

    def __init__(self, run: RunNetworks, num_labels: int, methods=METHODS, with_truth: bool = False):
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            raise ValueError(f"Unknown methods {unknown}; expected some of {METHODS}.")
        self.run = run
        self.unavailable = {}
        if "stargan" in methods and run.stargan_unavailable:
            self.unavailable["stargan"] = run.stargan_unavailable
        elif "stargan" in methods and run.config.model.stargan_domains != "expressions":
            self.unavailable["stargan"] = (f"its domains are {run.config.model.stargan_domains}, not one per "
                                           f"expression, so it cannot render a chosen expression")
        elif "stargan" in methods and run.config.model.num_expressions != num_labels:
            self.unavailable["stargan"] = (f"its {run.config.model.num_expressions} domains do not match "
                                           f"the {num_labels} expressions of the evaluation faces")
        if not with_truth:
            self.unavailable.update({m: "needs each pair's ground truth (synthetic data only)"
                                     for m in NEEDS_TRUTH if m in methods})
        self.methods = tuple(m for m in methods if m not in self.unavailable)
        self._graphs = run.graphs()

    def __call__(self, inputs, input_neutrals, references, reference_neutrals,
                 reference_labels, truths=None) -> dict[str, np.ndarray]:
        """Every available method's edits of one batch.

        Args:
          inputs, input_neutrals, references, reference_neutrals: ``uint8
            [B, S, S, 3]`` faces.
          reference_labels: ``int [B]`` the references' expression indices.
          truths: ``uint8 [B, S, S, 3]`` ground truths, for ``NEEDS_TRUTH``.

        Returns:
          Method name -> ``float32 [B, S, S, 3]`` edits in [-1, 1] (clipped:
          residual forms can overshoot, and a shown image is clipped anyway).
        """
        faces = [_unit(x) for x in (inputs, input_neutrals, references, reference_neutrals)]
        out = {}
        for name in self.methods:
            if name == "copy_input":
                edited = faces[0]
            elif name == "copy_reference":
                edited = faces[2]
            elif name == "copy_neutral":
                edited = faces[1]
            elif name == "stargan":
                edited = self._graphs[name](faces[0], tf.constant(np.asarray(reference_labels, np.int32)))
            elif name in NEEDS_TRUTH:
                edited = self._graphs[name](faces[0], _unit(truths), faces[1])
            else:
                edited = self._graphs[name](*faces)
            out[name] = np.clip(np.asarray(edited), -1.0, 1.0)
        return out


    def results(self, measured: dict[str, dict]) -> dict[str, dict]:
        """Every method's entry of ``metrics.json``, in ``METHODS`` order.

        Args:
          measured: Method name -> its metrics (e.g. ``{"overall": ...,
            "per_expression": ..., "per_pose": ...}``), for the methods run.

        Returns:
          Name -> ``{"available": True, "description", **metrics}``, or
          ``{"available": False, "description", "reason"}`` for a method
          that could not run.
        """
        out = {}
        for name in METHODS:
            if name in self.unavailable:
                out[name] = {"available": False, "description": DESCRIPTIONS[name],
                             "reason": self.unavailable[name]}
            elif name in measured:
                out[name] = {"available": True, "description": DESCRIPTIONS[name], **measured[name]}
        return out


def run_summary(run: RunNetworks) -> dict:
    """What was evaluated: the run, its checkpoints and unfinished stages."""
    return {"run_dir": os.path.abspath(run.run_dir), "checkpoints": run.checkpoints,
            "unfinished_stages": run.unfinished, "width": run.config.model.width,
            "neutral_source": run.config.data.neutral_source, "dataset": run.config.data.dataset}
