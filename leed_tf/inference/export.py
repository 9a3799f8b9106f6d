"""SavedModel export for TensorFlow Serving (docs/design.md section 3).

One SavedModel in TF Serving's layout ``<export_base>/<version>/`` (default
``saved_models/leed/1``, ``2``, ...) holds the neutralizer G_neu, encoder E,
extractor X, interpolator I and decoder Dec as a ``tf.Module`` with these
signatures (batch dimension ``None`` everywhere, float images RGB in
``[0, 1]``, ``S`` = 128, code ``[S/16, S/16, 512 * width]``):

  =====================  ==========================================  ==================================
  signature              inputs                                      outputs
  =====================  ==========================================  ==================================
  serving_default        input_image, reference_image: JPEG/PNG      output_png_bytes: PNG [B] string,
                         bytes [B] string; intensity [B] or [1]      output_image [B, S, S, 3]
  edit_tensor            input_image, reference_image [B, S, S, 3];  output_image
                         intensity
  neutralize             image [B, S, S, 3]                          neutral_image
  expression_code        image                                       expression_code [B, h, w, c]
  edit_with_code         input_image; expression_code [B] or [1];    output_image
                         intensity
  edit_with_expression   input_image: JPEG/PNG bytes [B];            output_png_bytes, output_image
                         expression: names [B] or [1] (the
                         embedded bank); intensity
  =====================  ==========================================  ==================================

A model trained with ``neutral_source=dataset`` has no neutralizer: its
export has no ``neutralize`` signature, and every image input ``x`` of the
others comes with a second input ``x``'s real neutral face
(``input_neutral``, ``reference_neutral``, ``neutral``).

The PNG output is named ``output_png_bytes`` because TF Serving's REST API
base64-encodes a string output as ``{"b64": ...}`` only when its name ends in
``_bytes``; any other name would put raw PNG bytes into the JSON reply.

Inside the graph, ``serving_default`` decodes each image with
``tf.io.decode_image`` (JPEG or PNG; EXIF orientation is not applied), crops
the data set's face box (RaFD: rows 90-711, columns 30-651; otherwise the
centred square; an image that already is S x S is used as it is), resizes to
S with Lanczos-3 and rounds to 8-bit levels, as training images are. Every
input is validated in the graph (``EnsureShape``, ``tf.debugging.Assert``):
a wrong shape, bytes that are not JPEG/PNG, a header claiming no pixels or
more than ``max_pixels`` (read before decoding), an empty batch, mismatched
batch sizes, a non-finite intensity or a float image outside [0, 1] fail
the request with an ``InvalidArgumentError`` that says which input is wrong,
and the server carries on. A request decodes one image at a time, so its
memory is bounded by its largest image, not its batch (docs/serving.md,
"Hostile input").

Assets: ``assets/config.json`` (the run's config), ``assets/expression_bank.npz``
and ``assets/leed_export.json`` (what a client needs: image size, range, face
box, code shape, signatures, expression names). The bank's names and codes are
also the variables ``expression_names`` and ``expression_codes`` of the loaded
object. Loading needs TensorFlow only, not ``leed_tf``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time

import tensorflow as tf
from absl import logging

from leed_tf import __version__
from leed_tf.config import OUTPUT_FORMS, Config
from leed_tf.data.images import MAX_PIXELS
from leed_tf.data.loaders import RAFD_BOX
from leed_tf.inference.expression_bank import BANK_FILE, ExpressionBank, empty_bank
from leed_tf.model import LeedNetworks, restore_stage
from leed_tf.networks.layers import scaled

DEFAULT_EXPORT_BASE = os.path.join("saved_models", "leed")
CONFIG_ASSET = "config.json"
BANK_ASSET = BANK_FILE
METADATA_ASSET = "leed_export.json"
EXPORT_FORMAT = 1

# The networks inference takes from each stage's checkpoint (a subset of
# ``leed_tf.model.STAGE_NETWORKS``; the decoder is the LEED stage's).
INFERENCE_NETWORKS = {
    "neutralizer": ("neutralizer",),
    "autoencoder": ("encoder",),
    "leed": ("code_scale", "extractor", "interpolator", "decoder"),
}

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A PNG's width and height are the first 8 bytes of its IHDR chunk's data.
_PNG_MIN_BYTES = 33
# JPEG markers that open a frame header (SOF0-3, 5-7, 9-11, 13-15): sample
# precision, height and width follow the segment length.
_JPEG_SOF_MARKERS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
# Markers without a length field (TEM, RST0-7).
_JPEG_STANDALONE_MARKERS = (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7)
# Markers that cannot come before the frame header (SOI, EOI, SOS).
_JPEG_NOT_BEFORE_FRAME = (0xD8, 0xD9, 0xDA)
# Segments walked looking for the frame header: encoders write fewer than 30
# (APPn, DQT, DHT, COM); the cap bounds the work a hostile file can ask for.
_JPEG_MAX_SEGMENTS = 1024
# Larger sides than this are refused whatever max_pixels says, so that
# height * width cannot overflow int64.
_MAX_SIDE = 2**31 - 1
# Float images may overshoot [0, 1] by rounding; more is a wrong range.
_RANGE_TOLERANCE = 1e-3
# Signatures whose images are encoded JPEG/PNG bytes (the others take floats).
BYTES_SIGNATURES = ("serving_default", "edit_with_expression")


def face_box(config: Config):
    """The data set's face box ``(top, left, bottom, right)``, or None for
    the centred square (docs/design.md section 4)."""
    return tuple(RAFD_BOX) if config.data.dataset == "rafd" else None


def has_neutralizer(config: Config) -> bool:
    """Whether the run trained a neutralizer (``neutral_source=stargan``)."""
    return config.data.neutral_source == "stargan"


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
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json); train one with "
                                f"python scripts/train.py --run_dir={run_dir}.")
    config = Config.load(config_path)
    nets = LeedNetworks(config.model)
    neutralizer = has_neutralizer(config)
    stages = (["neutralizer"] if neutralizer else []) + ["autoencoder", "leed"]
    checkpoints, unfinished = {}, []
    for stage in stages:
        checkpoints[stage] = restore_stage(nets, run_dir, stage, INFERENCE_NETWORKS[stage])
        if not os.path.exists(os.path.join(run_dir, stage, "finished.json")):
            unfinished.append(stage)
    if unfinished:
        logging.warning("Stages %s of %s are not finished; using their latest checkpoints.",
                        ", ".join(unfinished), run_dir)
    return RestoredRun(config, nets, neutralizer, checkpoints, unfinished)


def code_shape(config) -> tuple[int, int, int]:
    """Shape of one code ``[S/16, S/16, 512 * width]`` for a ``ModelConfig``."""
    side = config.image_size // 16
    return (side, side, scaled(512, config.width))


class LeedServingModule(tf.Module):
    """The inference networks and the signatures of the export.

    It serves two purposes: ``tf.saved_model.save`` writes it, and
    ``leed_tf.inference.editor.Editor.from_run_dir`` calls it in memory, so a run folder
    and its export run the same graph.

    Args:
      nets: The networks (only E, Dec, X, I and, if used, G_neu matter).
      has_neutralizer: Whether G_neu makes the neutral faces; otherwise
        every image input comes with its real neutral face.
      box: The data set's face box ``(top, left, bottom, right)``, or None
        for the centred square.
      bank: The expression bank embedded for ``edit_with_expression``.
      output_form: ``decoded``, the paper's ``Dec(z_out)``; ``residual``,
        ``I_in + Dec(z_out) - Dec(z_self)`` with ``z_self`` the input's
        self-edit code (``leed_tf.model.LeedNetworks.edit``): only the change
        the edit decodes to is applied, detail the decoder cannot reproduce
        is kept, and editing a face with itself returns it unchanged; or
        ``neutral_residual``, ``N_in + Dec(z_out) - Dec(z_nn)``: the change
        applied to the input's neutral face, so no trace of the input's own
        expression remains (an edit towards neutral returns ``N_in``).
      max_pixels: Largest encoded image (width x height) accepted, checked on
        the header before decoding.
    """

    def __init__(self, nets: LeedNetworks, *, has_neutralizer: bool = True, box=None,
                 bank: ExpressionBank | None = None, output_form: str = "decoded",
                 max_pixels: int = MAX_PIXELS):
        super().__init__(name="leed")
        # A plain Python object: the networks are reached through the
        # functions and ``network_variables``, not tracked as Keras objects.
        self._nets = nets
        self.image_size = int(nets.config.image_size)
        self.code_shape = code_shape(nets.config)
        self.has_neutralizer = bool(has_neutralizer)
        self.box = None if box is None else tuple(int(v) for v in box)
        self.max_pixels = int(max_pixels)
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive number of pixels, got {max_pixels}.")
        if output_form not in OUTPUT_FORMS:
            raise ValueError(f"output_form must be one of {OUTPUT_FORMS}, got {output_form!r}.")
        self.output_form = output_form
        networks = [nets.encoder, nets.code_scale, nets.extractor, nets.interpolator, nets.decoder]
        if self.has_neutralizer:
            networks.insert(0, nets.neutralizer)
        self.network_variables = [v for network in networks for v in network.variables]
        bank = bank if bank is not None else empty_bank(self.code_shape)
        if bank.code_shape != self.code_shape:
            raise ValueError(f"The expression bank holds codes of shape {bank.code_shape}, but this "
                             f"model's codes are {self.code_shape}; build the bank with this model.")
        self.bank = bank
        self.expression_names = tf.Variable(tf.constant(list(bank.names), tf.string, shape=[len(bank)]),
                                            trainable=False, name="expression_names")
        self.expression_codes = tf.Variable(bank.codes, trainable=False, name="expression_codes")
        self.face_box = tf.Variable(list(self.box) if self.box else [-1, -1, -1, -1], dtype=tf.int32,
                                    trainable=False, name="face_box")
        for name, arguments in self.signature_arguments().items():
            body = getattr(self, f"_{name}")
            specs = [self._spec(name, argument) for argument in arguments]
            setattr(self, name, tf.function(_positional(body, arguments, specs), input_signature=specs,
                                            autograph=False))

    # -- signatures -------------------------------------------------------
    def signature_arguments(self) -> dict[str, tuple[str, ...]]:
        """Signature name -> its input names, in order."""
        if self.has_neutralizer:
            return {
                "serving_default": ("input_image", "reference_image", "intensity"),
                "edit_tensor": ("input_image", "reference_image", "intensity"),
                "neutralize": ("image",),
                "expression_code": ("image",),
                "edit_with_code": ("input_image", "expression_code", "intensity"),
                "edit_with_expression": ("input_image", "expression", "intensity"),
            }
        return {
            "serving_default": ("input_image", "input_neutral", "reference_image", "reference_neutral",
                                "intensity"),
            "edit_tensor": ("input_image", "input_neutral", "reference_image", "reference_neutral",
                            "intensity"),
            "expression_code": ("image", "neutral"),
            "edit_with_code": ("input_image", "input_neutral", "expression_code", "intensity"),
            "edit_with_expression": ("input_image", "input_neutral", "expression", "intensity"),
        }

    def signature_functions(self) -> dict:
        """Signature name -> its ``tf.function`` (positional arguments)."""
        return {name: getattr(self, name) for name in self.signature_arguments()}

    def concrete_signatures(self) -> dict:
        """The signatures to save, for ``tf.saved_model.save``."""
        return {name: fn.get_concrete_function() for name, fn in self.signature_functions().items()}

    def _spec(self, signature: str, argument: str) -> tf.TensorSpec:
        s = self.image_size
        if argument == "intensity":
            return tf.TensorSpec([None], tf.float32, name=argument)
        if argument == "expression":
            return tf.TensorSpec([None], tf.string, name=argument)
        if argument == "expression_code":
            return tf.TensorSpec([None, *self.code_shape], tf.float32, name=argument)
        if signature in BYTES_SIGNATURES:
            return tf.TensorSpec([None], tf.string, name=argument)
        return tf.TensorSpec([None, s, s, 3], tf.float32, name=argument)

    def _serving_default(self, input_image, reference_image, intensity, input_neutral=None,
                         reference_neutral=None):
        named = _present(input_image=input_image, input_neutral=input_neutral,
                         reference_image=reference_image, reference_neutral=reference_neutral)
        checked, batch = self._check_batch(named)
        images = self._decode_inputs(checked)
        intensity = self._check_intensity(intensity, batch)
        output = self._edit_images(images["input_image"], images.get("input_neutral"),
                                   images["reference_image"], images.get("reference_neutral"), intensity)
        return {"output_png_bytes": self._encode_png(output), "output_image": output}

    def _edit_tensor(self, input_image, reference_image, intensity, input_neutral=None,
                     reference_neutral=None):
        named = _present(input_image=input_image, input_neutral=input_neutral,
                         reference_image=reference_image, reference_neutral=reference_neutral)
        checked, batch = self._check_batch(named)
        images = {name: self._check_float_images(x, name) for name, x in checked.items()}
        intensity = self._check_intensity(intensity, batch)
        return {"output_image": self._edit_images(images["input_image"], images.get("input_neutral"),
                                                  images["reference_image"], images.get("reference_neutral"),
                                                  intensity)}

    def _neutralize(self, image):
        checked, _ = self._check_batch({"image": image})
        image = self._check_float_images(checked["image"], "image")
        return {"neutral_image": _to_output(self._nets.neutralize(_to_unit(image)))}

    def _expression_code(self, image, neutral=None):
        checked, _ = self._check_batch(_present(image=image, neutral=neutral))
        images = {name: self._check_float_images(x, name) for name, x in checked.items()}
        return {"expression_code": self._codes_of(images["image"], images.get("neutral"))}

    def _edit_with_code(self, input_image, expression_code, intensity, input_neutral=None):
        checked, batch = self._check_batch(_present(input_image=input_image, input_neutral=input_neutral))
        images = {name: self._check_float_images(x, name) for name, x in checked.items()}
        codes = self._broadcast(expression_code, batch, "expression_code")
        codes = _after([_check(tf.reduce_all(tf.math.is_finite(codes)),
                               "expression_code holds NaN or Inf values.")], codes)
        intensity = self._check_intensity(intensity, batch)
        return {"output_image": self._edit_code(images["input_image"], images.get("input_neutral"),
                                                codes, intensity)}

    def _edit_with_expression(self, input_image, expression, intensity, input_neutral=None):
        checked, batch = self._check_batch(_present(input_image=input_image, input_neutral=input_neutral))
        images = self._decode_inputs(checked)
        expression = self._broadcast(expression, batch, "expression")
        names = self.expression_names.read_value()
        matches = tf.equal(expression[:, None], names[None, :])
        known = tf.logical_and(tf.size(names) > 0, tf.reduce_all(tf.reduce_any(matches, axis=1)))
        lookup = _check(known, "Unknown expression in [{}]; this model's expression bank has: {}.",
                        tf.strings.reduce_join(_printable(expression), separator=", "),
                        tf.strings.reduce_join(names, separator=", "))
        with tf.control_dependencies([lookup]):
            indices = tf.argmax(tf.cast(matches, tf.int32), axis=1)
        codes = tf.gather(self.expression_codes, indices)
        intensity = self._check_intensity(intensity, batch)
        output = self._edit_code(images["input_image"], images.get("input_neutral"), codes, intensity)
        return {"output_png_bytes": self._encode_png(output), "output_image": output}

    # -- the edit ---------------------------------------------------------
    def _neutrals(self, unit_images):
        """G_neu on several batches in one call."""
        sizes = [tf.shape(x)[0] for x in unit_images]
        return tf.split(self._nets.neutralize(tf.concat(unit_images, axis=0)), sizes, axis=0)

    def _edit_images(self, image, neutral, reference, reference_neutral, intensity):
        """``Dec(n_in + a * I([n_in, X(z_ref - n_ref)]))`` on [0, 1] images."""
        image, reference = _to_unit(image), _to_unit(reference)
        if neutral is None:
            neutral, reference_neutral = self._neutrals([image, reference])
        else:
            neutral, reference_neutral = _to_unit(neutral), _to_unit(reference_neutral)
        codes = self._nets.encoder(tf.concat([neutral, reference, reference_neutral], axis=0))
        neutral_code, reference_code, reference_neutral_code = tf.split(codes, 3, axis=0)
        expression = self._nets.expression_code(reference_code, reference_neutral_code)
        return self._render(image, neutral, neutral_code, expression, intensity)

    def _codes_of(self, image, neutral):
        """``e = X(E(I) - E(N))`` of [0, 1] images."""
        image = _to_unit(image)
        neutral = self._neutrals([image])[0] if neutral is None else _to_unit(neutral)
        code, neutral_code = tf.split(self._nets.encoder(tf.concat([image, neutral], axis=0)), 2, axis=0)
        return self._nets.expression_code(code, neutral_code)

    def _edit_code(self, image, neutral, expression_code, intensity):
        """``Dec(n_in + a * I([n_in, e]))`` for given expression codes."""
        image = _to_unit(image)
        neutral = self._neutrals([image])[0] if neutral is None else _to_unit(neutral)
        return self._render(image, neutral, self._nets.encoder(neutral), expression_code, intensity)

    def _render(self, image, neutral, neutral_code, expression_code, intensity):
        """The edited code in ``output_form`` (``LeedNetworks.render``), as
        [0, 1] pixels; ``image`` and ``neutral`` in [-1, 1].

        Finite but extreme intensities or codes can overflow to NaN, which
        no clipping removes: such an edit is refused rather than returned.
        """
        edited = self._nets.edited_code(neutral_code, expression_code, intensity)
        code = self._nets.encoder(image) if self.output_form == "residual" else None
        output = _to_output(self._nets.render(edited, self.output_form, image, code, neutral, neutral_code))
        finite = _check(tf.reduce_all(tf.math.is_finite(output)), "The edited image holds NaN or Inf values: "
                        "intensity or the expression code is too large (intensity {}).", intensity)
        return _after([finite], output)

    # -- validation ---------------------------------------------------------
    @staticmethod
    def _check_batch(named: dict):
        """Every input holds the same, non-zero number of elements."""
        names = list(named)
        sizes = {name: tf.shape(named[name])[0] for name in names}
        first = names[0]
        checks = [_check(sizes[first] > 0, f"Empty batch: {first} holds no element.")]
        for name in names[1:]:
            checks.append(_check(tf.equal(sizes[name], sizes[first]),
                                 f"Batch sizes differ: {first} has {{}} elements but {name} has {{}}.",
                                 sizes[first], sizes[name]))
        return {name: _after(checks, named[name]) for name in names}, _after(checks, sizes[first])

    @staticmethod
    def _broadcast(values, batch, name):
        """``values`` with one element or one per image, as one per image."""
        count = tf.shape(values)[0]
        check = _check(tf.logical_or(tf.equal(count, batch), tf.equal(count, 1)),
                       f"{name} must hold one value or one per image; got {{}} for {{}} images.", count, batch)
        values = _after([check], values)
        return tf.broadcast_to(values, tf.concat([[batch], tf.shape(values)[1:]], axis=0))

    def _check_intensity(self, intensity, batch):
        intensity = self._broadcast(intensity, batch, "intensity")
        finite = _check(tf.reduce_all(tf.math.is_finite(intensity)), "intensity must be finite; got {}.",
                        intensity)
        return _after([finite], intensity)

    @staticmethod
    def _check_float_images(images, name):
        finite = _check(tf.reduce_all(tf.math.is_finite(images)), f"{name} holds NaN or Inf values.")
        images = _after([finite], images)
        low, high = tf.reduce_min(images), tf.reduce_max(images)
        in_range = _check(tf.logical_and(low >= -_RANGE_TOLERANCE, high <= 1.0 + _RANGE_TOLERANCE),
                          f"{name} must be RGB in [0, 1] (uint8 / 255); got values from {{}} to {{}}.",
                          low, high)
        return tf.clip_by_value(_after([in_range], images), 0.0, 1.0)

    # -- bytes in, bytes out ------------------------------------------------
    def _decode_inputs(self, named: dict) -> dict:
        """Each bytes input decoded, one image of the request at a time.

        Decoding is the only step whose memory follows the (client-given)
        image size; one image at a time bounds a request's peak to one
        image of at most ``max_pixels``, whatever its batch size.
        """
        images, previous = {}, []
        for name, data in named.items():
            images[name] = self._decode_batch(_after(previous, data), name)
            previous = [images[name]]
        return images

    def _decode_batch(self, data, name):
        indices = tf.range(tf.shape(data)[0])
        # The scope names the input in a decoder's own error ("node
        # decode_input_image/while/..."), which cannot carry the index.
        return tf.map_fn(lambda item: self._decode_one(item[0], item[1], name), (data, indices),
                         fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32),
                         parallel_iterations=1, name=f"decode_{name}")

    def _decode_one(self, data, index, name):
        """One JPEG/PNG -> face crop ``[S, S, 3]`` in [0, 1], validated first.

        The header is read here (size, and that it is a header at all) and
        checked before ``decode_image`` allocates anything, so a hostile file
        costs at most ``max_pixels`` worth of decoding and is refused with a
        message naming it.
        """
        where = f"{name}[{{}}]"
        length = tf.strings.length(data)
        is_jpeg = tf.equal(tf.strings.substr(data, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
        is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
        checks = [
            _check(length > 0, where + " is empty (0 bytes).", index),
            _check(tf.logical_or(is_jpeg, is_png), where + " is not a JPEG or PNG image ({} bytes that "
                   "start with neither signature).", index, length),
            _check(tf.logical_or(is_jpeg, length >= _PNG_MIN_BYTES),
                   where + " is a truncated PNG ({} bytes).", index, length),
        ]
        with tf.control_dependencies(checks):
            height, width, readable = tf.cond(is_jpeg, lambda: _jpeg_size(data), lambda: _png_size(data))
        header_checks = [
            _check(tf.logical_or(is_png, readable), where + " is a JPEG without a readable frame header "
                   "(no SOF marker among its header segments; {} bytes).", index, length),
            _check(tf.logical_or(is_jpeg, readable), where + " is a PNG whose first chunk is not IHDR.",
                   index),
        ]
        side_limit = min(self.max_pixels, _MAX_SIDE)
        with tf.control_dependencies(header_checks):
            sides_ok = tf.logical_and(tf.logical_and(height > 0, width > 0),
                                      tf.logical_and(height <= side_limit, width <= side_limit))
            # With both sides within the limit the product cannot overflow.
            size_ok = tf.logical_and(sides_ok, height * width <= self.max_pixels)
        size_check = _check(size_ok, where + f" has an invalid size: {{}} x {{}} pixels (the limit is "
                            f"{self.max_pixels} pixels).", index, width, height)
        with tf.control_dependencies([size_check]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return self._crop_and_resize(image, index, where)

    def _crop_and_resize(self, image, index, where):
        s = self.image_size
        shape = tf.shape(image)
        height, width = shape[0], shape[1]
        if self.box is None:
            side = tf.minimum(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            bottom, right = top + side, left + side
        else:
            # An image that is already a face crop is used as it is.
            is_crop = tf.logical_and(tf.equal(height, s), tf.equal(width, s))
            top, left, bottom, right = (tf.where(is_crop, default, tf.constant(v, tf.int32))
                                        for v, default in zip(self.box, (0, 0, s, s)))
            fits = _check(tf.logical_and(height >= bottom, width >= right),
                          where + f" of {{}} x {{}} pixels is smaller than the face box (top, left, bottom, "
                          f"right) = {self.box}.", index, width, height)
            image = _after([fits], image)
        crop = tf.cast(image[top:bottom, left:right], tf.float32)
        resized = tf.image.resize(crop[None], [s, s], method="lanczos3", antialias=True)[0]
        return tf.round(tf.clip_by_value(resized, 0.0, 255.0)) / 255.0

    @staticmethod
    def _encode_png(images):
        pixels = tf.cast(tf.round(images * 255.0), tf.uint8)
        return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))

    # -- description --------------------------------------------------------
    def metadata(self, source: str = "") -> dict:
        """What a client needs to know, written as ``assets/leed_export.json``."""
        return {
            "format": EXPORT_FORMAT,
            "model": "LEED (Wu & Lu, ECCV 2020), leed_tf " + __version__,
            "source": source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "image_size": self.image_size,
            "image_range": [0.0, 1.0],
            "image_layout": "RGB, height x width x channels",
            "face_box": list(self.box) if self.box else None,
            "face_box_order": "top, left, bottom, right (None: centred square)",
            "code_shape": list(self.code_shape),
            "has_neutralizer": self.has_neutralizer,
            "expression_names": list(self.bank.names),
            "signatures": {name: list(args) for name, args in self.signature_arguments().items()},
            "output_form": self.output_form,
            "max_pixels": self.max_pixels,
        }


def _positional(body, arguments, specs):
    def function(*args):
        # Neither TF Serving nor a loaded signature checks shapes against the
        # signature (only dtypes): EnsureShape refuses a wrong rank or size at
        # run time, naming the input ("Shape of tensor input_image [...] is not
        # compatible with expected shape [?,128,128,3]").
        checked = [tf.ensure_shape(x, spec.shape) for x, spec in zip(args, specs)]
        return body(**dict(zip(arguments, checked)))

    function.__name__ = body.__name__.lstrip("_")
    return function


def _present(**named):
    return {name: value for name, value in named.items() if value is not None}


def _check(condition, template: str, *values):
    """``tf.debugging.Assert`` with one readable message: ``template``'s ``{}``
    are filled with ``values`` (``tf.strings.format``)."""
    message = tf.strings.format(template, values) if values else template
    return tf.debugging.Assert(condition, [message])


def _after(checks, tensor):
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(tensor)


def _printable(strings, max_shown: int = 8, max_bytes: int = 64):
    """The first few of client-given strings, cut short and made valid UTF-8
    (an error message holding other bytes cannot be read by the client)."""
    shown = tf.strings.substr(strings[:max_shown], 0, max_bytes)
    return tf.strings.unicode_transcode(shown, "UTF-8", "UTF-8", errors="replace")


def _to_unit(images01):
    return images01 * 2.0 - 1.0


def _to_output(unit):
    return tf.clip_by_value((unit + 1.0) * 0.5, 0.0, 1.0)


def _jpeg_size(data):
    """``(height, width, readable)`` from a JPEG's frame header.

    The marker segments after SOI are walked to the first SOF. Read here
    rather than by ``tf.image.extract_jpeg_shape`` so that a malformed header
    is refused by a check that names the input (the op's own error cannot).
    """
    length = tf.cast(tf.strings.length(data), tf.int64)
    # Reads at or past the end see zeros, and are refused below.
    padded = tf.strings.join([data, b"\0" * 9])

    # state: 0 searching, 1 frame header read, 2 malformed.
    def searching(position, state, height, width):
        return tf.equal(state, 0)

    def next_segment(position, state, height, width):
        read_at = tf.minimum(position, length)
        head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, read_at, 9), tf.uint8), tf.int64)
        marker = head[1]
        is_frame = _any_equal(marker, _JPEG_SOF_MARKERS)
        is_fill = tf.equal(marker, 0xFF)
        standalone = _any_equal(marker, _JPEG_STANDALONE_MARKERS)
        segment = head[2] * 256 + head[3]
        malformed = tf.reduce_any(tf.stack([
            tf.not_equal(head[0], 0xFF), position + 4 > length, _any_equal(marker, _JPEG_NOT_BEFORE_FRAME),
            tf.logical_and(is_frame, position + 9 > length),
            tf.logical_and(tf.logical_not(is_fill | standalone), segment < 2)]))
        state = tf.where(malformed, 2, tf.where(is_frame, 1, 0))
        step = tf.where(is_fill, tf.constant(1, tf.int64), tf.where(standalone, tf.constant(2, tf.int64),
                                                                     2 + segment))
        found = tf.logical_and(is_frame, tf.logical_not(malformed))
        height = tf.where(found, head[5] * 256 + head[6], height)
        width = tf.where(found, head[7] * 256 + head[8], width)
        return position + step, state, height, width

    zero = tf.constant(0, tf.int64)
    _, state, height, width = tf.while_loop(
        searching, next_segment, (zero + 2, tf.constant(0), zero, zero),
        maximum_iterations=_JPEG_MAX_SEGMENTS, parallel_iterations=1)
    return height, width, tf.equal(state, 1)


def _png_size(data):
    """``(height, width, readable)`` from a PNG's IHDR chunk, which must come first."""
    # int64: a PNG side may be up to 2**32 - 1, and the pixel count more.
    header = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)

    def big_endian(b):
        return ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]

    is_ihdr = tf.equal(tf.strings.substr(data, 12, 4), b"IHDR")
    return big_endian(header[4:8]), big_endian(header[0:4]), is_ihdr


