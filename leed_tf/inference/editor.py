"""Expression editing with a trained LEED model (docs/design.md section 3).

``Editor`` is one Python API over either a run folder (``from_run_dir``:
config and stage checkpoints) or an exported SavedModel
(``from_saved_model``); both run the graph of ``leed_tf.inference.serving_module.LeedServingModule``,
so they give the same pixels::

    editor = Editor.from_run_dir("runs/synthetic")
    out = editor.edit("me.jpg", "smiling_friend.jpg")          # uint8 [128, 128, 3]
    out = editor.edit("me.jpg", expression="surprised", intensity=0.5)
    strip = editor.interpolate("me.jpg", "happy", "sad", t=[0, 0.5, 1])

Images go in as file paths, encoded bytes, PIL images, ``uint8`` arrays or
float arrays in [0, 1], one or a list (or a ``[B, H, W, 3]`` array); a batch
in gives a batch out, one image in gives one image out (``uint8`` by default;
``output="float"`` for [0, 1] floats, ``"pil"`` for PIL images). Faces are
cropped as the training faces were (``decode_image``: EXIF orientation, any
pixel format): the RaFD face box for RaFD models, otherwise the centred
square; an image that already is 128 x 128 is taken as a face crop and used
as it is. ``detect_face=True`` crops around the face found by OpenCV's Haar
cascade instead (``pip install 'opencv-python-headless<5'``).

``align=True`` frames each face as the training faces were framed instead:
dlib's landmarks, warped onto the run's ``FaceTemplate``
(``leed_tf.inference.align``; ``pip install -e '.[eval]'``). Then
``edit_photo`` edits the faces of a photo of any size and pastes them back::

    editor = Editor.from_run_dir("runs/synthetic", align=True)
    photo = editor.edit_photo("group.jpg", expression="happy", faces="all")  # uint8 [H, W, 3]

Files and folders (the command line's path, sheets of edits):
``leed_tf.inference.files``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from leed_tf.config import Config
from leed_tf.data.images import decode_image, decode_photo, uint8_from_01, uint8_to_01
from leed_tf.inference import align as align_lib
from leed_tf.inference import export
from leed_tf.inference.expression_bank import ExpressionBank
# detect_face_box and is_single are imported from here by callers too.
from leed_tf.inference.inputs import (FACE_SCALE, describe, detect_face_box, encoded, is_single,
                                      load_photo, peek_size, png_bytes, source_size)
from leed_tf.run_folder import RunFolder

CROPS = ("dataset", "center")
RETURN_TYPES = ("uint8", "float", "pil")  # what the edit methods return, by ``output``
_RANGE_TOLERANCE = 1e-3


class Editor:
    """Reference-, label- and code-driven expression edits, batched.

    Args:
      model: A ``LeedServingModule`` (in memory) or a loaded SavedModel.
      metadata: The export's ``leed_export.json`` (read from ``model`` when
        it is a ``LeedServingModule``).
      config: The run's config, if known.
      bank: Expression bank for ``expression=`` edits (default: the one in
        ``model``).
      crop: ``dataset`` (the data set's face box, the default) or ``center``
        (the centred square).
      detect_face: Crop around the largest face OpenCV finds.
      face_scale: Side of the face-detection crop over the detected box's.
      batch_size: Images per call of the graph.
      align: Align every face that is not already an S x S crop with dlib's
        landmarks (the largest face of each image); needs ``template``.
      template: The training faces' ``FaceTemplate`` (``from_run_dir`` and
        ``from_saved_model`` pass the run's or the export's).
      landmarks: 5 or 68, dlib's landmark model used for alignment.
    """

    def __init__(self, model, *, metadata: dict | None = None, config: Config | None = None,
                 bank: ExpressionBank | None = None, crop: str = "dataset", detect_face: bool = False,
                 face_scale: float = FACE_SCALE, batch_size: int = 16, align: bool = False,
                 template: align_lib.FaceTemplate | None = None, landmarks: int = 5):
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}.")
        if align and detect_face:
            raise ValueError("Give align (dlib's landmarks) or detect_face (OpenCV's box), not both.")
        self._live = isinstance(model, export.LeedServingModule)
        self.model = model
        self.metadata = model.metadata() if self._live else dict(metadata or {})
        self.config = config
        self.image_size = int(self.metadata["image_size"])
        self.code_shape = tuple(self.metadata["code_shape"])
        self.has_neutralizer = bool(self.metadata["has_neutralizer"])
        self.box = tuple(self.metadata["face_box"]) if self.metadata.get("face_box") else None
        self.output_form = self.metadata.get("output_form", "decoded")
        self._arguments = {name: tuple(args) for name, args in self.metadata["signatures"].items()}
        if bank is None:
            bank = model.bank if self._live else ExpressionBank(
                tuple(n.decode() for n in model.expression_names.numpy()),
                model.expression_codes.numpy(), np.zeros(len(model.expression_names.numpy()), np.int64),
                "embedded in the SavedModel")
        if bank.code_shape != self.code_shape and len(bank):
            raise ValueError(f"The expression bank holds codes of shape {bank.code_shape}, but this "
                             f"model's codes are {self.code_shape}; build the bank with this model.")
        self.bank = bank
        self.crop, self.detect_face, self.face_scale = crop, detect_face, face_scale
        self.batch_size = max(1, int(batch_size))
        self.aligner = None
        if align:
            if template is None:
                raise ValueError("align=True needs the training faces' face template (face_template.json "
                                 "of the run folder or of the export's assets).")
            if template.image_size != self.image_size:
                raise ValueError(f"The face template is for {template.image_size}-pixel faces, this model's "
                                 f"are {self.image_size}.")
            self.aligner = align_lib.FaceAligner(template, landmarks)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_run_dir(cls, run_dir: str, *, expression_bank=None, output_form: str | None = None,
                     **options) -> "Editor":
        """An editor over a run folder's latest checkpoints.

        Args:
          run_dir: The run folder.
          expression_bank: A bank or its ``.npz`` (default:
            ``<run_dir>/expression_bank.npz`` if present).
          output_form: ``decoded`` (the paper's ``Dec(z_out)``),
            ``residual`` (``I_in + Dec(z_out) - Dec(z_self)``) or
            ``neutral_residual`` (``N_in + Dec(z_out) - Dec(z_nn)``; see
            ``leed_tf.inference.export.LeedServingModule``); default the run's
            ``output_form`` setting.
          **options: ``crop``, ``detect_face``, ``face_scale``, ``batch_size``,
            ``align``, ``landmarks``. With ``align``, the run's face template
            (``align.template_for_run``: measured on its training faces once).

        Raises:
          FileNotFoundError: no config or a stage without checkpoint.
        """
        restored = export.restore_networks(run_dir)
        if options.get("align") and "template" not in options:
            options["template"] = align_lib.template_for_run(run_dir)
        default = RunFolder(run_dir).bank_path
        bank = _as_bank(expression_bank if expression_bank is not None else
                        (default if os.path.exists(default) else None))
        module = export.LeedServingModule(restored.nets, has_neutralizer=restored.has_neutralizer,
                                          box=export.face_box(restored.config), bank=bank,
                                          output_form=output_form or restored.config.output_form)
        return cls(module, config=restored.config, **options)

    @classmethod
    def from_saved_model(cls, path: str, *, expression_bank=None, **options) -> "Editor":
        """An editor over an export (a version folder, or the model folder
        holding numbered versions: the highest is used).

        Raises:
          FileNotFoundError: no SavedModel there.
          ValueError: a SavedModel that is not a leed_tf export.
        """
        path = export.latest_version_dir(path)
        meta_path = os.path.join(path, "assets", export.METADATA_ASSET)
        if not os.path.exists(meta_path):
            raise ValueError(f"{path} is not a leed_tf export (no assets/{export.METADATA_ASSET}).")
        with open(meta_path) as f:
            metadata = json.load(f)
        config_path = os.path.join(path, "assets", export.CONFIG_ASSET)
        config = Config.load(config_path) if os.path.exists(config_path) else None
        template_path = os.path.join(path, "assets", export.TEMPLATE_ASSET)
        if options.get("align") and "template" not in options:
            if not os.path.exists(template_path):
                raise ValueError(f"{path} has no assets/{export.TEMPLATE_ASSET} (the training faces' "
                                 f"framing) to align faces to; export the run again with "
                                 f"scripts/export.py --face_template.")
            options["template"] = align_lib.FaceTemplate.load(template_path)
        return cls(tf.saved_model.load(path), metadata=metadata, config=config,
                   bank=_as_bank(expression_bank), **options)

    # -- edits --------------------------------------------------------------
    @property
    def expression_names(self) -> tuple[str, ...]:
        return self.bank.names

    def edit(self, input, reference=None, *, expression=None, intensity=1.0, input_neutral=None,
             reference_neutral=None, output: str = "uint8"):
        """The input face(s) with the reference's (or a named) expression.

        Args:
          input: Image(s) to edit.
          reference: Image(s) whose expression is copied (one for all inputs,
            or one per input); or None with ``expression``.
          expression: An expression name of the bank (or one per input).
          intensity: 1 = the reference's expression, 0 = neutral, > 1
            exaggerates; a number or one per image.
          input_neutral: The inputs' real neutral faces, needed (only) by
            models without a neutralizer.
          reference_neutral: The references' real neutral faces, likewise.
          output: ``uint8``, ``float`` ([0, 1]) or ``pil``.

        Returns:
          One image, or a batch if any image argument was a batch.
        """
        if (reference is None) == (expression is None):
            raise ValueError("Give exactly one of reference (an image) or expression (a name of the "
                             f"bank: {', '.join(self.bank.names) or 'the bank is empty'}).")
        self.check_neutral_sizes(input, input_neutral, "input_neutral")
        if reference is not None:
            self.check_neutral_sizes(reference, reference_neutral, "reference_neutral")
        images, single = self.load_images(input)
        neutrals = self._neutrals(input_neutral, "input_neutral")
        if expression is not None:
            names = [expression] if isinstance(expression, str) else list(expression)
            codes = self.bank.codes_for(names)
            return self.edit_with_code(images[0] if single else images, codes[0] if len(names) == 1 else codes,
                                       intensity=intensity, input_neutral=neutrals, output=output)
        references, reference_single = self.load_images(reference)
        reference_neutrals = self._neutrals(reference_neutral, "reference_neutral")
        if not self.has_neutralizer:
            self._require(neutrals, "input_neutral")
            self._require(reference_neutrals, "reference_neutral")
        batch = _common_batch(("input", len(images)), ("reference", len(references)))
        result = self.edit_batch(_repeat(images, batch), _repeat(references, batch), intensity,
                                 input_neutrals=None if neutrals is None else _repeat(neutrals, batch),
                                 reference_neutrals=None if reference_neutrals is None
                                 else _repeat(reference_neutrals, batch))
        return _format(result, single and reference_single, output)

    def edit_batch(self, images, references, intensity=1.0, *, input_neutrals=None,
                   reference_neutrals=None) -> np.ndarray:
        """The float batch API: ``float32 [B, S, S, 3]`` in [0, 1] in and out.

        Args:
          images: Input faces, already S x S crops.
          references: One reference per input.
          intensity: A number or ``[B]``.
          input_neutrals: Real neutral faces (models without neutralizer).
          reference_neutrals: Likewise for the references.
        """
        images, references = np.asarray(images, np.float32), np.asarray(references, np.float32)
        inputs = {"input_image": images, "reference_image": references,
                  "intensity": _intensities(intensity, len(images))}
        if not self.has_neutralizer:
            inputs["input_neutral"] = self._require(input_neutrals, "input_neutrals")
            inputs["reference_neutral"] = self._require(reference_neutrals, "reference_neutrals")
        else:
            self._refuse(input_neutrals, "input_neutrals")
            self._refuse(reference_neutrals, "reference_neutrals")
        return self._run("edit_tensor", inputs)["output_image"]

    def edit_with_code(self, input, codes, *, intensity=1.0, input_neutral=None, output: str = "uint8"):
        """The input face(s) with given expression codes ``e``.

        Args:
          input: Image(s) to edit.
          codes: ``[h, w, c]`` for every input, or ``[B, h, w, c]``.
          intensity: A number or one per image.
          input_neutral: Real neutral faces (models without neutralizer).
          output: See ``edit``.
        """
        self.check_neutral_sizes(input, input_neutral, "input_neutral")
        images, single = self.load_images(input)
        codes = np.asarray(codes, np.float32)
        if codes.shape[-3:] != self.code_shape:
            raise ValueError(f"Expression codes must end in {self.code_shape}, got {codes.shape}.")
        code_single = codes.ndim == 3
        codes = codes.reshape((-1,) + self.code_shape)
        batch = _common_batch(("input", len(images)), ("codes", len(codes)))
        inputs = {"input_image": _repeat(images, batch), "expression_code": _repeat(codes, batch),
                  "intensity": _intensities(intensity, batch)}
        neutrals = self._neutrals(input_neutral, "input_neutral")
        if not self.has_neutralizer:
            inputs["input_neutral"] = _repeat(self._require(neutrals, "input_neutral"), batch)
        return _format(self._run("edit_with_code", inputs)["output_image"], single and code_single, output)

    def interpolate(self, input, expression_a, expression_b, t=0.5, *, intensity=1.0,
                    input_neutral=None, output: str = "uint8"):
        """Edits towards a mix of two expressions' codes, ``(1 - t) e_a + t e_b``.

        Args:
          input: Image(s) to edit.
          expression_a: A bank name, an expression code ``[h, w, c]``, or a
            reference image (models with a neutralizer).
          expression_b: Likewise.
          t: Mixing weight, or a sequence of them.
          intensity: See ``edit``.
          input_neutral: See ``edit``.
          output: See ``edit``.

        Returns:
          For a number ``t``, what ``edit`` returns; for a sequence, those
          results stacked along a new first axis (one per ``t``).
        """
        code_a, code_b = self._endpoint(expression_a), self._endpoint(expression_b)
        weights = np.asarray(t, np.float32)
        if not np.all(np.isfinite(weights)):
            raise ValueError(f"t must be finite, got {t}.")
        images, single = self.load_images(input)  # Decoded once for every t.
        neutrals = self._neutrals(input_neutral, "input_neutral")
        results = [self.edit_with_code(images[0] if single else images, (1.0 - w) * code_a + w * code_b,
                                       intensity=intensity, input_neutral=neutrals, output=output)
                   for w in weights.reshape(-1)]
        if weights.ndim == 0:
            return results[0]
        return results if output == "pil" else np.stack(results)

    def edit_photo(self, photo, reference=None, *, expression=None, intensity=1.0, input_neutral=None,
                   reference_neutral=None, faces: str = "largest", feather: float | None = None,
                   change_only: bool = True) -> np.ndarray:
        """A whole photo with its face(s) edited and pasted back (``align=True``).

        The faces are aligned (``align.FaceAligner``), edited as ``edit``
        edits them, and blended back through the inverse warp with a
        feathered mask (``align.paste_back``): pixels outside the mask keep
        their values bit for bit.

        Args:
          photo: One image of any size (path, bytes, PIL image or array).
          reference: See ``edit``; references are aligned too.
          expression: See ``edit``.
          intensity: See ``edit``.
          input_neutral: The input's real neutral photo (models without
            neutralizer), aligned by its own landmarks; one face only.
          reference_neutral: Likewise for the reference.
          faces: ``largest`` or ``all``.
          feather: Width of the mask's ramp in crop pixels (default S / 8).
          change_only: Add only the edit's change to the photo, which keeps
            the photo's resolution where the edit changes nothing; False
            pastes the S x S edited face itself (``align.paste_back``).

        Returns:
          ``uint8 [H, W, 3]``, the photo's size (a photo that already is an
          S x S face crop gives its edit).

        Raises:
          BadImageError: an unreadable photo, or no face in it (naming it).
        """
        if self.aligner is None:
            raise ValueError("Pasting edited faces back needs alignment: an Editor with align=True "
                             "(scripts/edit.py --align).")
        pixels, name = load_photo(photo)
        if pixels is None:
            pixels = uint8_from_01(self._load_one(photo))
        edit = dict(expression=expression, intensity=intensity, input_neutral=input_neutral,
                    reference_neutral=reference_neutral)
        if pixels.shape[:2] == (self.image_size,) * 2:  # Already a face crop: the edit is the photo.
            return self.edit(pixels, reference, **edit)
        found = self.aligner.align(pixels, name, faces)
        if len(found) > 1 and input_neutral is not None:
            raise ValueError(f"{name}: {len(found)} faces, but one neutral photo; edit the faces of a "
                             f"model without neutralizer one at a time (faces='largest').")
        crops = uint8_to_01(np.stack([face.crop for face in found]))
        edited = self.edit(crops, reference, **edit)
        for face, result in zip(found, edited):
            pixels = align_lib.paste_back(pixels, result, face, feather, change_only)
        return pixels

    def neutralize(self, images, output: str = "uint8"):
        """G_neu's neutral face of each image."""
        if not self.has_neutralizer:
            raise ValueError(NO_NEUTRALIZER + " It cannot make neutral faces.")
        images, single = self.load_images(images)
        return _format(self._run("neutralize", {"image": images})["neutral_image"], single, output)

    def expression_codes(self, images, neutrals=None) -> np.ndarray:
        """``e = X(E(I) - E(N))``, ``float32 [B, h, w, c]`` (``[h, w, c]`` for one image)."""
        images, single = self.load_images(images)
        inputs = {"image": images}
        neutrals = self._neutrals(neutrals, "neutrals")
        if not self.has_neutralizer:
            inputs["neutral"] = _repeat(self._require(neutrals, "neutrals"), len(images))
        else:
            self._refuse(neutrals, "neutrals")
        codes = self._run("expression_code", inputs)["expression_code"]
        return codes[0] if single else codes

    # -- images ---------------------------------------------------------------
    def load_images(self, images) -> tuple[np.ndarray, bool]:
        """Face crops ``float32 [B, S, S, 3]`` in [0, 1], and whether one image was given.

        Raises:
          BadImageError: an unreadable image (naming it).
          ValueError: an empty list, or an array of an unsupported type or range.
        """
        if is_single(images):
            return self._load_one(images)[None], True
        items = list(images.numpy() if tf.is_tensor(images) else images)
        if not items:
            raise ValueError("No image given.")
        return np.stack([self._load_one(item) for item in items]), False

    def _load_one(self, image) -> np.ndarray:
        s = self.image_size
        if tf.is_tensor(image):
            image = image.numpy()
        found = encoded(image)
        if found is not None:
            return self._decode(*found)
        if isinstance(image, np.ndarray):
            if np.issubdtype(image.dtype, np.floating):
                if not np.all(np.isfinite(image)):
                    raise ValueError("A float image holds NaN or Inf values.")
                low, high = float(image.min(initial=0.0)), float(image.max(initial=0.0))
                if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
                    raise ValueError(f"Float images must be in [0, 1]; got values from {low:.3f} to "
                                     f"{high:.3f} (for [-1, 1] images pass (x + 1) / 2).")
                if image.shape == (s, s, 3):
                    return np.clip(image, 0.0, 1.0).astype(np.float32)
                image = uint8_from_01(image)
            if image.dtype != np.uint8:
                raise ValueError(f"Image arrays must be uint8 (0-255) or float (0-1), got {image.dtype}.")
            if image.shape == (s, s, 3):
                return uint8_to_01(image)
            if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
                raise ValueError(f"An image array is [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]; "
                                 f"got shape {image.shape}.")
            return self._decode(png_bytes(Image.fromarray(np.squeeze(image, -1) if image.ndim == 3 and
                                                           image.shape[-1] == 1 else image)), "<array>")
        raise TypeError(f"Cannot read an image from a {type(image).__name__}; give a path, bytes, a PIL "
                        f"image or an array.")

    def _decode(self, data: bytes, name: str) -> np.ndarray:
        s = self.image_size
        if self.aligner is not None and peek_size(data) != (s, s):
            return uint8_to_01(self.aligner.align(decode_photo(data, name=name), name)[0].crop)
        if self.detect_face:
            box = detect_face_box(data, name, self.face_scale)
        else:
            box = None if self.crop == "center" or peek_size(data) == (s, s) else self.box
        return uint8_to_01(decode_image(data, box, s, name=name))

    def check_neutral_sizes(self, images, neutrals, what: str = "input_neutral") -> None:
        """A real neutral face is cut from its photo as its image is (the same
        face box or centred square), so the two must be of the same size.
        Aligned or detected faces are framed by their own landmarks: any size.

        Args:
          images: Image(s), as ``edit`` takes them.
          neutrals: Their neutral faces (one for all, or one per image).
          what: The argument's name, for the message.

        Raises:
          ValueError: a neutral of another size than its image (naming both).
        """
        if neutrals is None or self.aligner is not None or self.detect_face:
            return
        image_list = [images] if is_single(images) else list(images)
        neutral_list = [neutrals] if is_single(neutrals) else list(neutrals)
        for image, neutral in zip(image_list, neutral_list * len(image_list) if len(neutral_list) == 1
                                  else neutral_list):
            size, neutral_size = source_size(image), source_size(neutral)
            if size and neutral_size and size != neutral_size:
                raise ValueError(f"{describe(neutral)}: neutral face of {neutral_size[0]}x{neutral_size[1]} "
                                 f"pixels for {describe(image)} of {size[0]}x{size[1]} ({what}); give a photo "
                                 f"of the same size (the same face crop is cut from both).")

    # -- plumbing -------------------------------------------------------------
    def _run(self, name: str, inputs: dict) -> dict:
        """Calls signature ``name`` in chunks of ``batch_size``; numpy outputs."""
        count = len(next(iter(inputs.values())))
        outputs = []
        for start in range(0, count, self.batch_size):
            chunk = {key: tf.constant(value[start:start + self.batch_size]) for key, value in inputs.items()}
            if self._live:
                function = getattr(self.model, name)
                result = function(*[chunk[argument] for argument in self._arguments[name]])
            else:
                result = self.model.signatures[name](**chunk)
            outputs.append({key: value.numpy() for key, value in result.items()})
        if not outputs:
            raise ValueError("No image given.")
        return {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}

    def _neutrals(self, neutrals, what):
        if neutrals is None:
            return None
        if self.has_neutralizer:
            self._refuse(neutrals, what)
        return self.load_images(neutrals)[0]

    def _require(self, neutrals, what):
        if neutrals is None:
            raise ValueError(f"{NO_NEUTRALIZER} Pass {what}: the real neutral face of each image.")
        return np.asarray(neutrals, np.float32)

    def _refuse(self, neutrals, what):
        if neutrals is not None and self.has_neutralizer:
            raise ValueError(f"This model makes neutral faces with its neutralizer; {what} is not used.")

    def _endpoint(self, expression) -> np.ndarray:
        """A bank name, a code, or a reference image -> one expression code."""
        if isinstance(expression, str) and (expression in self.bank or not os.path.exists(expression)):
            return self.bank.code(expression)
        if isinstance(expression, np.ndarray) and expression.shape == self.code_shape:
            return expression.astype(np.float32)
        if not self.has_neutralizer:
            raise ValueError(f"{NO_NEUTRALIZER} Give expression codes (Editor.expression_codes(images, "
                             f"neutrals)) or bank names instead of reference images.")
        codes = self.expression_codes(expression)
        return codes if codes.ndim == 3 else codes.mean(axis=0)


