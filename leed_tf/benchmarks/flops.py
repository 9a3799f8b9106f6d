"""FLOP counter for TensorFlow graphs, and per-step FLOP formulas of the
LEED, neutralizer and auto-encoder training steps."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf


def _elements(tensor: tf.Tensor) -> int:
    if not tensor.shape.is_fully_defined():
        raise ValueError(f"Cannot count FLOPs of {tensor.name} with shape {tensor.shape}: "
                         f"trace with fully defined input shapes.")
    return int(np.prod(tensor.shape.as_list()))


def op_flops(op: tf.Operation) -> int:
    """Floating-point operations of one graph op; a multiply-add counts 2.

    Only convolutions and matrix products are counted, forward and backward:
    ``Conv2D`` (``2 * output elements * k_h * k_w * C_in``),
    ``Conv2DBackpropInput`` (a transposed convolution, or a convolution's
    gradient to its input: ``2 * elements of the incoming gradient * k_h *
    k_w * C_out``), ``Conv2DBackpropFilter`` and ``MatMul``. Biases,
    normalisation, activations and the optimizer are elementwise and left out,
    as is usual for model FLOPs.
    """
    if op.type == "Conv2D":
        kernel_h, kernel_w, in_channels, _ = op.inputs[1].shape
        return 2 * _elements(op.outputs[0]) * kernel_h * kernel_w * in_channels
    if op.type == "Conv2DBackpropInput":
        # Filter [k_h, k_w, channels of the op's output, channels of out_backprop].
        kernel_h, kernel_w, out_channels, _ = op.inputs[1].shape
        return 2 * _elements(op.inputs[2]) * kernel_h * kernel_w * out_channels
    if op.type == "Conv2DBackpropFilter":
        kernel_h, kernel_w, in_channels, _ = op.outputs[0].shape
        return 2 * _elements(op.inputs[2]) * kernel_h * kernel_w * in_channels
    if op.type == "MatMul":
        shape = op.inputs[0].shape
        inner = shape[0] if op.get_attr("transpose_a") else shape[1]
        return 2 * _elements(op.outputs[0]) * inner
    if op.type in ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile"):
        raise ValueError(f"Cannot count FLOPs inside {op.type} op {op.name}.")
    return 0


def graph_flops(graph: tf.Graph) -> int:
    """FLOPs (``op_flops``) of the ops a function graph's outputs need.

    Ops nothing depends on (e.g. a first layer's gradient to a constant
    input, built by the tape) are pruned at run time, so they are not counted.
    """
    pending = [t.op for t in graph.outputs] + list(graph.control_outputs)
    live = set()
    while pending:
        op = pending.pop()
        if op not in live:
            live.add(op)
            pending += [t.op for t in op.inputs] + list(op.control_inputs)
    return sum(op_flops(op) for op in live)


def function_flops(function: Callable, *input_specs: tf.TensorSpec) -> int:
    """FLOPs of one call of ``function`` on inputs of ``input_specs``, traced, not run."""
    traced = tf.function(function, autograph=False).get_concrete_function(*input_specs)
    return graph_flops(traced.graph)


def forward_flops(nets) -> dict[str, int]:
    """Forward FLOPs of each network of a ``LeedNetworks`` for one image (or code).

    Returns:
      FLOPs keyed by the attribute names of ``LeedNetworks``: ``encoder``,
      ``decoder``, ``extractor``, ``interpolator``, ``critic``,
      ``regularizer``, ``siamese``, ``neutralizer``, ``neutralizer_critic``.
    """
    from leed_tf.model import code_shape

    config = nets.config
    side, _, channels = code_shape(config)
    image = tf.TensorSpec([1, config.image_size, config.image_size, 3])
    code = tf.TensorSpec([1, side, side, channels])
    neutral_and_expression = tf.TensorSpec([1, side, side, 2 * channels])
    inputs = {"encoder": image, "decoder": code, "extractor": code,
              "interpolator": neutral_and_expression, "critic": code, "regularizer": code,
              "siamese": image, "neutralizer_critic": image}
    flops = {name: function_flops(lambda x, m=getattr(nets, name): m(x, training=False), spec)
             for name, spec in inputs.items()}
    labels = tf.TensorSpec([1, config.num_expressions])
    flops["neutralizer"] = function_flops(
        lambda x, y: nets.neutralizer((x, y), training=False), image, labels)
    return flops


def leed_step_flops(forward: dict[str, int], config) -> int:
    """FLOPs of one ``LeedTrainer.train_step`` from per-network forward FLOPs.

    A network's pass costs a multiple of its forward FLOPs: 1 forward only
    (frozen, no tape); 2 forward and backward to its input (frozen, but the
    loss's gradient passes through it); 3 forward and backward to input and
    weights (trained); 5 for the WGAN-GP term (forward, backward to the
    interpolates, and the outer tape's backward through both). ``B`` is the
    batch of pairs; X, I, D and Q run on codes, the others on images::

      step            network          passes   factor
      encode_real     E                4B       1   input, its neutral, reference, its neutral
                                                    (only without cache_codes: else once per run)
      critic_step     X, I             B        1   fake code, no tape
      (n_critic x)    D                2B       3   real and fake codes
                      D                B        5   gradient penalty
      generator_step  S                3B       1   targets (lambda_S > 0)
                      X                2B       3   reference and own expression
                      I                2B       3   edit and self-edit
                      Dec              2B       3   (2 with train_decoder=False; none without
                                                    lambda_recon, lambda_Q and lambda_S)
                      D                B        2   adversarial term on the edit (lambda_adv > 0;
                                                    without it no critic_step runs either)
                      E                B        2   edit re-encoded (lambda_Q > 0)
                      X                B        3   re-extracted expression (lambda_Q > 0)
                      Q                2B       3   (lambda_Q > 0)
                      S                B        2   edit (lambda_S > 0)
      siamese_step    S                4B       3   2 views x (input, its neutral)

    The factors are approximate: a trained network's first layer needs no
    gradient to its constant input, and the penalty's double backward costs
    between 5 and 6 passes. ``graph_flops`` of the traced steps counts what
    really runs; the benchmark prints it beside this count.

    Args:
      forward: ``forward_flops`` of the trainer's networks.
      config: The ``LeedConfig`` (batch size, ``n_critic``, the loss
        weights, ``cache_codes``, ``train_decoder``).

    Returns:
      FLOPs of one step.
    """
    f = forward
    critic = f["extractor"] + f["interpolator"] + 2 * 3 * f["critic"] + 5 * f["critic"]
    n_critic = config.n_critic if config.lambda_adv > 0 else 0
    decoder_factor = 3 if config.train_decoder else 2
    decodes = config.lambda_recon > 0 or config.lambda_q > 0 or config.lambda_s > 0
    generator = 2 * 3 * (f["extractor"] + f["interpolator"])
    generator += 2 * decoder_factor * f["decoder"] if decodes else 0
    generator += 2 * f["critic"] if config.lambda_adv > 0 else 0
    if config.lambda_q > 0:
        generator += 2 * f["encoder"] + 3 * f["extractor"] + 2 * 3 * f["regularizer"]
    siamese = 0
    if config.lambda_s > 0:
        generator += 3 * f["siamese"] + 2 * f["siamese"]
        siamese = 4 * 3 * f["siamese"]
    encode = 0 if config.cache_codes else 4 * f["encoder"]
    per_pair = encode + n_critic * critic + generator + siamese
    return config.batch_size * per_pair


def neutralizer_step_flops(forward: dict[str, int], batch_size: int) -> tuple[int, int]:
    """FLOPs of ``NeutralizerTrainer``'s critic step and generator step.

    Critic step: G once without tape (1), the critic on real and fake images
    (3 each) and the gradient penalty (5). Generator step: G on the images
    and on its own output for the cycle (3 each: trained, and the second pass
    also carries the gradient back to the first), the critic on the fake (2).

    Returns:
      (critic step, generator step) FLOPs for ``batch_size`` images.
    """
    g, c = forward["neutralizer"], forward["neutralizer_critic"]
    return batch_size * (g + 2 * 3 * c + 5 * c), batch_size * (2 * 3 * g + 2 * c)


def autoencoder_step_flops(forward: dict[str, int], batch_size: int, train_encoder: bool,
                           feature_loss: bool = True) -> int:
    """FLOPs of one ``AutoencoderTrainer.autoencoder_step``: ``batch_size``
    faces and as many neutral faces, ``2 * batch_size`` images.

    E(I) and Dec(z) run forward; the backward pass trains Dec (2 Dec) and, when
    the encoder trains, E (2 E). With the feature loss, E(Dec(z)) runs forward
    too, the decoder's gradient passes back through it (1 E), and the encoder's
    gradient of the pixel loss is a second backward pass through Dec (1 Dec).

    Returns:
      FLOPs for ``2 * batch_size`` images.
    """
    e, dec = forward["encoder"], forward["decoder"]
    per_image = e + 3 * dec
    if feature_loss:
        per_image += 2 * e
    if train_encoder:
        per_image += 2 * e + (dec if feature_loss else 0)
    return 2 * batch_size * per_image
