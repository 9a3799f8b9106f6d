"""LEED's networks together, and the forward math every caller shares.

Symbols of the paper (docs/design.md section 1) and their names here:

  ======================  ==========================  =====================
  paper                   here                         shape (width 1)
  ======================  ==========================  =====================
  I_in, I_ref             ``image``                    [B, 128, 128, 3]
  N_in, N_ref             ``neutral`` (G_neu output)   [B, 128, 128, 3]
  z = E(I)                ``code``                     [B, 8, 8, 512]
  n = E(N)                ``neutral_code``             [B, 8, 8, 512]
  d = z - n               ``displacement``             [B, 8, 8, 512]
  e = X(d)                ``expression_code``          [B, 8, 8, 512]
  alpha                   ``intensity``                [B] or scalar
  z_out = n + a I([n,e])  ``edited_code``              [B, 8, 8, 512]
  ======================  ==========================  =====================

X, I and the code critic see standardised codes: ``e = X(d / s_d)``,
``z_out = n + alpha * s_d * I([(n - m) / s, e])``, ``C((z - m) / s)``, with
per-channel statistics ``m``, ``s``, ``s_d`` measured when the LEED stage
starts (``networks.CodeScale``; identity until then, or with
``standardize_codes=False``).

Under a mixed-precision policy the networks compute in float16 or bfloat16;
the code arithmetic (``d = z - n``, ``z_out = n + alpha * I(...)``) stays in
float32, the variables' dtype, and takes network outputs cast up.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from leed_tf import networks
from leed_tf.config import OUTPUT_FORMS, ModelConfig
from leed_tf.run_folder import STAGE_NETWORKS, RunFolder


def code_shape(config: ModelConfig) -> tuple[int, int, int]:
    """Shape of one code ``[S/16, S/16, 512 * width]`` (``S/8`` with ``code_stride=8``)."""
    side = config.image_size // config.code_stride
    return (side, side, networks.layers.scaled(512, config.width))


def neutralizer_domains(config: ModelConfig) -> int:
    """The StarGAN neutralizer's number of domains (``model.stargan_domains``)."""
    return config.num_expressions if config.stargan_domains == "expressions" else 2


def neutral_domain(config: ModelConfig) -> int:
    """The neutralizer's neutral domain: the neutral expression, or domain 0
    of the two ``neutral_expressive`` domains."""
    return config.neutral_index if config.stargan_domains == "expressions" else 0


def neutralizer_labels(config: ModelConfig, expressions: np.ndarray) -> np.ndarray:
    """Each face's neutralizer domain from its expression label (int32)."""
    expressions = np.asarray(expressions, np.int32)
    if config.stargan_domains == "expressions":
        return expressions
    return (expressions != config.neutral_index).astype(np.int32)


