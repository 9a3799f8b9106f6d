"""Trains LEED: neutralizer -> auto-encoder -> LEED, resuming where a run stopped.

  python scripts/train.py                                  # synthetic faces
  python scripts/train.py --dataset=rafd --data_dir=/data/RaFD --run_dir=runs/rafd
  python scripts/train.py --dataset=cfeed --data_dir=/data/CFEE --neutral_source=dataset

Unset flags keep the run's saved settings (on resume) or the data set's
defaults: the seed's for real data, small and fast for synthetic.
"""

from absl import flags

from leed_tf import cli
from leed_tf import config as config_lib
from leed_tf.training import run

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", None, "synthetic | rafd | cfee (alias cfeed) | folder | manifest. "
                    "Default: synthetic, or the run's saved data set.")
flags.DEFINE_string("data_dir", None, "Data set root (or the manifest CSV).")
flags.DEFINE_string("run_dir", "runs/synthetic", "Run folder: config, checkpoints, TensorBoard logs.")
flags.DEFINE_list("stages", None, "Stages to train (neutralizer, autoencoder, leed); "
                  "default: every stage not yet finished.")
flags.DEFINE_enum("neutral_source", None, ["stargan", "dataset"],
                  "Neutral faces from the StarGAN neutralizer or the subject's real neutral photo.")
flags.DEFINE_string("encoder_weights", None, "ImageNet VGG-19 notop .h5 file; empty: Keras cache if "
                    "present; 'none': train the encoder.")
flags.DEFINE_float("width", None, "Channel multiplier of every network (1.0 = the paper's tables).")
flags.DEFINE_enum("encoder_norm", None, ["none", "batch"], "Encoder: Table 3 (none) or with batch norm and He "
                  "initialisation (batch; not in the paper, for training from scratch).")
flags.DEFINE_enum("code_stride", None, ["16", "8"], "Image pixels per code cell: 16 (Table 3, 8x8 codes) or "
                  "8 (16x16 codes: no pool after block 4 nor first upsample; not in the paper).")
flags.DEFINE_bool("patch_path", None, "Add a linear patch path beside the encoder's and decoder's convs "
                  "(1x1 convs between image patches and code cells; not in the paper).")
flags.DEFINE_enum("residual_base", None, list(config_lib.RESIDUAL_BASES),
                  "Residual output forms: subtract the decoding of the input's self-edit or of its own "
                  "code (not in the paper).")
flags.DEFINE_bool("code_skips", None, "X and I add their input's expression channels to their output, "
                  "so LEED starts from feature arithmetic (not in the paper).")
flags.DEFINE_integer("epochs", None, "LEED epochs (the last decay_epochs decay the lr to 0).")
flags.DEFINE_integer("decay_epochs", None, "LEED epochs of linear lr decay.")
flags.DEFINE_integer("neutralizer_epochs", None, "StarGAN epochs.")
flags.DEFINE_enum("stargan_output", None, ["direct", "attention"], "Neutralizer output: direct (StarGAN) "
                  "or attention (GANimation's mask over the input; not in StarGAN).")
flags.DEFINE_enum("stargan_domains", None, ["expressions", "neutral_expressive"], "Neutralizer domains: "
                  "one per expression (StarGAN) or neutral / expressive (not in StarGAN).")
flags.DEFINE_integer("stargan_residual_blocks", None, "Residual blocks of the neutralizer's generator (6).")
flags.DEFINE_float("neutralizer_learning_rate", None, "StarGAN learning rate (1e-4).")
flags.DEFINE_integer("neutralizer_n_critic", None, "StarGAN critic steps per generator step (5).")
flags.DEFINE_float("lambda_mask", None, "Weight of the attention neutralizer's mask penalty.")
flags.DEFINE_integer("autoencoder_epochs", None, "Auto-encoder epochs.")
flags.DEFINE_integer("batch_size", None, "LEED batch size.")
flags.DEFINE_float("code_noise", None, "Auto-encoder: noise added to the codes the decoder learns from, "
                   "relative to each channel's spread (not in the paper; 0 = off).")
flags.DEFINE_integer("autoencoder_batch_size", None, "Auto-encoder batch size (faces per step, each with "
                     "its neutral face).")
flags.DEFINE_float("learning_rate", None, "LEED learning rate.")
flags.DEFINE_float("lambda_adv", None, "Weight of the code critic's adversarial loss (the paper: 1; "
                   "0 = no critic, the synthetic default).")
flags.DEFINE_float("lambda_q", None, "Weight of the mutual expression information loss (0.01; 0 on synthetic).")
flags.DEFINE_float("lambda_recon", None, "Weight of the reconstruction loss (10; 0 on synthetic).")
flags.DEFINE_float("lambda_s", None, "Weight of the siamese loss (1000; 0 on synthetic).")
flags.DEFINE_float("lambda_gp", None, "Weight of the code critic's gradient penalty.")
flags.DEFINE_float("lambda_pair", None, "Weight of the matched-pair term (not in the paper; 0 = off, "
                   "the default on real data sets; 10 on synthetic). docs/results.md.")
