"""The serving module: LEED's inference networks as a ``tf.Module`` with the
signatures of the SavedModel (docs/design.md section 3; written by
``leed_tf.inference.export``).

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

import time

import tensorflow as tf

from leed_tf import __version__
from leed_tf.config import OUTPUT_FORMS
from leed_tf.data.images import MAX_PIXELS, unit_from_01, unit_to_01
from leed_tf.inference.expression_bank import ExpressionBank, empty_bank
from leed_tf.inference.image_bytes import after, check, decode_face, encode_png
from leed_tf.model import LeedNetworks, code_shape

EXPORT_FORMAT = 1
# Float images may overshoot [0, 1] by rounding; more is a wrong range.
_RANGE_TOLERANCE = 1e-3
# Signatures whose images are encoded JPEG/PNG bytes (the others take floats).
BYTES_SIGNATURES = ("serving_default", "edit_with_expression")


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
        return {"output_png_bytes": encode_png(output), "output_image": output}

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
        return {"neutral_image": unit_to_01(self._nets.neutralize(unit_from_01(image)))}

    def _expression_code(self, image, neutral=None):
        checked, _ = self._check_batch(_present(image=image, neutral=neutral))
        images = {name: self._check_float_images(x, name) for name, x in checked.items()}
        return {"expression_code": self._codes_of(images["image"], images.get("neutral"))}

    def _edit_with_code(self, input_image, expression_code, intensity, input_neutral=None):
        checked, batch = self._check_batch(_present(input_image=input_image, input_neutral=input_neutral))
        images = {name: self._check_float_images(x, name) for name, x in checked.items()}
        codes = self._broadcast(expression_code, batch, "expression_code")
        codes = after([check(tf.reduce_all(tf.math.is_finite(codes)),
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
        lookup = check(known, "Unknown expression in [{}]; this model's expression bank has: {}.",
                       tf.strings.reduce_join(_printable(expression), separator=", "),
                       tf.strings.reduce_join(names, separator=", "))
        with tf.control_dependencies([lookup]):
            indices = tf.argmax(tf.cast(matches, tf.int32), axis=1)
        codes = tf.gather(self.expression_codes, indices)
        intensity = self._check_intensity(intensity, batch)
        output = self._edit_code(images["input_image"], images.get("input_neutral"), codes, intensity)
        return {"output_png_bytes": encode_png(output), "output_image": output}

    # -- the edit ---------------------------------------------------------
    def _neutrals(self, unit_images):
        """G_neu on several batches in one call."""
        sizes = [tf.shape(x)[0] for x in unit_images]
        return tf.split(self._nets.neutralize(tf.concat(unit_images, axis=0)), sizes, axis=0)

    # The edit math is ``LeedNetworks``'s; this only converts [0, 1] pixels,
    # makes missing neutral faces with G_neu and checks the result.
    def _edit_images(self, image, neutral, reference, reference_neutral, intensity):
        """``LeedNetworks.edit`` of [0, 1] images, in ``output_form``."""
        image, reference = unit_from_01(image), unit_from_01(reference)
        if neutral is None:
            neutral, reference_neutral = self._neutrals([image, reference])
        else:
            neutral, reference_neutral = unit_from_01(neutral), unit_from_01(reference_neutral)
        return self._finite(self._nets.edit(image, neutral, reference, reference_neutral, intensity,
                                            output=self.output_form), intensity)

    def _codes_of(self, image, neutral):
        """``e = X(E(I) - E(N))`` of [0, 1] images."""
        image = unit_from_01(image)
        neutral = self._neutrals([image])[0] if neutral is None else unit_from_01(neutral)
        return self._nets.image_expression_code(image, neutral)

    def _edit_code(self, image, neutral, expression_code, intensity):
        """``LeedNetworks.edit_with_code`` of [0, 1] images, in ``output_form``."""
        image = unit_from_01(image)
        neutral = self._neutrals([image])[0] if neutral is None else unit_from_01(neutral)
        return self._finite(self._nets.edit_with_code(image, neutral, expression_code, intensity,
                                                      output=self.output_form), intensity)

    @staticmethod
    def _finite(unit, intensity):
        """An edit in [-1, 1] as [0, 1] pixels, refused if not finite: finite
        but extreme intensities or codes can overflow to NaN, which no
        clipping removes."""
        output = unit_to_01(unit)
        finite = check(tf.reduce_all(tf.math.is_finite(output)), "The edited image holds NaN or Inf values: "
                       "intensity or the expression code is too large (intensity {}).", intensity)
        return after([finite], output)

    # -- validation ---------------------------------------------------------
    @staticmethod
    def _check_batch(named: dict):
        """Every input holds the same, non-zero number of elements."""
        names = list(named)
        sizes = {name: tf.shape(named[name])[0] for name in names}
        first = names[0]
        checks = [check(sizes[first] > 0, f"Empty batch: {first} holds no element.")]
        for name in names[1:]:
            checks.append(check(tf.equal(sizes[name], sizes[first]),
                                f"Batch sizes differ: {first} has {{}} elements but {name} has {{}}.",
                                sizes[first], sizes[name]))
        return {name: after(checks, named[name]) for name in names}, after(checks, sizes[first])

    @staticmethod
    def _broadcast(values, batch, name):
        """``values`` with one element or one per image, as one per image."""
        count = tf.shape(values)[0]
        one_or_all = check(tf.logical_or(tf.equal(count, batch), tf.equal(count, 1)),
                           f"{name} must hold one value or one per image; got {{}} for {{}} images.", count, batch)
        values = after([one_or_all], values)
        return tf.broadcast_to(values, tf.concat([[batch], tf.shape(values)[1:]], axis=0))

    def _check_intensity(self, intensity, batch):
        intensity = self._broadcast(intensity, batch, "intensity")
        finite = check(tf.reduce_all(tf.math.is_finite(intensity)), "intensity must be finite; got {}.",
                       intensity)
        return after([finite], intensity)

    @staticmethod
    def _check_float_images(images, name):
        finite = check(tf.reduce_all(tf.math.is_finite(images)), f"{name} holds NaN or Inf values.")
        images = after([finite], images)
        low, high = tf.reduce_min(images), tf.reduce_max(images)
        in_range = check(tf.logical_and(low >= -_RANGE_TOLERANCE, high <= 1.0 + _RANGE_TOLERANCE),
                         f"{name} must be RGB in [0, 1] (uint8 / 255); got values from {{}} to {{}}.",
                         low, high)
        return tf.clip_by_value(after([in_range], images), 0.0, 1.0)

    # -- bytes in, bytes out ------------------------------------------------
    def _decode_inputs(self, named: dict) -> dict:
        """Each bytes input decoded, one image of the request at a time.

        Decoding is the only step whose memory follows the (client-given)
        image size; one image at a time bounds a request's peak to one
        image of at most ``max_pixels``, whatever its batch size.
        """
        images, previous = {}, []
        for name, data in named.items():
            images[name] = self._decode_batch(after(previous, data), name)
            previous = [images[name]]
        return images

    def _decode_batch(self, data, name):
        indices = tf.range(tf.shape(data)[0])
        # The scope names the input in a decoder's own error ("node
        # decode_input_image/while/..."), which cannot carry the index.
        def decode(item):
            return decode_face(item[0], item[1], name, self.image_size, self.box, self.max_pixels)

        return tf.map_fn(decode, (data, indices),
                         fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32),
                         parallel_iterations=1, name=f"decode_{name}")

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


def _printable(strings, max_shown: int = 8, max_bytes: int = 64):
    """The first few of client-given strings, cut short and made valid UTF-8
    (an error message holding other bytes cannot be read by the client)."""
    shown = tf.strings.substr(strings[:max_shown], 0, max_bytes)
    return tf.strings.unicode_transcode(shown, "UTF-8", "UTF-8", errors="replace")