class LeedNetworks:
    """Every network of LEED, built for one ``ModelConfig``.

    Attributes:
      encoder: E (Table 3).
      decoder: Dec (Table 4).
      extractor: X (Table 1).
      interpolator: I (Table 1).
      critic: code critic (Table 2).
      regularizer: Q (Table 5).
      siamese: S (Table 6).
      neutralizer: StarGAN generator G_neu.
      neutralizer_critic: StarGAN critic.
    """

    def __init__(self, config: ModelConfig):
        self.config = config
        w, slope = config.width, config.leaky_slope
        self.encoder = networks.Encoder(w, config.encoder_norm, config.code_stride, config.patch_path,
                                        name="encoder")
        self.decoder = networks.Decoder(w, config.code_stride, config.patch_path, name="decoder")
        self.extractor = networks.Extractor(w, slope, config.code_skips, name="extractor")
        self.interpolator = networks.Interpolator(w, slope, config.code_skips, name="interpolator")
        self.critic = networks.CodeCritic(w, slope, name="code_critic")
        self.code_scale = networks.CodeScale(networks.layers.scaled(512, w), name="code_scale")
        self.regularizer = networks.Regularizer(w, slope, name="regularizer")
        self.siamese = networks.Siamese(w, slope, last_channels=config.siamese_last_channels,
                                        name="siamese")
        domains = neutralizer_domains(config)
        self.neutralizer = networks.StarGANGenerator(
            w, domains, config.stargan_residual_blocks, output=config.stargan_output, name="neutralizer")
        self.neutralizer_critic = networks.StarGANCritic(w, domains, config.image_size,
                                                         name="neutralizer_critic")
        self._build()

    def _build(self):
        """Creates every variable so checkpoints restore eagerly."""
        size = self.config.image_size
        image = ops.zeros((1, size, size, 3))
        code = ops.zeros(self._code_shape())
        self.encoder(image)
        self.decoder(code)
        expression = self.extractor(code)
        self.interpolator(ops.concatenate([code, expression], axis=-1))
        self.critic(code)
        self.regularizer(code)
        self.siamese(image)
        self.neutralizer((image, ops.zeros((1, neutralizer_domains(self.config)))))
        self.neutralizer_critic(image)

    def decoder_copy(self) -> networks.Decoder:
        """A separate decoder with the current decoder's weights."""
        copy = networks.Decoder(self.config.width, self.config.code_stride, self.config.patch_path,
                                name="decoder_copy")
        copy(ops.zeros(self._code_shape()))
        copy.set_weights(self.decoder.get_weights())
        return copy

    def _code_shape(self):
        return (1, *code_shape(self.config))

    def neutralize(self, images):
        """G_neu(I, neutral): the neutral face of each image."""
        batch = tf.shape(images)[0]
        labels = tf.one_hot(tf.fill([batch], neutral_domain(self.config)), neutralizer_domains(self.config))
        return self.neutralizer((images, labels), training=False)

    def expression_code(self, code, neutral_code, training=False):
        """e = X(z - n)."""
        displacement = self._code(code) - self._code(neutral_code)
        return self.extractor(self.code_scale.to_units(displacement), training=training)

    def edited_code(self, neutral_code, expression_code, intensity=1.0, training=False):
        """z_out = n + alpha * I(concat[n, e]), in the variables' dtype."""
        neutral_code = self._code(neutral_code)
        residual = self.code_scale.from_units(self._code(self.interpolator(
            ops.concatenate([self.code_scale.standardize(neutral_code), self._code(expression_code)], axis=-1),
            training=training)))
        intensity = tf.cast(intensity, residual.dtype)
        if intensity.shape.rank == 1:
            intensity = intensity[:, None, None, None]
        return neutral_code + intensity * residual

    def critic_input(self, code):
        """A code as the critic sees it: standardised (``CodeScale``)."""
        return self.code_scale.standardize(self._code(code))

    def _code(self, tensor):
        # Code arithmetic in the variables' dtype: float32 under the mixed
        # policies (network outputs cast up), float64 in float64 tests.
        return tf.cast(tensor, self.interpolator.variable_dtype)

    def edit(self, image, neutral, reference, reference_neutral, intensity=1.0, output="decoded"):
        """The whole reference-driven edit on images in [-1, 1] (inference
        mode), float32 under every precision policy.

        Args:
          image, neutral: The input face and its neutral face.
          reference, reference_neutral: The reference face and its neutral face.
          intensity: alpha, scalar or ``[B]``.
          output: An output form (``OUTPUT_FORMS``): ``"decoded"``, the paper's
            ``Dec(z_out)``; ``"residual"``, ``image + Dec(z_out) -
            Dec(z_self)`` with ``z_self`` the input's self-edit code: only the
            change the edit decodes to is applied, so detail the decoder
            cannot reproduce is kept from the input; or
            ``"neutral_residual"``, ``neutral + Dec(z_out) - Dec(z_nn)`` with
            ``z_nn`` the neutral face's own edit (no displacement): the
            change applied to the input's neutral face, which carries no
            trace of the input's own expression.
        """
        check_output(output)
        # One encoder pass; the input's own code only where its form needs it.
        faces = [neutral, reference, reference_neutral] + ([image] if output == "residual" else [])
        codes = tf.split(self.encoder(tf.concat(faces, axis=0)), len(faces), axis=0)
        expression = self.expression_code(codes[1], codes[2])
        return self.edit_with_code(image, neutral, expression, intensity, output, neutral_code=codes[0],
                                   code=codes[3] if output == "residual" else None)

    def image_expression_code(self, image, neutral):
        """``e = X(E(I) - E(N))`` of faces in [-1, 1] and their neutral faces."""
        code, neutral_code = tf.split(self.encoder(tf.concat([image, neutral], axis=0)), 2, axis=0)
        return self.expression_code(code, neutral_code)

    def edit_with_code(self, image, neutral, expression_code, intensity=1.0, output="decoded", *,
                       neutral_code=None, code=None):
        """The edit for a given expression code ``e``: ``z_out = n + alpha *
        I([n, e])`` rendered in form ``output`` (see ``edit``). The codes
        ``n = E(neutral)`` and ``z = E(image)`` are computed unless given."""
        check_output(output)
        if neutral_code is None:
            neutral_code = self.encoder(neutral)
        if code is None and output == "residual":
            code = self.encoder(image)
        edited = self.edited_code(neutral_code, expression_code, intensity)
        return self.render(edited, output, image, code, neutral, neutral_code)

    def render(self, edited, output, image, code, neutral, neutral_code):
        """An edited code as an image in form ``output`` (see ``edit``):
        decoded, or the change from the anchor's self-edit (or from the
        anchor's own code, ``model.residual_base="code"``) added to the
        anchor (the input, or its neutral face for ``neutral_residual``)."""
        if output == "decoded":
            return full_precision(self.decoder(edited, training=False))
        anchor, anchor_code = anchor_of(output, image, code, neutral, neutral_code)
        if self.config.residual_base == "self_edit":
            anchor_code = self.edited_code(neutral_code, self.expression_code(anchor_code, neutral_code))
        return _apply_residual(anchor, self.decoder(tf.concat([edited, anchor_code], 0), training=False))

    def feature_arithmetic(self, image, neutral, reference, reference_neutral, decoder=None,
                           output="decoded"):
        """Baseline without X and I: ``Dec(n_in + (z_ref - n_ref))`` (or its
        residual forms ``image + Dec(...) - Dec(z_in)`` and ``neutral +
        Dec(...) - Dec(n_in)``)."""
        codes = self.encoder(tf.concat([image, neutral, reference, reference_neutral], axis=0))
        code, neutral_code, reference_code, reference_neutral_code = tf.split(codes, 4, axis=0)
        decoder = decoder or self.decoder
        edited = neutral_code + reference_code - reference_neutral_code
        if output == "decoded":
            return full_precision(decoder(edited, training=False))
        anchor, anchor_code = anchor_of(output, image, code, neutral, neutral_code)
        return _apply_residual(anchor, decoder(tf.concat([edited, anchor_code], 0), training=False))

    def truth_code_edit(self, image, truth, decoder=None, output="decoded", neutral=None):
        """The ceiling of every editor of this auto-encoder's codes, where a
        ground truth exists (synthetic data): the truth's own code decoded,
        ``Dec(E(truth))`` (or ``image + Dec(E(truth)) - Dec(E(image))``, or
        with ``neutral`` in place of ``image`` for ``neutral_residual``)."""
        decoder = decoder or self.decoder
        check_output(output)
        if output == "neutral_residual" and neutral is None:
            raise ValueError("The neutral_residual form needs the input's neutral face.")
        anchor = neutral if output == "neutral_residual" else image
        truth_code, anchor_code = tf.split(self.encoder(tf.concat([truth, anchor], axis=0)), 2, axis=0)
        if output == "decoded":
            return full_precision(decoder(truth_code, training=False))
        return _apply_residual(anchor, decoder(tf.concat([truth_code, anchor_code], 0), training=False))


