"""Training stages at tiny width: finite losses that fall, the right weights
change, resume continues exactly, TensorBoard holds the tags, NaN stops."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from leed_tf.config import previous_synthetic_defaults
from leed_tf.model import LeedNetworks
from leed_tf.training.base import NonFiniteLossError
from leed_tf.training.stages import AutoencoderTrainer, LeedTrainer, NeutralizerTrainer, ValidationBatch

BATCH = 4
GROUPS = np.arange(16) // 4  # tiny_faces(): four "subjects" of four faces


def tiny_faces(n=16, seed=0):
    """Smooth random images (blobs on gradients), uint8 [n, 128, 128, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    images = []
    for _ in range(n):
        base = rng.uniform(0, 1, 3)[None, None] * (0.5 + 0.5 * xx[..., None])
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.3)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)[..., None] * rng.uniform(0, 1, 3)
        images.append(np.clip(base + 0.5 * blob, 0, 1))
    return (np.stack(images) * 255).astype(np.uint8)


@pytest.fixture
def setup():
    config = previous_synthetic_defaults()
    for stage in (config.neutralizer, config.autoencoder, config.leed):
        stage.batch_size = BATCH
    config.data.max_shift = 2
    config.log_every = config.image_every = 1
    images = tiny_faces()
    neutrals = tiny_faces(seed=1)
    labels = np.arange(len(images)) % config.model.num_expressions
    validation = ValidationBatch(images[:4], neutrals[:4], images[4:8], neutrals[4:8], images[:4], labels[:4])
    return config, images, neutrals, labels, validation


def weights(model):
    return [w.copy() for w in model.get_weights()]


def changed(before, model):
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_neutralizer_step_changes_only_stargan(setup, tmp_path):
    config, images, _, labels, validation = setup
    config.neutralizer.n_critic = 1
    nets = LeedNetworks(config.model)
    before = {n: weights(getattr(nets, n)) for n in ("neutralizer", "neutralizer_critic", "encoder", "decoder")}
    trainer = NeutralizerTrainer(config, str(tmp_path), nets, images, labels, validation)
    summary = trainer.fit(max_steps=1)
    assert all(np.isfinite(v) for v in summary["losses"].values())
    assert {"critic_total", "generator_total", "cycle", "gradient_penalty"} <= set(summary["losses"])
    assert changed(before["neutralizer"], nets.neutralizer)
    assert changed(before["neutralizer_critic"], nets.neutralizer_critic)
    assert not changed(before["encoder"], nets.encoder) and not changed(before["decoder"], nets.decoder)


def test_attention_neutralizer_starts_as_identity_and_trains_on_two_domains(setup, tmp_path):
    """The variant not in StarGAN: GANimation's mask over the input, two
    domains (neutral / expressive), and PSNR against the real neutral faces."""
    config, images, neutrals, labels, _ = setup
    config.neutralizer.n_critic = 1
    config.model.stargan_output, config.model.stargan_domains = "attention", "neutral_expressive"
    nets = LeedNetworks(config.model)
    assert nets.neutralizer.num_domains == nets.neutralizer_critic.num_domains == 2
    unit = images[:4].astype(np.float32) / 127.5 - 1.0
    start = np.asarray(nets.neutralize(unit))
    # A starts at sigmoid(3) ~ 0.953 and C is in [-1, 1]: |out - in| <= 2 * 0.0475.
    assert np.abs(start - unit).max() < 0.096 and np.abs(start - unit).max() > 0
    validation = ValidationBatch(images[:4], neutrals[:4], images[:4], neutrals[:4], neutrals[:4], labels[:4])
    trainer = NeutralizerTrainer(config, str(tmp_path), nets, images, labels, validation)
    np.testing.assert_array_equal(trainer.labels, (labels != config.model.neutral_index).astype(np.int32))
    before = weights(nets.neutralizer)
    summary = trainer.fit(max_steps=2)
    assert all(np.isfinite(v) for v in summary["losses"].values())
    assert 0.0 < summary["losses"]["mask_mean"] < 1.0
    assert changed(before, nets.neutralizer)
    metrics = trainer.validation_metrics()
    copy = np.mean([10 * np.log10(4.0 / np.mean((a / 127.5 - b / 127.5) ** 2))
                    for a, b in zip(images[:4].astype(float), neutrals[:4].astype(float))])
    assert metrics["copy_input_psnr"] == pytest.approx(copy, abs=0.01)
    assert np.isfinite(metrics["neutral_psnr"])