flags.DEFINE_enum("pair_matching", None, list(config_lib.PAIR_MATCHINGS),
                  "Matched-pair term: match every two subjects one to one, or every subject to shared "
                  "expression slots (the synthetic default).")
flags.DEFINE_enum("pair_features", None, list(config_lib.PAIR_FEATURES),
                  "Matched-pair term: match on code displacements or on 32x32 image displacements "
                  "(pixels, the synthetic default).")
flags.DEFINE_integer("n_critic", None, "Critic steps per LEED generator step.")
flags.DEFINE_boolean("train_decoder", None, "Fine-tune the decoder in the LEED stage (the paper's "
                     "setting; default true, false on synthetic).")
flags.DEFINE_boolean("standardize_codes", None, "Feed X, I and the code critic codes standardised by "
                     "their per-channel training-set statistics (default true).")
flags.DEFINE_integer("synthetic_subjects", None, "Synthetic identities (10% held out).")
flags.DEFINE_list("synthetic_poses", None, "Yaw angles in degrees of the synthetic faces, e.g. -45,0,45.")
flags.DEFINE_integer("seed", None, "Random seed.")
flags.DEFINE_boolean("deterministic", None, "Bit-reproducible training (op determinism, single-threaded "
                     "TensorFlow; 1.4-1.6x the time per step on a 2-core CPU).")
flags.DEFINE_integer("max_steps", None, "Stop each stage at this step (resume later).")
flags.DEFINE_boolean("jit_compile", None, "Compile each replica's training steps with XLA.")
flags.DEFINE_enum("strategy", None, list(config_lib.STRATEGIES),
                  "default: one device; mirrored: every local GPU (or logical CPU device); "
                  "multi_worker: the machines in TF_CONFIG. Batch sizes are global.")
flags.DEFINE_enum("precision", None, list(config_lib.PRECISIONS),
                  "Keras mixed-precision policy of the networks (float16 with loss scaling).")


def main(argv):
    del argv
    overrides = {
        "data.data_dir": FLAGS.data_dir, "data.neutral_source": FLAGS.neutral_source,
        "data.synthetic_subjects": FLAGS.synthetic_subjects, "encoder_weights": FLAGS.encoder_weights,
        "data.synthetic_poses": FLAGS.synthetic_poses and [float(p) for p in FLAGS.synthetic_poses],
        "model.width": FLAGS.width, "leed.epochs": FLAGS.epochs, "leed.decay_epochs": FLAGS.decay_epochs,
        "neutralizer.epochs": FLAGS.neutralizer_epochs,
        "model.encoder_norm": FLAGS.encoder_norm,
        "model.code_stride": FLAGS.code_stride and int(FLAGS.code_stride),
        "model.patch_path": FLAGS.patch_path, "model.code_skips": FLAGS.code_skips,
        "model.residual_base": FLAGS.residual_base,
        "model.stargan_output": FLAGS.stargan_output, "model.stargan_domains": FLAGS.stargan_domains,
        "model.stargan_residual_blocks": FLAGS.stargan_residual_blocks,
        "neutralizer.learning_rate": FLAGS.neutralizer_learning_rate,
        "neutralizer.lambda_mask": FLAGS.lambda_mask, "neutralizer.n_critic": FLAGS.neutralizer_n_critic, "autoencoder.epochs": FLAGS.autoencoder_epochs,
        "leed.batch_size": FLAGS.batch_size,
        "autoencoder.batch_size": FLAGS.autoencoder_batch_size, "autoencoder.code_noise": FLAGS.code_noise, "leed.learning_rate": FLAGS.learning_rate,
        "leed.lambda_adv": FLAGS.lambda_adv, "leed.lambda_q": FLAGS.lambda_q, "leed.lambda_recon": FLAGS.lambda_recon,
        "leed.lambda_s": FLAGS.lambda_s, "leed.lambda_gp": FLAGS.lambda_gp,
        "leed.lambda_pair": FLAGS.lambda_pair, "leed.pair_matching": FLAGS.pair_matching,
        "leed.pair_features": FLAGS.pair_features,
        "leed.n_critic": FLAGS.n_critic, "leed.train_decoder": FLAGS.train_decoder,
        "leed.standardize_codes": FLAGS.standardize_codes, "seed": FLAGS.seed,
        "jit_compile": FLAGS.jit_compile, "strategy": FLAGS.strategy, "precision": FLAGS.precision,
        "deterministic": FLAGS.deterministic,
    }
    config = config_lib.resolve_config(FLAGS.run_dir, FLAGS.dataset, overrides)
    run.train(config, FLAGS.run_dir, stages=FLAGS.stages, max_steps=FLAGS.max_steps)


if __name__ == "__main__":
    cli.run(main)