def full_precision(tensor):
    """A network output computed in float16/bfloat16, cast up to float32;
    any other tensor unchanged (no op under the float32 policy, and a
    float64 test run stays float64)."""
    tensor = tf.convert_to_tensor(tensor)
    return tf.cast(tensor, tf.float32) if tensor.dtype in (tf.float16, tf.bfloat16) else tensor


def check_output(output: str) -> None:
    if output not in OUTPUT_FORMS:
        raise ValueError(f"output must be one of {OUTPUT_FORMS}, got {output!r}.")


def anchor_of(output: str, image, code, neutral, neutral_code):
    """The image a residual form adds the edit's change to, and its code:
    the input for ``residual``, its neutral face for ``neutral_residual``."""
    check_output(output)
    if output == "decoded":
        raise ValueError("The decoded form has no anchor.")
    return (neutral, neutral_code) if output == "neutral_residual" else (image, code)


def _apply_residual(image, decoded_pair):
    edited, reconstructed = tf.split(full_precision(decoded_pair), 2, axis=0)
    return image + edited - reconstructed



# Networks a checkpoint written before they existed may lack: restored when
# present, else left at their initial values, which are what those runs used
# (``CodeScale``'s identity statistics).
OPTIONAL_NETWORKS = ("code_scale",)


def _holds(path: str, name: str) -> bool:
    """Whether the checkpoint at ``path`` has variables of network ``name``."""
    return any(key.startswith(f"{name}/") for key, _ in tf.train.list_variables(path))