def test_autoencoder_loss_falls_and_encoder_frozen_with_imagenet(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.autoencoder.learning_rate = 1e-3
    config.autoencoder.epochs = 60  # one batch per epoch; the lr decays over the last 30
    config.data.flip, config.data.max_shift = False, 0
    nets = LeedNetworks(config.model)
    encoder_before = weights(nets.encoder)
    trainer = AutoencoderTrainer(config, str(tmp_path), nets, images[:BATCH], neutrals[:BATCH], validation,
                                 train_encoder=False)
    unit = lambda x: tf.constant(x[:BATCH], tf.float32) / 127.5 - 1  # noqa: E731
    first = float(trainer.autoencoder_step(unit(images), unit(neutrals))["pixel"])
    summary = trainer.fit(max_steps=30)
    assert np.isfinite(summary["losses"]["pixel"])
    assert summary["losses"]["pixel"] < 0.8 * first
    assert not changed(encoder_before, nets.encoder)


def test_autoencoder_trains_the_encoder_without_imagenet_weights(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    nets = LeedNetworks(config.model)
    encoder, decoder = weights(nets.encoder), weights(nets.decoder)
    trainer = AutoencoderTrainer(config, str(tmp_path), nets, images, neutrals, validation, train_encoder=True)
    trainer.fit(max_steps=1)
    assert changed(encoder, nets.encoder) and changed(decoder, nets.decoder)


def test_autoencoder_difference_term_is_the_loss_of_decoded_differences(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.autoencoder.pixel_loss, config.autoencoder.lambda_difference = "l2", 1.0
    config.autoencoder.lambda_feature = 0.0
    nets = LeedNetworks(config.model)
    trainer = AutoencoderTrainer(config, str(tmp_path), nets, images, neutrals, validation, train_encoder=True)
    unit = lambda x: tf.constant(x[:BATCH], tf.float32) / 127.5 - 1  # noqa: E731
    x, n = unit(images), unit(neutrals)
    # The step's forward pass, before its update (batch statistics, as in training).
    decoded = nets.decoder(nets.encoder(tf.concat([x, n], 0), training=True), training=True)
    rx, rn = np.split(decoded.numpy(), 2)
    out = trainer.autoencoder_step(x, n)
    assert "feature" not in out
    np.testing.assert_allclose(float(out["difference"]), np.mean(((rx - rn) - (x - n).numpy()) ** 2), rtol=1e-4)
    np.testing.assert_allclose(float(out["pixel"]), np.mean((decoded.numpy() - tf.concat([x, n], 0).numpy()) ** 2),
                               rtol=1e-4)
    np.testing.assert_allclose(float(out["total"]), float(out["pixel"]) + float(out["difference"]), rtol=1e-5)


def test_autoencoder_code_noise_decodes_noisy_codes_in_training_only(setup, tmp_path):
    """autoencoder.code_noise (not in the paper): the step's decoder sees its
    codes plus noise scaled to the channels' spread; validation decodes clean
    codes. The decoder is made linear (the patch path alone), so the noise's
    share of the loss grows with its square."""
    config, images, neutrals, _, validation = setup
    config.autoencoder.pixel_loss, config.autoencoder.lambda_feature = "l2", 0.0
    config.model.patch_path = True
    unit = lambda x: tf.constant(x[:BATCH], tf.float32) / 127.5 - 1  # noqa: E731
    x, n = unit(images), unit(neutrals)
    both = tf.concat([x, n], 0)
    excess = []
    nets = LeedNetworks(config.model)
    nets.decoder.to_image.set_weights([np.zeros_like(w) for w in nets.decoder.to_image.get_weights()])
    for noise in (1.0, 10.0):
        config.autoencoder.code_noise = noise
        trainer = AutoencoderTrainer(config, str(tmp_path / str(noise)), nets, images, neutrals, validation,
                                     train_encoder=True)
        clean = np.mean((nets.decoder(nets.encoder(both, training=True), training=True).numpy()
                         - both.numpy()) ** 2)
        excess.append(float(trainer.autoencoder_step(x, n)["pixel"]) - clean)
    assert 0 < excess[1] and 10 * excess[0] < excess[1]
    # Validation decodes clean codes: as a trainer without noise does.
    config.autoencoder.code_noise = 0.0
    quiet = AutoencoderTrainer(config, str(tmp_path / "0"), nets, images, neutrals, validation,
                               train_encoder=True)
    assert trainer.validation_metrics() == quiet.validation_metrics()
    with pytest.raises(ValueError, match="code_noise"):
        type(config.autoencoder)(code_noise=-1.0)


@pytest.mark.parametrize("cache_codes", [True, False])
def test_leed_step_changes_trained_networks_not_frozen_ones(setup, tmp_path, cache_codes):
    config, images, neutrals, _, validation = setup
    config.leed.cache_codes = cache_codes
    config.leed.lambda_pair = config.leed.lambda_pair if cache_codes else 0.0  # it needs the cache
    config.leed.train_decoder = True  # the paper's setting (the synthetic default keeps the decoder)
    nets = LeedNetworks(config.model)
    trained = ("extractor", "interpolator", "decoder", "critic", "regularizer", "siamese")
    frozen = ("encoder", "neutralizer")
    before = {n: weights(getattr(nets, n)) for n in trained + frozen}
    trainer = LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation, groups=GROUPS)
    summary = trainer.fit(max_steps=1)
    expected = {"adversarial", "reconstruction", "mutual_information", "siamese", "generator_total",
                "critic_total", "gradient_penalty", "siamese_contrastive"}
    expected |= {"matched_pair"} if cache_codes else set()
    assert expected <= set(summary["losses"])
    assert all(np.isfinite(v) for v in summary["losses"].values())
    for name in trained:
        assert changed(before[name], getattr(nets, name)), name
    for name in frozen:
        assert not changed(before[name], getattr(nets, name)), name


def test_leed_without_the_adversarial_term_leaves_the_critic_alone(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.leed.lambda_adv = 0.0
    nets = LeedNetworks(config.model)
    before = {n: weights(getattr(nets, n)) for n in ("critic", "interpolator")}
    summary = LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation,
                          groups=GROUPS).fit(max_steps=1)
    assert not {"adversarial", "critic_total", "gradient_penalty"} & set(summary["losses"])
    assert not changed(before["critic"], nets.critic)
    assert changed(before["interpolator"], nets.interpolator)
    with pytest.raises(ValueError, match="lambda_adv"):
        type(config.leed)(lambda_adv=-1.0)


def test_leed_with_only_code_terms_never_runs_the_decoder(setup, tmp_path, monkeypatch):
    # The matched-pair term compares codes: a step without the terms that
    # look at images (reconstruction, Q, S) must not pay for decoding.
    config, images, neutrals, _, validation = setup
    calls = []
    decoder_class = type(LeedNetworks(config.model).decoder)
    call = decoder_class.call
    monkeypatch.setattr(decoder_class, "call", lambda self, *a, **k: calls.append(1) or call(self, *a, **k))
    decodes = {}
    for lambda_recon in (0.0, 1.0):
        config.leed.lambda_recon, config.leed.lambda_q, config.leed.lambda_s = lambda_recon, 0.0, 0.0
        config.leed.lambda_adv, config.leed.lambda_pair = 0.0, 1.0
        nets = LeedNetworks(config.model)
        trainer = LeedTrainer(config, str(tmp_path / str(lambda_recon)), nets, images, neutrals, validation,
                              groups=GROUPS)
        batch = next(iter(trainer.epoch_dataset(0)))
        before, calls[:] = weights(nets.interpolator), []
        losses = trainer.train_step(batch)
        decodes[lambda_recon] = len(calls)
        assert np.isfinite(float(losses["matched_pair"])) and changed(before, nets.interpolator)
        assert ("reconstruction" in losses) == (lambda_recon > 0)
    assert decodes[0.0] == 0 and decodes[1.0] > 0
    config.leed.lambda_pair = config.leed.lambda_recon = 0.0
    with pytest.raises(ValueError, match="a loss to learn from"):
        config.leed.validate()


def test_cached_codes_are_the_frozen_encoders_codes_of_the_batch(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    neutrals = images[np.arange(len(images)) // 4 * 4]  # neutral faces from the same set, as real ones are
    trainer = LeedTrainer(config, str(tmp_path), LeedNetworks(config.model), images, neutrals, validation,
                          groups=GROUPS)
    flipped = 0
    for batch in trainer.epoch_dataset(0).take(3):
        for side in ("input", "reference"):
            for key, image_key in (("code", side), ("neutral_code", side + "_neutral")):
                expected = trainer.nets.encoder(batch[image_key], training=False)
                np.testing.assert_allclose(batch[f"{side}_{key}"], expected, rtol=1e-4, atol=1e-3)
            mirrored = np.any(batch[side].numpy() != images[batch[side + "_index"].numpy()] / 127.5 - 1,
                              axis=(1, 2, 3))
            flipped += int(mirrored.sum())
    assert flipped > 0  # the mirrored codes were exercised


def test_leed_keeps_the_autoencoders_decoder_when_asked(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.leed.train_decoder = False
    nets = LeedNetworks(config.model)
    decoder, interpolator = weights(nets.decoder), weights(nets.interpolator)
    LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation, groups=GROUPS).fit(max_steps=1)
    assert not changed(decoder, nets.decoder) and changed(interpolator, nets.interpolator)


def test_leed_ablations_skip_their_networks(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.leed.lambda_q = config.leed.lambda_s = 0.0
    nets = LeedNetworks(config.model)
    q, s = weights(nets.regularizer), weights(nets.siamese)
    trainer = LeedTrainer(config, str(tmp_path), nets, images, neutrals, validation, groups=GROUPS)
    summary = trainer.fit(max_steps=1)
    assert "mutual_information" not in summary["losses"] and "siamese" not in summary["losses"]
    assert not changed(q, nets.regularizer) and not changed(s, nets.siamese)


def test_siamese_learns_with_neutral_faces_in_the_batch(setup, tmp_path):
    # A data set's neutral faces are their own neutral photos: a zero
    # displacement with no direction. They must sit out of S's InfoNCE
    # rather than swamp its gradient (normalising zero scales it by 1e6).
    config, images, neutrals, _, validation = setup
    config.leed.batch_size = 8
    neutrals = neutrals.copy()
    neutrals[::4] = images[::4]
    keras.utils.set_random_seed(1)
    trainer = LeedTrainer(config, str(tmp_path), LeedNetworks(config.model), images, neutrals, validation,
                          groups=GROUPS)
    batch = next(iter(trainer.epoch_dataset(0)))
    assert np.any(np.all(batch["input"].numpy() == batch["input_neutral"].numpy(), axis=(1, 2, 3)))
    steps = [trainer.siamese_step(batch) for _ in range(30)]
    contrastive = [float(s["siamese_contrastive"]) for s in steps]
    norms = [float(s["grad_norm_siamese"]) for s in steps]
    assert all(np.isfinite(contrastive)) and max(norms) < 1e3, norms
    assert np.mean(contrastive[-5:]) < 0.25 * contrastive[0], contrastive


def leed_trainer(config, run_dir, images, neutrals, validation):
    # Same initial weights each time: the frozen encoder is not in LEED's
    # checkpoint (a run restores it from the auto-encoder stage).
    keras.utils.set_random_seed(7)
    return LeedTrainer(config, run_dir, LeedNetworks(config.model), images, neutrals, validation,
                       groups=GROUPS)


def test_resume_continues_with_same_step_optimizer_state_and_lr(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.leed.epochs, config.leed.decay_epochs = 2, 1  # lr decays during the run
    straight = leed_trainer(config, str(tmp_path / "straight"), images, neutrals, validation)
    straight.fit(max_steps=6)

    interrupted = leed_trainer(config, str(tmp_path / "resumed"), images, neutrals, validation)
    interrupted.fit(max_steps=3)  # stops mid-epoch, as a killed run would
    resumed = leed_trainer(config, str(tmp_path / "resumed"), images, neutrals, validation)
    assert resumed.restore() and int(resumed.step) == 3
    resumed.fit(max_steps=6)

    assert int(resumed.step) == int(straight.step) == 6
    # The same point of the schedule, inside the decay.
    assert resumed.learning_rate() == pytest.approx(straight.learning_rate())
    assert straight.learning_rate() < 0.75 * config.leed.learning_rate
    for a, b in ((straight.g_opt, resumed.g_opt), (straight.d_opt, resumed.d_opt), (straight.s_opt, resumed.s_opt)):
        assert int(a.iterations) == int(b.iterations)
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-4, atol=1e-6)
    for a, b in zip(straight.nets.interpolator.get_weights(), resumed.nets.interpolator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_tensorboard_has_scalar_and_image_tags(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    leed_trainer(config, str(tmp_path), images, neutrals, validation).fit(max_steps=1)
    tags = {}
    for split in ("train", "validation"):
        for path in glob.glob(os.path.join(tmp_path, split, "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    tags.setdefault(split, set()).add(value.tag)
    assert {"losses/leed/generator_total", "losses/leed/critic_total", "gradients/leed/grad_norm_generator",
            "learning_rate/leed"} <= tags["train"]
    assert "images/leed" in tags["validation"]
    assert os.path.exists(os.path.join(tmp_path, "samples", "leed.png"))


def test_non_finite_loss_stops_and_keeps_last_checkpoint(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.checkpoint_every = 1
    trainer = leed_trainer(config, str(tmp_path), images, neutrals, validation)
    trainer.fit(max_steps=2)
    step = trainer.train_step
    trainer.train_step = lambda batch: {**step(batch), "reconstruction": tf.constant(np.nan)}
    with pytest.raises(NonFiniteLossError, match=r"'reconstruction'.*step 3.*ckpt-2"):
        trainer.fit()
    fresh = leed_trainer(config, str(tmp_path), images, neutrals, validation)
    assert fresh.restore() and int(fresh.step) == 2


def test_matched_pair_term_pulls_edits_to_their_targets(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    config.leed.learning_rate = 1e-3
    pair = {}
    # The same start, with the term on and (nearly) off; the targets are
    # shifted by 1 so that no other loss aims at them.
    for weight in (10.0, 1e-6):
        config.leed.lambda_pair = weight
        keras.utils.set_random_seed(3)
        trainer = LeedTrainer(config, str(tmp_path / str(weight)), LeedNetworks(config.model), images,
                              neutrals, validation, groups=GROUPS)
        groups, table = trainer.pair_targets()
        assert table.shape == (4, 16) and np.all(table[GROUPS, np.arange(16)] == np.arange(16))
        batch = next(iter(trainer.epoch_dataset(0)))
        np.testing.assert_array_equal(batch["target_index"],
                                      table[groups[batch["input_index"]], batch["reference_index"]])
        codes = {"code": batch["input_code"], "neutral_code": batch["input_neutral_code"],
                 "reference_code": batch["reference_code"],
                 "reference_neutral_code": batch["reference_neutral_code"],
                 "target_code": batch["target_code"] + 1.0, "target_index": batch["target_index"]}
        pair[weight] = [float(trainer.generator_step(batch, codes)["matched_pair"]) for _ in range(40)]
    on, off = pair[10.0], pair[1e-6]
    assert all(np.isfinite(on)) and np.mean(on[-3:]) < 0.7 * on[0], on
    assert np.mean(off[-3:]) > 0.9 * off[0], off  # without the term nothing pulls them there


def test_matched_pair_term_needs_groups_and_cached_codes(setup, tmp_path):
    config, images, neutrals, _, validation = setup
    assert config.leed.lambda_pair > 0  # on in the synthetic default
    with pytest.raises(ValueError, match="groups="):
        LeedTrainer(config, str(tmp_path), LeedNetworks(config.model), images, neutrals, validation)
    config.leed.cache_codes = False
    with pytest.raises(ValueError, match="cache_codes"):
        LeedTrainer(config, str(tmp_path), LeedNetworks(config.model), images, neutrals, validation,
                    groups=GROUPS)
