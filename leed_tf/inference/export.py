"""SavedModel export for TensorFlow Serving (docs/design.md section 3).

A run folder's inference networks (``restore_networks``) are wrapped in the
serving module (``leed_tf.inference.serving_module``, which lists the
signatures) and written in TF Serving's layout ``<export_base>/<version>/``
(default ``saved_models/leed/1``, ``2``, ...), atomically, never over an
existing version.

Assets: ``assets/config.json`` (the run's config), ``assets/expression_bank.npz``
and ``assets/leed_export.json`` (what a client needs: image size, range, face
box, code shape, signatures, expression names), and ``assets/face_template.json``
when the run has one (the training faces' landmarks, for aligning photos
client-side: ``leed_tf.inference.align``). The bank's names and codes are
also the variables ``expression_names`` and ``expression_codes`` of the loaded
object. Loading needs TensorFlow only, not ``leed_tf``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from leed_tf.config import OUTPUT_FORMS, Config  # noqa: F401 (OUTPUT_FORMS: the forms an export offers)
from leed_tf.data import records
from leed_tf.inference import align
from leed_tf.inference.expression_bank import ExpressionBank, build_expression_bank, labelled_faces
from leed_tf.inference.serving_module import LeedServingModule
from leed_tf.model import LeedNetworks, restore_stage
from leed_tf.run_folder import BANK_FILE, CONFIG_FILE, INFERENCE_NETWORKS, RunFolder, has_neutralizer, stages_of

DEFAULT_EXPORT_BASE = os.path.join("saved_models", "leed")
CONFIG_ASSET = CONFIG_FILE
BANK_ASSET = BANK_FILE  # the name it has in a run folder
METADATA_ASSET = "leed_export.json"
TEMPLATE_ASSET = align.TEMPLATE_FILE


def face_box(config: Config):
    """The face box of the run's data set (``records.face_box``)."""
    return records.face_box(config.data.dataset)


@dataclasses.dataclass
class RestoredRun:
    """A run's networks restored for inference.

    Attributes:
      config: The run's config.
      nets: The networks (only the inference ones hold trained weights).
      has_neutralizer: False for ``neutral_source=dataset`` runs.
      checkpoints: Stage name -> checkpoint path restored.
      unfinished: Stages restored from a checkpoint before their end.
    """

    config: Config
    nets: LeedNetworks
    has_neutralizer: bool
    checkpoints: dict
    unfinished: list


def restore_networks(run_dir: str) -> RestoredRun:
    """Builds a run's networks and restores the ones inference needs.

    The encoder comes from the auto-encoder stage, the neutralizer (when the
    run has one) from its stage, X, I and Dec from the LEED stage. The newest
    readable checkpoint of each stage is used (finished or not; an
    unfinished one is logged).

    Raises:
      FileNotFoundError: no ``config.json``, or a stage without checkpoint
        (naming the stage and the folder).
    """
    folder = RunFolder(run_dir)
    config = Config.load(folder.require_config())
    nets = LeedNetworks(config.model)
    stages = stages_of(config)
    checkpoints = {stage: restore_stage(nets, run_dir, stage, INFERENCE_NETWORKS[stage]) for stage in stages}
    unfinished = folder.unfinished(stages)
    if unfinished:
        logging.warning("Stages %s of %s are not finished; using their latest checkpoints.",
                        ", ".join(unfinished), run_dir)
    return RestoredRun(config, nets, has_neutralizer(config), checkpoints, unfinished)


# ---------------------------------------------------------------- writing


def next_version(export_base: str) -> int:
    """One more than the highest numbered version folder (1 for none)."""
    if not os.path.isdir(export_base):
        return 1
    versions = [int(n) for n in os.listdir(export_base) if n.isdigit()]
    return max(versions, default=0) + 1


def latest_version_dir(path: str) -> str:
    """``path`` itself if it is a SavedModel, else its highest numbered version.

    Raises:
      FileNotFoundError: neither.
    """
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = sorted((int(n) for n in os.listdir(path) if n.isdigit()
                           and os.path.exists(os.path.join(path, n, "saved_model.pb"))))
        if versions:
            return os.path.join(path, str(versions[-1]))
    raise FileNotFoundError(f"No SavedModel at {path} (neither saved_model.pb nor a numbered version "
                            f"folder holding one); export one with scripts/export.py.")


def export_networks(nets: LeedNetworks, export_base: str = DEFAULT_EXPORT_BASE, *,
                    version: int | None = None, config: Config | None = None,
                    neutralizer: bool | None = None, box=None, bank: ExpressionBank | None = None,
                    output_form: str = "decoded", source: str = "in-memory networks") -> str:
    """Exports in-memory networks as ``<export_base>/<version>/``.

    Used by ``export_run`` and directly by tests and benchmarks (e.g. random
    weights at full width).

    Args:
      nets: The networks.
      export_base: TF Serving's model folder (``.../leed``).
      version: Version number; default the next free one.
      config: Config written as ``assets/config.json`` (default: one with
        ``nets.config``); it also gives the defaults of ``neutralizer`` and
        ``box``.
      neutralizer: Whether the export uses G_neu (default: from ``config``).
      box: The face box (default: from ``config``).
      bank: Expression bank to embed (default: none).
      output_form: One of ``OUTPUT_FORMS`` (see ``LeedServingModule``).
      source: What the networks are, for the metadata.

    Returns:
      The version folder written.

    Raises:
      FileExistsError: the version exists already (it is never overwritten).
    """
    config = config or Config(model=nets.config)
    neutralizer = has_neutralizer(config) if neutralizer is None else neutralizer
    box = face_box(config) if box is None else box
    module = LeedServingModule(nets, has_neutralizer=neutralizer, box=box, bank=bank,
                               output_form=output_form)
    return save_module(module, export_base, version=version, config=config, source=source)


