"""The networks of LEED: one module per table of the seed, plus StarGAN."""

from leed_tf.networks.code_critic import CodeCritic
from leed_tf.networks.code_scale import CodeScale
from leed_tf.networks.code_transform import Extractor, Interpolator
from leed_tf.networks.decoder import Decoder
from leed_tf.networks.encoder import Encoder, find_vgg19_weights, load_vgg19_weights
from leed_tf.networks.regularizer import Regularizer
from leed_tf.networks.siamese import Siamese
from leed_tf.networks.stargan import StarGANCritic, StarGANGenerator

__all__ = ["CodeCritic", "CodeScale", "Decoder", "Encoder", "Extractor", "Interpolator", "Regularizer",
           "Siamese", "StarGANCritic", "StarGANGenerator", "find_vgg19_weights", "load_vgg19_weights"]