NO_NEUTRALIZER = ("This model was trained with neutral_source=dataset and has no neutralizer.")


def _as_bank(bank) -> ExpressionBank | None:
    if bank is None or isinstance(bank, ExpressionBank):
        return bank
    return ExpressionBank.load(bank)


def _common_batch(*named) -> int:
    sizes = {size for _, size in named if size != 1}
    if len(sizes) > 1:
        raise ValueError("Batch sizes differ: " + ", ".join(f"{n} has {s}" for n, s in named)
                         + " (give one item for all, or one per input).")
    return sizes.pop() if sizes else 1


def _repeat(values: np.ndarray, batch: int) -> np.ndarray:
    return np.repeat(values, batch, axis=0) if len(values) == 1 and batch > 1 else values


def _intensities(intensity, batch: int) -> np.ndarray:
    values = np.asarray(intensity, np.float32).reshape(-1)
    if len(values) not in (1, batch):
        raise ValueError(f"intensity must be one number or one per image ({batch}), got {len(values)}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"intensity must be finite, got {intensity}.")
    return np.broadcast_to(values, (batch,)).copy()


def _format(images01: np.ndarray, single: bool, output: str):
    if output not in RETURN_TYPES:
        raise ValueError(f"output must be one of {RETURN_TYPES}, got {output!r}.")
    if output == "float":
        result = images01.astype(np.float32)
    else:
        result = uint8_from_01(images01)
        if output == "pil":
            result = [Image.fromarray(image) for image in result]
    return result[0] if single else result