def save_module(module: LeedServingModule, export_base: str, *, version: int | None = None,
                config: Config | None = None, source: str = "",
                template: align.FaceTemplate | None = None) -> str:
    """Writes ``module`` with its signatures and assets, atomically
    (``template``: the face template, an asset when given).

    The SavedModel is written into a hidden temporary folder beside the
    versions and renamed into place, so TF Serving (which polls the folder)
    never sees half a model.
    """
    export_base = os.fspath(export_base)
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"A TF Serving version is a positive integer, got {version}.")
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists; an export never overwrites a version. Pass another "
                              f"--version or omit it for the next free one ({next_version(export_base)}).")
    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".staging-{version}-", dir=export_base)
    assets = tempfile.mkdtemp(prefix="leed-assets-")
    try:
        config = config or Config(model=module._nets.config)
        config.save(os.path.join(assets, CONFIG_ASSET))
        module.bank.save(os.path.join(assets, BANK_ASSET))
        with open(os.path.join(assets, METADATA_ASSET), "w") as f:
            json.dump(module.metadata(source), f, indent=2)
        module.config_file = tf.saved_model.Asset(os.path.join(assets, CONFIG_ASSET))
        module.expression_bank_file = tf.saved_model.Asset(os.path.join(assets, BANK_ASSET))
        module.metadata_file = tf.saved_model.Asset(os.path.join(assets, METADATA_ASSET))
        if template is not None:
            module.face_template_file = tf.saved_model.Asset(template.save(os.path.join(assets, TEMPLATE_ASSET)))
        target = os.path.join(staging, "model")
        absl_level = logging.get_absl_logger().level
        try:
            tf.saved_model.save(module, target, signatures=module.concrete_signatures())
        finally:  # TF's saver pins absl's logger to --verbosity (WARNING outside absl apps)
            logging.get_absl_logger().setLevel(absl_level)
        try:
            os.rename(target, final)
        except OSError as e:
            raise FileExistsError(f"Could not move the export into {final}: {e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(assets, ignore_errors=True)
    return final


def export_run(run_dir: str, export_base: str = DEFAULT_EXPORT_BASE, *, version: int | None = None,
               expression_bank: str | ExpressionBank | None = None, output_form: str | None = None,
               face_template: bool = False) -> str:
    """Exports a trained run folder.

    Args:
      run_dir: The run folder (config.json and stage checkpoints).
      export_base: TF Serving's model folder.
      version: Version number; default the next free one.
      expression_bank: A bank (or its ``.npz``) to embed. Default:
        ``<run_dir>/expression_bank.npz`` if present; else, for synthetic
        runs, one built now from synthetic renders (and saved there); else
        none (``edit_with_expression`` then rejects every name).
      output_form: ``decoded`` (the paper's), ``residual`` or
        ``neutral_residual`` (see ``LeedServingModule``); default the run's
        ``output_form`` setting.
      face_template: Measure the run's face template if it has none yet
        (``align.template_for_run``, needs dlib); a template the run has is
        always exported.

    Returns:
      The version folder written.
    """
    restored = restore_networks(run_dir)
    template_path = RunFolder(run_dir).file(align.TEMPLATE_FILE)
    template = (align.template_for_run(run_dir) if face_template
                else align.FaceTemplate.load(template_path) if os.path.exists(template_path) else None)
    config = restored.config
    output_form = output_form or config.output_form
    module = LeedServingModule(restored.nets, has_neutralizer=restored.has_neutralizer,
                               box=face_box(config), output_form=output_form)
    bank = _bank_for_run(run_dir, config, module, expression_bank)
    if bank is not None:
        module = LeedServingModule(restored.nets, has_neutralizer=restored.has_neutralizer,
                                   box=face_box(config), bank=bank, output_form=output_form)
    return save_module(module, export_base, version=version, config=config,
                       source=os.path.abspath(run_dir), template=template)


def _bank_for_run(run_dir, config, module, expression_bank):
    if isinstance(expression_bank, ExpressionBank):
        return expression_bank
    if expression_bank:
        return ExpressionBank.load(expression_bank)
    path = RunFolder(run_dir).bank_path
    if os.path.exists(path):
        return ExpressionBank.load(path)
    if config.data.dataset == "synthetic":
        def expression_codes(images, neutrals):
            inputs = [images] if neutrals is None else [images, neutrals]
            return module.expression_code(*(tf.constant(x) for x in inputs))["expression_code"].numpy()

        faces = labelled_faces("synthetic", image_size=config.model.image_size,
                               real_neutrals=not module.has_neutralizer,
                               synthetic_seed=config.data.synthetic_seed)
        bank = build_expression_bank(expression_codes, faces)
        logging.info("Built an expression bank from %s into %s.", faces.source, bank.save(path))
        return bank
    logging.warning("No expression bank for %s: edit_with_expression will reject every name. "
                    "Build one with scripts/build_expression_bank.py --run_dir=%s.", run_dir, run_dir)
    return None