def variables_by_path(model: keras.Model) -> dict:
    """Every variable of ``model`` (trainable or not, e.g. batch-norm moving
    statistics), keyed by its path inside the model.

    ``tf.train.Checkpoint`` does not follow Keras 3 layers kept in Python
    lists, so networks are checkpointed through this dict instead.
    """
    return {v.path.split("/", 1)[-1].replace("/", "."): v for v in model.weights}


def restore_stage(nets: LeedNetworks, run_dir: str, stage: str, names=None) -> str:
    """Restores networks of ``stage`` from its newest readable checkpoint, for
    inference (optimizer state and unnamed networks stay behind).

    Every variable of the named networks must come from the checkpoint: one
    left at its random initial value would fail silently. A damaged newest
    checkpoint is reported and an older one tried.

    Args:
      nets: The networks to fill.
      run_dir: The run folder.
      stage: ``neutralizer``, ``autoencoder`` or ``leed``.
      names: Networks to restore; default every network of the stage.

    Returns:
      The checkpoint path.

    Raises:
      FileNotFoundError: naming the stage and folder when no checkpoint of it
        holds the networks.
    """
    import os

    from absl import logging

    directory = RunFolder(run_dir).checkpoint_dir(stage)
    state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
    paths = list(state.all_model_checkpoint_paths) if state else []
    if not paths:
        raise FileNotFoundError(f"No checkpoint of stage {stage!r} in {directory}; train it first: "
                                f"python scripts/train.py --run_dir={run_dir} --stages={stage}")
    names = names or STAGE_NETWORKS[stage]
    errors = []
    for path in reversed(paths):
        try:
            objects = {}
            for name in names:
                if name in OPTIONAL_NETWORKS and not _holds(path, name):
                    getattr(nets, name).reset()
                else:
                    objects[name] = variables_by_path(getattr(nets, name))
            status = tf.train.Checkpoint(**objects).restore(path)
            status.expect_partial()
            status.assert_existing_objects_matched()
            return path
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            errors.append(f"{os.path.basename(path)}: {str(e).splitlines()[0]}")
            logging.warning("Checkpoint %s of stage %s cannot be read (%s); trying an older one.",
                            path, stage, errors[-1])
    raise FileNotFoundError(f"No checkpoint of stage {stage!r} in {directory} holds the weights of "
                            f"{', '.join(names)} (a damaged file, or one written before networks were "
                            f"checkpointed by variable path?): {'; '.join(errors)}")


def trainable(*models: keras.Model) -> list:
    """The trainable variables of ``models``, in a fixed order."""
    return [v for m in models for v in m.trainable_variables]
