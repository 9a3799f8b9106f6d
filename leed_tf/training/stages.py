"""The three training stages (docs/design.md section 2).

A. ``NeutralizerTrainer``: StarGAN, the only stage that sees expression labels.
B. ``AutoencoderTrainer``: the decoder (and the encoder without ImageNet
   weights) learns to invert the encoder.
C. ``LeedTrainer``: X, I, Dec, the code critic, Q and S, with E and G_neu frozen.

Each step is a ``tf.function`` that makes the step's random draws for the
global batch and runs a replica function on every replica
(``StageTrainer.run_replicas``; see ``training.distribute``). A replica
function takes its rows of the draws, computes the losses inside a
``tf.GradientTape`` (in-batch contrastive losses over the global batch), takes
``tape.gradient`` outside the ``with`` block and applies the gradients summed
over replicas. Critic and generator steps are separate and return dicts of
named losses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from leed_tf.config import Config
from leed_tf.data import augment, pipeline
from leed_tf.data import images as images_lib
from leed_tf.model import LeedNetworks, full_precision, neutralizer_domains, neutralizer_labels, trainable
from leed_tf.training import distribute, losses, pairs
from leed_tf.training.base import StageTrainer
from leed_tf.training.batch import CACHED_CODE_KEYS, LeedBatch, LeedCodes, cached_codes, encoded_codes, stacked_faces


@dataclass
class ValidationBatch:
    """A fixed validation batch, uint8 ``[B, S, S, 3]`` arrays.

    Attributes:
      input: Input faces.
      input_neutral: Their neutral faces.
      reference: Reference faces (other subjects).
      reference_neutral: The references' neutral faces.
      ground_truth: ``render(identity_input, expression_reference)`` on
        synthetic data; None on real data.
      labels: Expression ids of the inputs (for the neutralizer's grid).
    """

    input: np.ndarray
    input_neutral: np.ndarray
    reference: np.ndarray
    reference_neutral: np.ndarray
    ground_truth: np.ndarray | None = None
    labels: np.ndarray | None = None


# Output forms of the validation's edits. The neutral-anchored form is left
# to scripts/evaluate.py: an edit towards neutral returns the neutral face
# itself, the ground truth when it is a real photo (an infinite PSNR).
VALIDATION_OUTPUTS = ("decoded", "residual")


def image_grid(columns: list[np.ndarray], rows: int = 8) -> np.ndarray:
    """The first ``rows`` examples as rows, the given uint8 image batches as columns."""
    return np.concatenate([np.concatenate(list(column[:rows]), axis=0) for column in columns], axis=1)


def _unit(images):
    return images_lib.scale_to_unit(tf.convert_to_tensor(images))


class NeutralizerTrainer(StageTrainer):
    """Stage A: StarGAN trained to translate faces between expression domains.

    The critic is updated every step and the generator every ``n_critic``-th,
    as in the official solver; the generator's lr schedule counts its own
    updates.
    """

    def __init__(self, config: Config, run_dir: str, nets: LeedNetworks, images: np.ndarray,
                 labels: np.ndarray, validation: ValidationBatch,
                 strategy: tf.distribute.Strategy | None = None):
        c = config.neutralizer
        super().__init__("neutralizer", run_dir, config, len(images), c.batch_size, c.epochs, strategy)
        self.config, self.nets = config, nets
        # Expression labels become the neutralizer's domains (model.stargan_domains).
        self.images, self.validation = images, validation
        self.labels = neutralizer_labels(config.model, labels)
        self.num_domains = neutralizer_domains(config.model)
        self.attention = config.model.stargan_output == "attention"
        self.g_vars = trainable(nets.neutralizer)
        self.d_vars = trainable(nets.neutralizer_critic)
        self.g_opt = self.adam(self.schedule(c.learning_rate, c.epochs // 2, 1.0 / c.n_critic),
                               c.beta_1, c.beta_2, self.g_vars)
        self.d_opt = self.adam(self.schedule(c.learning_rate, c.epochs // 2),
                               c.beta_1, c.beta_2, self.d_vars)
        self._generator_loss_cache = {}

    def checkpoint_objects(self):
        return {**self.network_variables(), "generator_optimizer": self.g_opt, "critic_optimizer": self.d_opt}

    def learning_rate(self):
        return float(self.d_opt.learning_rate)

    def epoch_dataset(self, epoch):
        return pipeline.image_dataset(self.images, self.labels, self.batch_size,
                                      seed=self.seed * 1000 + epoch, flip=self.config.data.flip,
                                      max_shift=self.config.data.max_shift)

    def _target_offsets(self):
        # Drawn for the global batch: added to a label (mod the number of
        # domains), a target other than the source, so every example is a translation.
        return self.rng.uniform([self.batch_size], 1, self.num_domains, dtype=tf.int32)

    def _targets(self, labels, offsets):
        return (labels + distribute.replica_rows(offsets)) % self.num_domains

    @tf.function
    def critic_step(self, images, labels):
        offsets = self._target_offsets()
        mix = self.rng.uniform([self.batch_size, 1, 1, 1])
        return self.run_replicas(self._critic_replica_step, images, labels, offsets, mix)

    def _critic_replica_step(self, images, labels, offsets, mix):
        c = self.config.neutralizer
        target = tf.one_hot(self._targets(labels, offsets), self.num_domains)
        fake = full_precision(self.nets.neutralizer((images, target), training=True))
        critic = self.nets.neutralizer_critic
        with tf.GradientTape() as tape:
            real_source, real_domain = critic(images, training=True)
            fake_source, _ = critic(fake, training=True)
            adversarial = losses.wasserstein_critic_loss(real_source, fake_source)
            classification = losses.domain_classification_loss(labels, real_domain)
            penalty = losses.gradient_penalty(lambda x: critic(x, training=True)[0], images, fake,
                                              distribute.replica_rows(mix))
            total = adversarial + c.lambda_cls * classification + c.lambda_gp * penalty
            scaled = self.loss_for_gradients(total, self.d_opt)
        grads = tape.gradient(scaled, self.d_vars)
        return {"critic_adversarial": adversarial, "critic_classification": classification,
                "gradient_penalty": penalty, "critic_total": total,
                "grad_norm_critic": self.apply_gradients(self.d_opt, grads, self.d_vars)}

    @tf.function
    def generator_step(self, images, labels):
        return self.run_replicas(self._generator_replica_step, images, labels, self._target_offsets())

    def _generator_replica_step(self, images, labels, offsets):
        c = self.config.neutralizer
        target_ids = self._targets(labels, offsets)
        target = tf.one_hot(target_ids, self.num_domains)
        source = tf.one_hot(labels, self.num_domains)
        generator = self.nets.neutralizer
        extra = {}
        with tf.GradientTape() as tape:
            if self.attention:
                fake, mask = generator((images, target), training=True, return_mask=True)
                back, back_mask = generator((fake, source), training=True, return_mask=True)
                # GANimation's mask penalty (not in StarGAN), on both translations.
                extra["mask_mean"] = 0.5 * (tf.reduce_mean(full_precision(mask))
                                            + tf.reduce_mean(full_precision(back_mask)))
            else:
                fake = generator((images, target), training=True)
                back = generator((fake, source), training=True)
            fake_source, fake_domain = self.nets.neutralizer_critic(fake, training=True)
            adversarial = losses.wasserstein_generator_loss(fake_source)
            classification = losses.domain_classification_loss(target_ids, fake_domain)
            cycle = losses.l1_loss(back, images)
            total = adversarial + c.lambda_cls * classification + c.lambda_rec * cycle
            if self.attention:
                total += c.lambda_mask * extra["mask_mean"]
            scaled = self.loss_for_gradients(total, self.g_opt)
        grads = tape.gradient(scaled, self.g_vars)
        return {"generator_adversarial": adversarial, "generator_classification": classification,
                "cycle": cycle, "generator_total": total, **extra,
                "grad_norm_generator": self.apply_gradients(self.g_opt, grads, self.g_vars)}

    def train_step(self, batch):
        out = self.critic_step(batch["image"], batch["label"])
        if (int(self.step) + 1) % self.config.neutralizer.n_critic == 0:
            self._generator_loss_cache = self.generator_step(batch["image"], batch["label"])
        return {**out, **self._generator_loss_cache}

    def validation_images(self):
        shown = slice(0, 8)
        neutral = self.nets.neutralize(_unit(self.validation.input[shown]))
        neutral = images_lib.to_uint8(np.asarray(neutral))
        return image_grid([self.validation.input[shown], neutral, self.validation.input_neutral[shown]])

    def validation_metrics(self):
        """PSNR of the neutral faces against the real neutral photos, beside
        copying the input (where the data set has those photos)."""
        if self.validation.ground_truth is None:
            return {}
        images, truth = _unit(self.validation.input), _unit(self.validation.ground_truth)
        neutral = tf.cast(self.nets.neutralize(images), tf.float32)
        return {"neutral_psnr": float(tf.reduce_mean(losses.psnr(neutral, truth))),
                "copy_input_psnr": float(tf.reduce_mean(losses.psnr(images, truth)))}


class AutoencoderTrainer(StageTrainer):
    """Stage B: ``Dec(E(I)) ~ I``, on faces paired with their neutral faces.

    Losses (``AutoencoderConfig``): the pixel loss (L1 or L2) of each face
    and of its neutral face; optionally the same loss on their *difference*,
    ``(Dec(E(I)) - Dec(E(N))) - (I - N)``, which asks the decoder to render
    what an expression changes rather than only the whole face (it needs no
    label: the pairs are the ones LEED uses); and the L2 between encoder
    features of the reconstruction and of the input. The encoder trains too
    when no ImageNet weights were loaded. The lr decays linearly to 0 over
    the second half of the epochs.
    """

    def __init__(self, config: Config, run_dir: str, nets: LeedNetworks, images: np.ndarray,
                 neutrals: np.ndarray, validation: ValidationBatch, train_encoder: bool,
                 strategy: tf.distribute.Strategy | None = None):
        c = config.autoencoder
        super().__init__("autoencoder", run_dir, config, len(images), c.batch_size, c.epochs, strategy)
        self.config, self.nets, self.validation = config, nets, validation
        self.images, self.neutrals = images, neutrals
        self.pixel_loss = losses.get_pixel_loss(c.pixel_loss)
        self.encoder_vars = trainable(nets.encoder) if train_encoder else []
        self.decoder_vars = trainable(nets.decoder)
        self.vars = self.encoder_vars + self.decoder_vars
        self.opt = self.adam(self.schedule(c.learning_rate, c.epochs // 2), c.beta_1, c.beta_2, self.vars)

    def checkpoint_objects(self):
        return {**self.network_variables(), "optimizer": self.opt}

    def learning_rate(self):
        return float(self.opt.learning_rate)

    def epoch_dataset(self, epoch):
        d = self.config.data
        return pipeline.paired_dataset(self.images, self.neutrals, self.batch_size,
                                       seed=self.seed * 1000 + epoch, flip=d.flip, max_shift=d.max_shift,
                                       references=False)

    @tf.function
    def autoencoder_step(self, images, neutrals):
        return self.run_replicas(self._autoencoder_replica_step, images, neutrals)

    def _autoencoder_replica_step(self, images, neutrals):
        c = self.config.autoencoder
        with tf.GradientTape(persistent=True) as tape:
            both = tf.concat([images, neutrals], 0)
            code = self.nets.encoder(both, training=True)
            decoded = code
            if c.code_noise > 0:
                # Relative to each channel's spread in the batch (averaged over replicas), so
                # the encoder cannot outgrow the noise by scaling its codes.
                spread = tf.sqrt(distribute.cross_replica_mean(tf.math.reduce_variance(
                    full_precision(code), axis=[0, 1, 2])) + 1e-8)
                noise = tf.random.normal(tf.shape(code)) * c.code_noise * tf.stop_gradient(spread)
                decoded = code + tf.cast(noise, code.dtype)
            reconstruction = self.nets.decoder(decoded, training=True)
            pixel = self.pixel_loss(reconstruction, both)
            image_reconstruction, neutral_reconstruction = tf.split(reconstruction, 2)
            difference = self.pixel_loss(image_reconstruction - neutral_reconstruction, images - neutrals)
            # Formed inside the tape: a product taken after it closes has no gradient.
            pixel_total = c.lambda_pixel * pixel + c.lambda_difference * difference
            total = pixel_total
            out = {"pixel": pixel, "difference": difference}
            if c.lambda_feature > 0:
                target = full_precision(tf.stop_gradient(code))
                # Relative error, so the loss cannot fall by shrinking the
                # features; the scale is the global batch's.
                feature = losses.l2_loss(self.nets.encoder(reconstruction, training=True), target) / (
                    distribute.cross_replica_mean(tf.reduce_mean(tf.square(target))) + 1e-8)
                total = pixel_total + c.lambda_feature * feature
                out["feature"] = feature
            scaled_total = self.loss_for_gradients(total, self.opt)
            if c.lambda_feature > 0:
                scaled_pixel_total = self.loss_for_gradients(pixel_total, self.opt)
        if c.lambda_feature > 0:
            # The feature term trains the decoder only: an encoder learning from
            # scratch would otherwise learn to ignore what the decoder gets wrong.
            decoder_grads = tape.gradient(scaled_total, self.decoder_vars)
            encoder_grads = tape.gradient(scaled_pixel_total, self.encoder_vars) if self.encoder_vars else []
            grads = list(encoder_grads) + list(decoder_grads)
        else:
            grads = tape.gradient(scaled_total, self.vars)  # One backward pass.
        del tape
        return {**out, "total": total, "grad_norm_autoencoder": self.apply_gradients(self.opt, grads, self.vars)}

    def train_step(self, batch):
        return self.autoencoder_step(batch["input"], batch["input_neutral"])

    def _reconstruct(self, images):
        return self.nets.decoder(self.nets.encoder(images), training=False)

    def validation_images(self):
        reconstructed = self._reconstruct(_unit(self.validation.input))
        return image_grid([self.validation.input, images_lib.to_uint8(np.asarray(reconstructed))])

    def validation_metrics(self):
        images = _unit(self.validation.input)
        return {"reconstruction_psnr": float(tf.reduce_mean(losses.psnr(self._reconstruct(images), images)))}


class LeedTrainer(StageTrainer):
    """Stage C: LEED (docs/design.md section 2.C), E and G_neu frozen.

    The frozen encoder's codes of every training face and neutral face, and
    of their mirror images, are computed once (``LeedConfig.cache_codes``) and
    travel with the batches; otherwise each step encodes its four real image
    sets once and shares the codes. Per batch: ``n_critic`` critic steps; one
    step of X, I, Dec, Q on the total loss; one step of S on its own
    label-free InfoNCE objective.

    With ``lambda_pair > 0`` (not in the paper) the generator step also pulls
    each edit towards the code of the face of the input's group (``groups``:
    subject, pose and gaze) matched to the reference without labels
    (``training.pairs``); the matching runs once, on the cached codes of
    the faces as they are. A mirrored reference keeps its face's match, so
    an asymmetric expression (contempt) then gets a target mirrored from it.
    """

    def __init__(self, config: Config, run_dir: str, nets: LeedNetworks, images: np.ndarray,
                 neutrals: np.ndarray, validation: ValidationBatch,
                 strategy: tf.distribute.Strategy | None = None, groups: np.ndarray | None = None):
        c = config.leed
        super().__init__("leed", run_dir, config, len(images), c.batch_size, c.epochs, strategy)
        self.config, self.nets, self.validation = config, nets, validation
        self.images, self.neutrals = images, neutrals
        self.c = c
        if c.lambda_pair > 0 and (groups is None or len(groups) != len(images)):
            raise ValueError("lambda_pair > 0 needs each training face's group (its subject, pose and "
                             "gaze): pass groups=, one id per image.")
        c.validate()  # the settings may have changed since the config was built
        self.groups = groups
        self._pair_targets = None
        # Only the reconstruction, mutual-information and siamese terms look
        # at decoded images; without them a step never runs the decoder.
        self.decodes_edits = c.lambda_recon > 0 or c.lambda_q > 0 or c.lambda_s > 0
        self.generator_nets = [nets.extractor, nets.interpolator]
        if c.train_decoder and self.decodes_edits:
            self.generator_nets.append(nets.decoder)
        if c.lambda_q > 0:
            self.generator_nets.append(nets.regularizer)
        self.g_vars = trainable(*self.generator_nets)
        self.d_vars = trainable(nets.critic)
        self.s_vars = trainable(nets.siamese)
        self.g_opt = self.adam(self.schedule(c.learning_rate, c.decay_epochs), c.beta_1, c.beta_2, self.g_vars)
        self.d_opt = self.adam(self.schedule(c.learning_rate, c.decay_epochs, c.n_critic),
                               c.beta_1, c.beta_2, self.d_vars)
        self.s_opt = self.adam(self.schedule(c.learning_rate, c.decay_epochs), c.beta_1, c.beta_2, self.s_vars)
        self._codes = None

    def checkpoint_objects(self):
        return {**self.network_variables(), "generator_optimizer": self.g_opt,
                "critic_optimizer": self.d_opt, "siamese_optimizer": self.s_opt}

    def learning_rate(self):
        return float(self.g_opt.learning_rate)

    def prepare(self):
        """Measures the code statistics X, I and the critic work in
        (``networks.CodeScale``) on the training faces and their mirror
        images, unless ``standardize_codes`` is off."""
        if not self.c.standardize_codes:
            return
        codes = self.frozen_codes()
        stats = self.nets.code_scale.measure(np.concatenate(codes["code"]), np.concatenate(codes["neutral_code"]))
        print(f"[{self.name}] code statistics: spread of the codes {np.mean(stats['std']):.3g}, of the "
              f"displacements z - n {np.mean(stats['displacement_std']):.3g} (channel means)", flush=True)

    def epoch_dataset(self, epoch):
        d = self.config.data
        common = dict(seed=self.seed * 1000 + epoch, flip=d.flip)
        if not self.c.cache_codes:
            return pipeline.paired_dataset(self.images, self.neutrals, self.batch_size,
                                           max_shift=d.max_shift, **common)
        return pipeline.paired_dataset(self.images, self.neutrals, self.batch_size, max_shift=0,
                                       carry_mirrored=self.frozen_codes(), **common,
                                       pair_targets=self.pair_targets() if self.c.lambda_pair > 0 else None)

    def pair_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """``(groups, table)`` of the matched-pair term, matched on first use
        (``pair_matching``) on the faces as they are, not mirrored: on their
        cached codes' displacements, or on their images' (``pair_features``)."""
        if self._pair_targets is None:
            if self.c.pair_features == "codes":
                codes = self.frozen_codes()
                displacements = codes["code"][0] - codes["neutral_code"][0]
            else:
                displacements = pairs.image_displacements(self.images, self.neutrals)
            start = time.time()
            print(f"[{self.name}] matching the training faces' expressions across "
                  f"{len(np.unique(self.groups))} groups ({self.c.pair_matching}, on "
                  f"{self.c.pair_features}; no labels)", flush=True)
            match = pairs.match_slots if self.c.pair_matching == "slots" else pairs.match_expressions
            table = match(displacements, self.groups)
            print(f"[{self.name}] matched in {time.time() - start:.1f} s", flush=True)
            self._pair_targets = (self.groups, table)
        return self._pair_targets

    def frozen_codes(self) -> dict:
        """The frozen encoder's codes of the training faces and of their
        neutral faces, as ``carry_mirrored`` pairs ``(as_is, mirrored)``,
        computed on first use (each distinct image is encoded once), float32
        under every precision policy."""
        if self._codes is None:
            unique, (image_rows, neutral_rows) = images_lib.unique_rows(self.images, self.neutrals)
            start = time.time()
            print(f"[{self.name}] encoding {len(unique)} distinct training images and their mirror "
                  "images once (frozen encoder)", flush=True)
            encode = tf.function(lambda x: self.nets.encoder(x, training=False))
            codes = []
            for mirror in (False, True):
                batches = [_unit(unique[i:i + 64]) for i in range(0, len(unique), 64)]
                codes.append(np.concatenate([encode(b[:, :, ::-1] if mirror else b).numpy()
                                             for b in batches]).astype(np.float32))
            # Keyed as the batch carries them (``batch.CACHED_CODE_KEYS``).
            self._codes = {"code": (codes[0][image_rows], codes[1][image_rows]),
                           "neutral_code": (codes[0][neutral_rows], codes[1][neutral_rows])}
            assert tuple(self._codes) == CACHED_CODE_KEYS
            print(f"[{self.name}] codes ready in {time.time() - start:.1f} s", flush=True)
        return self._codes

    @tf.function
    def encode_real(self, batch: LeedBatch) -> LeedCodes:
        """Frozen E's codes (float32) of the batch's four image sets, in one
        call per replica; per-replica values under a multi-replica strategy."""
        return self.strategy.run(self._compiled(self._encode_replica_step), args=(batch,))

    def _encode_replica_step(self, batch: LeedBatch) -> LeedCodes:
        return encoded_codes(full_precision(self.nets.encoder(stacked_faces(batch), training=False)))

    @tf.function
    def critic_step(self, codes: LeedCodes):
        mix = self.rng.uniform([self.batch_size, 1, 1, 1])
        return self.run_replicas(self._critic_replica_step, codes, mix)

    def _critic_replica_step(self, codes, mix):
        nets = self.nets
        reference_expression = nets.expression_code(codes["reference_code"], codes["reference_neutral_code"])
        fake = nets.edited_code(codes["neutral_code"], reference_expression)
        # The critic and its gradient penalty work on standardised codes.
        fake, real = nets.critic_input(fake), nets.critic_input(codes["reference_code"])
        with tf.GradientTape() as tape:
            adversarial = losses.wasserstein_critic_loss(nets.critic(real, training=True),
                                                         nets.critic(fake, training=True))
            penalty = losses.gradient_penalty(lambda x: nets.critic(x, training=True), real, fake,
                                              distribute.replica_rows(mix))
            total = adversarial + self.c.lambda_gp * penalty
            scaled = self.loss_for_gradients(total, self.d_opt)
        grads = tape.gradient(scaled, self.d_vars)
        return {"critic_adversarial": adversarial, "gradient_penalty": penalty, "critic_total": total,
                "grad_norm_critic": self.apply_gradients(self.d_opt, grads, self.d_vars)}

    @tf.function
    def generator_step(self, batch: LeedBatch, codes: LeedCodes):
        return self.run_replicas(self._generator_replica_step, batch, codes)

    def _generator_replica_step(self, batch: LeedBatch, codes: LeedCodes):
        nets, c = self.nets, self.c
        code, neutral_code = codes["code"], codes["neutral_code"]
        batch_size = tf.shape(code)[0]
        if c.lambda_s > 0:
            # S's view of the real faces is a target, fixed for this step.
            neutral_embedding = nets.siamese(batch["input_neutral"], training=False)
            reference_displacement = losses.expression_displacement(
                nets.siamese(batch["reference"], training=False),
                nets.siamese(batch["reference_neutral"], training=False))
        with tf.GradientTape() as tape:
            reference_expression = nets.expression_code(codes["reference_code"],
                                                        codes["reference_neutral_code"], training=True)
            own_expression = nets.expression_code(code, neutral_code, training=True)
            edited = nets.edited_code(tf.concat([neutral_code, neutral_code], 0),
                                      tf.concat([reference_expression, own_expression], 0), training=True)
            edit_code, self_code = tf.split(edited, 2)
            total, out = 0.0, {}
            if self.decodes_edits:
                # A decoder kept as the auto-encoder left it keeps its batch-norm statistics too.
                edit_image, self_image = tf.split(nets.decoder(edited, training=c.train_decoder), 2)
            if c.lambda_recon > 0:
                reconstruction = losses.l1_loss(self_code, code) + losses.l1_loss(self_image, batch["input"])
                total += c.lambda_recon * reconstruction
                out["reconstruction"] = reconstruction
            if c.lambda_adv > 0:
                adversarial = losses.wasserstein_generator_loss(
                    nets.critic(nets.critic_input(edit_code), training=True))
                total += c.lambda_adv * adversarial
                out["adversarial"] = adversarial
            if c.lambda_q > 0:
                reextracted = nets.expression_code(nets.encoder(edit_image, training=False), neutral_code,
                                                   training=True)
                projections = nets.regularizer(tf.concat([reference_expression, reextracted], 0), training=True)
                mutual_information = losses.info_nce_loss(
                    *distribute.global_batch(projections[:batch_size], projections[batch_size:]), c.temperature)
                total += c.lambda_q * mutual_information
                out["mutual_information"] = mutual_information
            if c.lambda_s > 0:
                edit_displacement = losses.expression_displacement(
                    nets.siamese(edit_image, training=False), neutral_embedding)
                # All replicas' pairs: a masked mean is not a mean of slice means.
                (valid,) = distribute.global_batch(tf.cast(
                    losses.shows_expression(batch["reference"], batch["reference_neutral"]), tf.float32))
                siamese = losses.siamese_generator_loss(
                    *distribute.global_batch(edit_displacement, reference_displacement), valid)
                total += c.lambda_s * siamese
                out["siamese"] = siamese
            if c.lambda_pair > 0:
                # All replicas' pairs: a masked mean is not a mean of slice means.
                matched_pair = losses.matched_pair_loss(*distribute.global_batch(
                    losses.pair_l1(edit_code, codes["target_code"]),
                    tf.cast(codes["target_index"] >= 0, tf.float32)))
                total += c.lambda_pair * matched_pair
                out["matched_pair"] = matched_pair
            scaled = self.loss_for_gradients(total, self.g_opt)
        grads = tape.gradient(scaled, self.g_vars)
        return {**out, "generator_total": total,
                "grad_norm_generator": self.apply_gradients(self.g_opt, grads, self.g_vars)}

    @tf.function
    def siamese_step(self, batch):
        """S learns expression displacements label-free: two augmentations of
        the same (face, neutral) pair must give matching ``u``.

        The batch's inputs are the pairs (its references are other random
        faces, no new kind of data): half the cost, and no face can appear
        twice among the negatives. Faces identical to their neutral face
        (``losses.shows_expression``) sit out: their displacement is zero.
        """
        return self.run_replicas(self._siamese_replica_step, batch, self.rng.make_seeds(2))

    def _siamese_replica_step(self, batch, seeds):
        images, neutrals = batch["input"], batch["input_neutral"]
        views = []
        for i in range(2):
            # Drawn for the global batch, so every strategy augments a face alike.
            transform = augment.sample_transform(self.batch_size, seeds[:, i], flip=True,
                                                 max_shift=self.config.data.max_shift, jitter=0.1)
            views.append(augment.apply_transform([images, neutrals],
                                                 augment.Transform(*distribute.replica_rows(tuple(transform)))))
        with tf.GradientTape() as tape:
            embeddings = self.nets.siamese(tf.concat([views[0][0], views[0][1], views[1][0], views[1][1]], 0),
                                           training=True)
            a_image, a_neutral, b_image, b_neutral = tf.split(embeddings, 4)
            a, b = distribute.global_batch(losses.expression_displacement(a_image, a_neutral),
                                           losses.expression_displacement(b_image, b_neutral))
            (valid,) = distribute.global_batch(tf.cast(losses.shows_expression(images, neutrals), tf.float32))
            loss = losses.info_nce_loss(a, b, self.c.temperature, valid)
            scaled = self.loss_for_gradients(loss, self.s_opt)
        grads = tape.gradient(scaled, self.s_vars)
        return {"siamese_contrastive": loss,
                "grad_norm_siamese": self.apply_gradients(self.s_opt, grads, self.s_vars)}

    def train_step(self, batch: LeedBatch):
        if self.c.cache_codes:
            codes = cached_codes(batch, with_targets=self.c.lambda_pair > 0)
        else:
            codes = self.encode_real(batch)
        out = {}
        for _ in range(self.c.n_critic if self.c.lambda_adv > 0 else 0):
            out.update(self.critic_step(codes))
        out.update(self.generator_step(batch, codes))
        if self.c.lambda_s > 0:
            out.update(self.siamese_step(batch))
        return out

    def _edits(self, output):
        v = self.validation
        return tf.clip_by_value(self.nets.edit(_unit(v.input), _unit(v.input_neutral), _unit(v.reference),
                                               _unit(v.reference_neutral), output=output), -1.0, 1.0)

    def validation_images(self):
        """Columns: input, reference, neutral, edit decoded, edit residual
        (and the ground truth on synthetic data)."""
        v = self.validation
        edits = [images_lib.to_uint8(np.asarray(self._edits(o))) for o in VALIDATION_OUTPUTS]
        columns = [v.input, v.reference, v.input_neutral] + edits
        if v.ground_truth is not None:
            columns.append(v.ground_truth)
        return image_grid(columns)

    def validation_metrics(self):
        if self.validation.ground_truth is None:
            return {}
        truth = _unit(self.validation.ground_truth)
        metrics = {}
        for output in VALIDATION_OUTPUTS:
            edits = self._edits(output)
            suffix = "" if output == "decoded" else "_" + output
            metrics["edit_psnr" + suffix] = float(tf.reduce_mean(losses.psnr(edits, truth)))
            metrics["edit_l1" + suffix] = float(losses.l1_loss(edits, truth))
        return metrics