def _any_equal(value, constants):
    return tf.reduce_any(tf.equal(value, tf.constant(constants, value.dtype)))


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
                config: Config | None = None, source: str = "") -> str:
    """Writes ``module`` with its signatures and assets, atomically.

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
               expression_bank: str | ExpressionBank | None = None, output_form: str | None = None) -> str:
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

    Returns:
      The version folder written.
    """
    restored = restore_networks(run_dir)
    config = restored.config
    output_form = output_form or config.output_form
    module = LeedServingModule(restored.nets, has_neutralizer=restored.has_neutralizer,
                               box=face_box(config), output_form=output_form)
    bank = _bank_for_run(run_dir, config, module, expression_bank)
    if bank is not None:
        module = LeedServingModule(restored.nets, has_neutralizer=restored.has_neutralizer,
                                   box=face_box(config), bank=bank, output_form=output_form)
    return save_module(module, export_base, version=version, config=config,
                       source=os.path.abspath(run_dir))


def _bank_for_run(run_dir, config, module, expression_bank):
    if isinstance(expression_bank, ExpressionBank):
        return expression_bank
    if expression_bank:
        return ExpressionBank.load(expression_bank)
    path = os.path.join(run_dir, BANK_FILE)
    if os.path.exists(path):
        return ExpressionBank.load(path)
    if config.data.dataset == "synthetic":
        from leed_tf.inference.editor import Editor
        from leed_tf.inference.expression_bank import build_expression_bank, labelled_faces

        faces = labelled_faces("synthetic", image_size=config.model.image_size,
                               real_neutrals=not module.has_neutralizer,
                               synthetic_seed=config.data.synthetic_seed)
        bank = build_expression_bank(Editor(module).expression_codes, faces)
        logging.info("Built an expression bank from %s into %s.", faces.source, bank.save(path))
        return bank
    logging.warning("No expression bank for %s: edit_with_expression will reject every name. "
                    "Build one with scripts/build_expression_bank.py --run_dir=%s.", run_dir, run_dir)
    return None
