"""Throughput benchmarks, run by ``scripts/benchmark.py <name>``.

Each benchmark is a function returning a list of ``Measurement`` rows;
``BENCHMARKS`` maps the command-line name to it, and ``run`` formats the rows
as a table under a line describing the machine. Figures measured with these
are recorded in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from leed_tf.data import augment, pipeline

# RaFD's photo size and face box (docs/design.md section 4), for the decoding
# benchmark: portrait 681 x 1024, box (top, left, bottom, right).
_RAFD_WIDTH, _RAFD_HEIGHT = 681, 1024
_RAFD_BOX = (90, 30, 711, 651)

# One paired example holds four 128 x 128 faces: input, input neutral,
# reference, reference neutral.
_IMAGES_PER_PAIR = 4


@dataclasses.dataclass
class Measurement:
    """One row of a benchmark table.

    Attributes:
      what: What was measured.
      value: The figure.
      unit: Its unit, e.g. ``"images/s"``.
      note: Anything needed to read the figure.
    """

    what: str
    value: float
    unit: str
    note: str = ""


def machine_description() -> str:
    """CPU model, core count, accelerators and TensorFlow version, on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    accelerators = f"{len(gpus)} GPU" if gpus else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {accelerators}, TensorFlow {tf.__version__}, "
            f"Python {platform.python_version()}")


def measure_matmul_gflops(size: int = 2048, repeats: int = 10, warmup: int = 2,
                          dtype: tf.DType = tf.float32) -> float:
    """Peak matmul rate of this machine, for context beside other figures.

    Times ``tf.linalg.matmul`` of two ``size x size`` matrices of ``dtype``
    (float32 unless given: the reference every share of peak is taken of) in a
    ``tf.function`` and counts ``2 * size**3`` floating-point operations per
    product. The fastest repeat is reported: other processes can only slow a
    run down, so the minimum is the best estimate of what the machine can do.

    Args:
      size: Side of the square matrices.
      repeats: Timed products.
      warmup: Untimed products first (tracing, thread pools, caches).
      dtype: The matrices' dtype.

    Returns:
      GFLOP/s of the fastest product.
    """
    a = tf.cast(tf.random.stateless_uniform([size, size], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_uniform([size, size], seed=[3, 4]), dtype)

    @tf.function
    def product(a, b):
        # Returning one element keeps the copy back to Python out of the timing.
        return tf.linalg.matmul(a, b)[0, 0]

    for _ in range(warmup):
        product(a, b).numpy()
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        fastest = min(fastest, time.perf_counter() - start)
    return 2.0 * size**3 / fastest / 1e9


def time_dataset(dataset: tf.data.Dataset, steps: int, warmup: int) -> float:
    """Batches per second that ``dataset`` delivers to an idle consumer.

    Args:
      dataset: An endless (``repeat=True``) dataset.
      steps: Timed batches.
      warmup: Untimed batches first, which also let tf.data's autotuner and
        the prefetch buffer settle.

    Returns:
      Batches per second over the timed steps.
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps / (time.perf_counter() - start)


def time_function(function: Callable[[], object], steps: int, warmup: int) -> float:
    """Calls per second of ``function`` (whose result is fetched to the host)."""
    for _ in range(warmup):
        _fetch(function())
    start = time.perf_counter()
    for _ in range(steps):
        _fetch(function())
    return steps / (time.perf_counter() - start)


def _fetch(result):
    for tensor in tf.nest.flatten(result):
        tensor.numpy()


def _resident_mb() -> float | None:
    """Resident memory of this process in MB (Linux only, else None)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _epoch_costs(dataset: tf.data.Dataset, epochs: int = 3) -> tuple[float, float | None]:
    """Worst time to the first batch of a new pass, and memory growth after the first."""
    first_batch, memory = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        iterator = iter(dataset)
        next(iterator)
        first_batch.append(time.perf_counter() - start)
        for _ in iterator:
            pass
        del iterator
        memory.append(_resident_mb())
    growth = None if memory[0] is None else memory[-1] - memory[0]
    return max(first_batch), growth


def _write_portraits(directory: str, count: int, seed: int) -> list[str]:
    """Writes ``count`` smooth 681x1024 JPEGs, roughly the size of RaFD's photos."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        # Low-frequency colour fields upsampled and a little grain: JPEG sees
        # photo-like content, not incompressible noise.
        coarse = rng.integers(0, 256, (12, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((_RAFD_WIDTH, _RAFD_HEIGHT),
                                                          Image.BICUBIC), np.int16)
        grain = rng.integers(-6, 7, field.shape, dtype=np.int16)
        pixels = np.clip(field + grain, 0, 255).astype(np.uint8)
        path = os.path.join(directory, f"portrait_{i:04d}.jpg")
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def benchmark_jpeg_decoding(num_files: int = 200, size: int = 128, seed: int = 0
                            ) -> list[Measurement]:
    """Decoding RaFD-sized JPEGs with the face-box crop (``images.decode_files``).

    Args:
      num_files: JPEGs written to a temporary folder, then decoded.
      size: Output side.
      seed: Seed of the written pictures.

    Returns:
      One row: images decoded per second with the default worker threads.
    """
    from leed_tf.data import images as image_files

    with tempfile.TemporaryDirectory() as directory:
        paths = _write_portraits(directory, num_files, seed)
        megabytes = sum(os.path.getsize(p) for p in paths) / 2**20
        image_files.decode_files(paths[:4], _RAFD_BOX, size)  # imports, thread start-up
        start = time.perf_counter()
        decoded, _, failures = image_files.decode_files(paths, _RAFD_BOX, size)
        seconds = time.perf_counter() - start
    if failures or len(decoded) != num_files:
        raise RuntimeError(f"Decoding benchmark files failed: {failures[:3]}")
    return [Measurement(
        f"decode_files: {num_files} JPEGs {_RAFD_WIDTH}x{_RAFD_HEIGHT} -> box crop -> {size}",
        num_files / seconds, "images/s",
        f"{os.cpu_count()} threads, {megabytes / num_files * 1024:.0f} KB/file")]


def benchmark_data(batch_size: int = 24, num_images: int = 2000, steps: int = 200,
                   warmup: int = 20, jpeg_files: int = 200, seed: int = 0,
                   **unused) -> list[Measurement]:
    """Input pipeline throughput: what the training steps can be fed.

    Measures ``image_dataset`` and ``paired_dataset`` over a random ``uint8``
    array of ``num_images`` 128 x 128 faces (pixel content does not change
    their cost), ``augment_together`` as called inside a training step,
    the cost of starting a new epoch, and JPEG decoding of RaFD-sized files.

    Args:
      batch_size: Images (or pairs) per batch.
      num_images: Faces in the in-memory array.
      steps: Timed batches per row.
      warmup: Untimed batches before each timed run.
      jpeg_files: JPEGs for the decoding row (0 skips it).
      seed: Seed of the array and of the pipelines.
      **unused: Settings of other benchmarks, ignored.

    Returns:
      The table's rows.
    """
    del unused
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (num_images, 128, 128, 3), dtype=np.uint8)
    neutrals = rng.integers(0, 256, faces.shape, dtype=np.uint8)
    labels = rng.integers(0, 8, num_images)
    rows = [Measurement("matmul 2048x2048 float32 (machine peak, for context)",
                        measure_matmul_gflops(), "GFLOP/s")]

    def image_rate(**kwargs):
        dataset = pipeline.image_dataset(faces, labels, batch_size, seed=seed, repeat=True,
                                         **kwargs)
        return time_dataset(dataset, steps, warmup) * batch_size

    rows.append(Measurement("image_dataset, no augmentation",
                            image_rate(flip=False, max_shift=0), "images/s"))
    rows.append(Measurement("image_dataset, flip + shift 4", image_rate(), "images/s"))

    for jitter in (0.0, 0.1):
        name = "flip + shift 4" + (f" + jitter {jitter}" if jitter else "")
        dataset = pipeline.paired_dataset(faces, neutrals, batch_size, seed=seed, repeat=True,
                                          carry={"label": labels}, jitter=jitter)
        pairs = time_dataset(dataset, steps, warmup) * batch_size
        rows.append(Measurement(f"paired_dataset, {name}", pairs, "pairs/s"))
        rows.append(Measurement(f"paired_dataset, {name}", pairs * _IMAGES_PER_PAIR, "images/s",
                                f"{_IMAGES_PER_PAIR} faces per pair"))

    # The siamese network's two views are augmented inside the training step.
    batch = pipeline.to_unit(faces[:batch_size])
    step_seed = tf.Variable([seed, 0], dtype=tf.int64)

    @tf.function
    def two_views():
        step_seed.assign_add([0, 1])
        first = augment.augment_together([batch, batch], step_seed, jitter=0.1)
        second = augment.augment_together([batch, batch], step_seed + [1, 0], jitter=0.1)
        return first + second

    calls = time_function(two_views, steps, warmup)
    rows.append(Measurement("augment_together in tf.function, 2 views of (image, neutral)",
                            calls * 4 * batch_size, "images/s",
                            f"{1000 / calls:.1f} ms per batch of {batch_size}"))

    dataset = pipeline.paired_dataset(faces, neutrals, batch_size, seed=seed)
    latency, growth = _epoch_costs(dataset)
    rows.append(Measurement("paired_dataset, new epoch: time to first batch (worst of 3)",
                            latency * 1000, "ms", f"{num_images} faces"))
    if growth is not None:
        rows.append(Measurement("paired_dataset, resident memory growth over 3 epochs",
                                growth, "MB", f"arrays: {2 * faces.nbytes / 2**20:.0f} MB"))
    if jpeg_files:
        rows.extend(benchmark_jpeg_decoding(jpeg_files, seed=seed))
    return rows


# -- Training step ------------------------------------------------------------

# A full-width LEED step takes tens of seconds on a 2-core CPU, so the
# command line's default of 200 timed steps (and 20 warm-up steps) is capped.
_FULL_WIDTH_MAX_STEPS, _FULL_WIDTH_MAX_WARMUP = 3, 1
_SYNTHETIC_MAX_STEPS, _SYNTHETIC_MAX_WARMUP = 20, 3


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
    from leed_tf.networks.layers import scaled

    config = nets.config
    side = config.image_size // 16
    image = tf.TensorSpec([1, config.image_size, config.image_size, 3])
    code = tf.TensorSpec([1, side, side, scaled(512, config.width)])
    neutral_and_expression = tf.TensorSpec([1, side, side, 2 * scaled(512, config.width)])
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
                      Dec              2B       3   (2 with train_decoder=False)
                      D                B        2   adversarial term on the edit
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
      config: The ``LeedConfig`` (batch size, ``n_critic``, ``lambda_q``,
        ``lambda_s``, ``cache_codes``, ``train_decoder``).

    Returns:
      FLOPs of one step.
    """
    f = forward
    critic = f["extractor"] + f["interpolator"] + 2 * 3 * f["critic"] + 5 * f["critic"]
    decoder_factor = 3 if config.train_decoder else 2
    generator = (2 * 3 * (f["extractor"] + f["interpolator"]) + 2 * decoder_factor * f["decoder"]
                 + 2 * f["critic"])
    if config.lambda_q > 0:
        generator += 2 * f["encoder"] + 3 * f["extractor"] + 2 * 3 * f["regularizer"]
    siamese = 0
    if config.lambda_s > 0:
        generator += 3 * f["siamese"] + 2 * f["siamese"]
        siamese = 4 * 3 * f["siamese"]
    encode = 0 if config.cache_codes else 4 * f["encoder"]
    per_pair = encode + config.n_critic * critic + generator + siamese
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


@dataclasses.dataclass
class StepTiming:
    """Wall time of repeated calls of one training step, and its FLOPs.

    Attributes:
      seconds: Wall time of each timed call.
      flops: FLOPs of one call, from ``forward_flops`` and the step's
        structure (``leed_step_flops`` and the like).
      traced_flops: ``graph_flops`` of the traced step functions: what the
        graphs really run, a check of ``flops``.
    """

    seconds: list[float]
    flops: int
    traced_flops: int

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def gflops_per_second(self) -> float:
        return self.flops / self.median / 1e9


def time_calls(function: Callable[[], object], steps: int, warmup: int) -> list[float]:
    """Wall time of each of ``steps`` calls of ``function`` after ``warmup`` calls.

    The first warm-up call traces the ``tf.function``s; results are fetched
    to the host inside the timing.
    """
    for _ in range(warmup):
        _fetch(function())
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        _fetch(function())
        seconds.append(time.perf_counter() - start)
    return seconds


def _random_faces(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def measure_leed_step(config, steps: int, warmup: int, seed: int = 0) -> StepTiming:
    """Times ``LeedTrainer.train_step`` on one fixed batch of random faces.

    Args:
      config: A ``Config``; its ``leed`` settings give the batch size and
        the step's structure, its ``model`` the networks' width, its
        ``precision`` and ``jit_compile`` how the step runs.
      steps: Timed steps.
      warmup: Untimed steps first (at least 1: the first call traces).
      seed: Seed of the faces.

    Returns:
      The timing; nothing is written (no checkpoint, no summaries).
    """
    from leed_tf.model import LeedNetworks
    from leed_tf.training.distribute import precision_policy
    from leed_tf.training.stages import LeedTrainer, ValidationBatch

    c = config.leed
    rng = np.random.default_rng(seed)
    size = config.model.image_size
    faces = [_random_faces(rng, c.batch_size, size) for _ in range(4)]
    batch = {key: pipeline.to_unit(tf.constant(images)) for key, images in
             zip(("input", "input_neutral", "reference", "reference_neutral"), faces)}
    with precision_policy(config.precision):
        nets = LeedNetworks(config.model)
    with tempfile.TemporaryDirectory() as run_dir:
        # The trainer needs groups for the matched-pair term; the timed step
        # takes its targets from the batch below.
        groups = np.arange(c.batch_size) % 2
        trainer = LeedTrainer(config, run_dir, nets, faces[0], faces[1], ValidationBatch(*faces),
                              groups=groups)
        codes = trainer.encode_real(batch)
        traced = []
        if c.cache_codes:
            # The codes arrive with the batch, computed once per run.
            batch.update({"input_code": codes["code"], "input_neutral_code": codes["neutral_code"],
                          "reference_code": codes["reference_code"],
                          "reference_neutral_code": codes["reference_neutral_code"]})
            if c.lambda_pair > 0:
                targets = {"target_code": codes["code"], "target_index": tf.zeros([c.batch_size], tf.int32)}
                batch.update(targets)
                codes = {**codes, **targets}
        else:
            traced.append(trainer.encode_real.get_concrete_function(batch))
        seconds = time_calls(lambda: trainer.train_step(batch), steps, max(1, warmup))
        # The graphs train_step ran, in its order (with jit_compile they call
        # XLA-compiled functions, whose ops graph_flops does not see).
        traced += [trainer.critic_step.get_concrete_function(codes)] * c.n_critic
        traced.append(trainer.generator_step.get_concrete_function(batch, codes))
        if c.lambda_s > 0:
            traced.append(trainer.siamese_step.get_concrete_function(batch))
        traced_flops = 0 if config.jit_compile else sum(graph_flops(f.graph) for f in traced)
    return StepTiming(seconds, leed_step_flops(forward_flops(nets), c), traced_flops)


def measure_neutralizer_steps(config, steps: int, warmup: int, seed: int = 0
                              ) -> tuple[StepTiming, StepTiming]:
    """Times ``NeutralizerTrainer``'s critic step and generator step apart.

    Returns:
      (critic step, generator step) timings at ``config.neutralizer.batch_size``.
    """
    from leed_tf.model import LeedNetworks
    from leed_tf.training.stages import NeutralizerTrainer, ValidationBatch

    rng = np.random.default_rng(seed)
    batch_size = config.neutralizer.batch_size
    faces = _random_faces(rng, batch_size, config.model.image_size)
    labels = rng.integers(0, config.model.num_expressions, batch_size).astype(np.int32)
    images, label_tensor = pipeline.to_unit(tf.constant(faces)), tf.constant(labels)
    nets = LeedNetworks(config.model)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = NeutralizerTrainer(config, run_dir, nets, faces, labels,
                                     ValidationBatch(faces, faces, faces, faces))
        timed = []
        for step in (trainer.critic_step, trainer.generator_step):
            seconds = time_calls(lambda step=step: step(images, label_tensor), steps,
                                 max(1, warmup))
            traced = step.get_concrete_function(images, label_tensor)
            timed.append((seconds, graph_flops(traced.graph)))
    (critic_seconds, critic_traced), (generator_seconds, generator_traced) = timed
    critic_flops, generator_flops = neutralizer_step_flops(forward_flops(nets), batch_size)
    return (StepTiming(critic_seconds, critic_flops, critic_traced),
            StepTiming(generator_seconds, generator_flops, generator_traced))


def measure_autoencoder_step(config, steps: int, warmup: int, train_encoder: bool = True,
                             seed: int = 0) -> StepTiming:
    """Times ``AutoencoderTrainer.autoencoder_step`` at ``config.autoencoder.batch_size``.

    Args:
      train_encoder: Whether the encoder trains (it does unless ImageNet
        weights were loaded, which needs width 1).
    """
    from leed_tf.model import LeedNetworks
    from leed_tf.training.stages import AutoencoderTrainer, ValidationBatch

    rng = np.random.default_rng(seed)
    batch_size = config.autoencoder.batch_size
    faces = _random_faces(rng, batch_size, config.model.image_size)
    images = pipeline.to_unit(tf.constant(faces))
    nets = LeedNetworks(config.model)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = AutoencoderTrainer(config, run_dir, nets, faces, faces,
                                     ValidationBatch(faces, faces, faces, faces), train_encoder)
        seconds = time_calls(lambda: trainer.autoencoder_step(images, images), steps, max(1, warmup))
        traced = graph_flops(trainer.autoencoder_step.get_concrete_function(images, images).graph)
    counted = autoencoder_step_flops(forward_flops(nets), batch_size, train_encoder,
                                     feature_loss=config.autoencoder.lambda_feature > 0)
    return StepTiming(seconds, counted, traced)


def _load_row(when: str) -> Measurement:
    one, five, fifteen = os.getloadavg()
    return Measurement(f"load average, 1 min, {when}", one, "",
                       f"5 min {five:.1f}, 15 min {fifteen:.1f}; {os.cpu_count()} cores")


def _step_rows(what: str, timing: StepTiming, peak: float, warmup: int) -> list[Measurement]:
    """Time, GFLOP, GFLOP/s and % of the matmul peak of one step."""
    seconds = sorted(timing.seconds)
    scale, unit = (1, "s/step") if timing.median >= 10 else (1000, "ms/step")
    return [
        Measurement(f"{what}: time", timing.median * scale, unit,
                    f"median of {len(seconds)} after {warmup} warm-up; "
                    f"range {seconds[0]:.3g}-{seconds[-1]:.3g} s"),
        Measurement(f"{what}: work", timing.flops / 1e9, "GFLOP",
                    "conv + matmul; traced graphs: "
                    + (f"{timing.traced_flops / 1e9:.1f} GFLOP" if timing.traced_flops else "n/a (XLA)")),
        Measurement(f"{what}: achieved", timing.gflops_per_second, "GFLOP/s",
                    f"{100 * timing.gflops_per_second / peak:.1f}% of matmul peak"),
    ]


def benchmark_train(batch_size: int = 24, steps: int = _SYNTHETIC_MAX_STEPS,
                    warmup: int = _SYNTHETIC_MAX_WARMUP, full_width: bool = True, seed: int = 0,
                    precision: str = "float32", jit_compile: bool = False, leed_only: bool = False,
                    cache_codes: bool = True, **unused) -> list[Measurement]:
    """Training step cost: seconds, FLOPs and achieved GFLOP/s.

    Times ``LeedTrainer.train_step`` (encode + critic + generator + siamese)
    on a fixed batch of random ``uint8`` faces at full width (the paper's
    tables and LEED settings, decoder trained) and at ``synthetic_defaults()``, and, as context, the
    neutralizer's critic and generator steps and the auto-encoder step at
    ``synthetic_defaults()`` (their own batch sizes). FLOPs are counted by
    ``leed_step_flops`` and the like, and checked against the traced graphs.

    Args:
      batch_size: Pairs per LEED step.
      steps: Timed steps per row, at most 3 at full width and 20 otherwise.
      warmup: Untimed steps first, at most 1 at full width and 3 otherwise.
      full_width: Also measure the full-width LEED step (the slow part).
      seed: Seed of the faces.
      precision: ``Config.precision`` of every measured step: ``float32``,
        ``mixed_float16`` or ``mixed_bfloat16``. Under a mixed policy the
        matmul peak of its 16-bit type is measured too.
      jit_compile: ``Config.jit_compile`` of every measured step (XLA).
      leed_only: Measure the LEED steps only (no neutralizer and
        auto-encoder context rows).
      cache_codes: ``LeedConfig.cache_codes`` of the LEED steps: False
        encodes the four real faces of every pair in every step.
      **unused: Settings of other benchmarks, ignored.

    Returns:
      The table's rows.
    """
    del unused
    import gc

    from leed_tf.config import PRECISIONS, LeedConfig, ModelConfig, synthetic_defaults

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    half = {"mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}.get(precision)
    settings = (f", {precision}" + (", XLA" if jit_compile else "")
                + ("" if cache_codes else ", codes encoded per step"))

    start_load, start_peak = _load_row("at start"), measure_matmul_gflops()
    synthetic = synthetic_defaults()
    synthetic.leed.batch_size, synthetic.leed.cache_codes = batch_size, cache_codes
    if not cache_codes:
        synthetic.leed.lambda_pair = 0.0  # the matched-pair term needs the cached codes
    synthetic.precision, synthetic.jit_compile = precision, jit_compile
    small_steps, small_warmup = min(steps, _SYNTHETIC_MAX_STEPS), min(warmup, _SYNTHETIC_MAX_WARMUP)
    leed = []
    if full_width:
        config = synthetic_defaults()
        config.model = ModelConfig(width=1.0)
        # The paper's LEED settings (decoder trained).
        config.leed = LeedConfig(batch_size=batch_size, cache_codes=cache_codes)
        config.precision, config.jit_compile = precision, jit_compile
        big_steps = min(steps, _FULL_WIDTH_MAX_STEPS)
        big_warmup = max(1, min(warmup, _FULL_WIDTH_MAX_WARMUP))
        leed.append((1.0, measure_leed_step(config, big_steps, big_warmup, seed), big_warmup))
        gc.collect()  # The full-width networks' memory, before the next measurement.
    if not (leed_only and full_width):
        timing = measure_leed_step(synthetic, small_steps, small_warmup, seed)
        leed.append((synthetic.model.width, timing, small_warmup))
    if not leed_only:
        critic, generator = measure_neutralizer_steps(synthetic, small_steps, small_warmup, seed)
        autoencoder = measure_autoencoder_step(synthetic, small_steps, small_warmup, seed=seed)
    end_peak, end_load = measure_matmul_gflops(), _load_row("at end")
    peak = max(start_peak, end_peak)

    rows = [start_load, end_load,
            Measurement("matmul 2048x2048 float32 (machine peak)", peak, "GFLOP/s",
                        f"higher of {start_peak:.1f} before and {end_peak:.1f} after the steps")]
    if half is not None:
        half_peak = measure_matmul_gflops(dtype=half)
        rows.append(Measurement(f"matmul 2048x2048 {half.name}", half_peak, "GFLOP/s",
                                f"{half_peak / peak:.2f} x the float32 peak"))
    for width, timing, warmup_steps in leed:
        rows += _step_rows(f"LEED train_step, width {width}, batch {batch_size}{settings}", timing, peak,
                           warmup_steps)
    if leed_only:
        return rows
    n_critic = synthetic.neutralizer.n_critic
    both = critic.median + generator.median
    rate = (critic.flops + generator.flops) / both / 1e9
    rows.append(Measurement(
        f"neutralizer critic_step + generator_step, width {synthetic.model.width}, "
        f"batch {synthetic.neutralizer.batch_size}", both * 1000, "ms/step",
        f"critic {critic.median * 1000:.0f} + generator {generator.median * 1000:.0f} ms, "
        f"{(critic.flops + generator.flops) / 1e9:.1f} GFLOP (traced "
        f"{(critic.traced_flops + generator.traced_flops) / 1e9:.1f}), {rate:.1f} GFLOP/s = "
        f"{100 * rate / peak:.0f}% of peak; mean train_step "
        f"{(critic.median + generator.median / n_critic) * 1000:.0f} ms (generator every "
        f"{n_critic}th)"))
    rows.append(Measurement(
        f"autoencoder_step (encoder trained), width {synthetic.model.width}, "
        f"batch {synthetic.autoencoder.batch_size}", autoencoder.median * 1000, "ms/step",
        f"{autoencoder.flops / 1e9:.1f} GFLOP (traced {autoencoder.traced_flops / 1e9:.1f}), "
        f"{autoencoder.gflops_per_second:.1f} GFLOP/s = "
        f"{100 * autoencoder.gflops_per_second / peak:.0f}% of peak"))
    return rows


# -- Inference ----------------------------------------------------------------

# A full-width edit takes seconds on a 2-core CPU and a batch of 32 about a
# minute, so the command line's default of 200 timed calls is capped.
_INFER_MAX_CALLS = {0.125: 30, 1.0: 5}
_INFER_MAX_BATCH_CALLS = {0.125: 5, 1.0: 2}


def _median_seconds(function: Callable[[], object], calls: int, warmup: int) -> list[float]:
    """Sorted wall times of ``calls`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        _fetch(function())
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        _fetch(function())
        times.append(time.perf_counter() - start)
    return sorted(times)


def benchmark_infer(steps: int = 30, warmup: int = 2, widths: tuple = (0.125, 1.0), batch: int = 32,
                    seed: int = 0, **unused) -> list[Measurement]:
    """Inference cost of the exported SavedModel (``leed_tf.inference.export``).

    For each width, networks with random weights (the cost does not depend on
    them) are exported with ``export_networks`` to a temporary folder and
    loaded back with ``tf.saved_model.load``, as TF Serving would. Measured:
    one edit through ``edit_tensor`` (float images; G_neu twice, E three
    times, X, I, Dec once), one edit through ``serving_default`` from a
    681 x 1024 JPEG pair to PNG bytes (decoding, crop and resize in the
    graph), and a batch of ``batch`` edits through ``edit_tensor``.

    Args:
      steps: Timed calls per row (capped: 30 single edits and 5 batches at
        width 0.125, 5 and 2 at width 1).
      warmup: Untimed calls first (at most 2; at least 1).
      widths: Network widths.
      batch: Edits per batch.
      seed: Seed of the weights and pictures.
      **unused: Settings of other benchmarks, ignored.

    Returns:
      The table's rows.
    """
    del unused
    import gc
    import io

    import keras
    from PIL import Image

    from leed_tf.config import ModelConfig
    from leed_tf.inference.export import LeedServingModule, export_networks
    from leed_tf.model import LeedNetworks

    rows = [_load_row("at start"), Measurement("matmul 2048x2048 float32 (machine peak, for context)",
                                               measure_matmul_gflops(), "GFLOP/s")]
    rng = np.random.default_rng(seed)
    faces = tf.constant(rng.uniform(0.0, 1.0, (batch, 128, 128, 3)).astype(np.float32))
    with tempfile.TemporaryDirectory() as directory:
        jpegs = [open(p, "rb").read() for p in _write_portraits(directory, 2, seed)]
    warmup = max(1, min(warmup, 2))
    for width in widths:
        keras.utils.set_random_seed(seed)
        nets = LeedNetworks(ModelConfig(width=width))
        calls = max(1, min(steps, _INFER_MAX_CALLS.get(width, 5)))
        batch_calls = max(1, min(steps, _INFER_MAX_BATCH_CALLS.get(width, 2)))
        module = LeedServingModule(nets)
        spec = tf.TensorSpec([1, 128, 128, 3], tf.float32)
        try:
            flops = function_flops(lambda a, b, i: module._edit_tensor(a, b, i), spec, spec,
                                   tf.TensorSpec([1], tf.float32))
        except ValueError:  # A graph whose FLOPs cannot be counted.
            flops = None
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            path = export_networks(nets, directory, source=f"random weights, width {width}")
            exported = time.perf_counter() - start
            start = time.perf_counter()
            model = tf.saved_model.load(path)
            loaded = time.perf_counter() - start
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
        edit = model.signatures["edit_tensor"]
        one = _median_seconds(lambda: edit(input_image=faces[:1], reference_image=faces[1:2],
                                           intensity=tf.constant([1.0])), calls, warmup)
        serve = model.signatures["serving_default"]
        served = _median_seconds(lambda: serve(input_image=tf.constant(jpegs[:1]),
                                               reference_image=tf.constant(jpegs[1:]),
                                               intensity=tf.constant([1.0])), calls, warmup)
        many = _median_seconds(lambda: edit(input_image=faces, reference_image=faces[::-1],
                                            intensity=tf.ones([batch])), batch_calls, 1)
        png = serve(input_image=tf.constant(jpegs[:1]), reference_image=tf.constant(jpegs[1:]),
                    intensity=tf.constant([1.0]))["output_png_bytes"].numpy()[0]
        assert Image.open(io.BytesIO(png)).size == (128, 128)
        median, batch_median = one[len(one) // 2], many[len(many) // 2]
        rows += [
            Measurement(f"width {width}: export + tf.saved_model.load", exported + loaded, "s",
                        f"export {exported:.1f} s, load {loaded:.1f} s, {size / 2**20:.1f} MB on disk"),
            Measurement(f"width {width}: edit_tensor, 1 edit, latency", median * 1000, "ms",
                        f"median of {calls}, range {one[0] * 1000:.0f}-{one[-1] * 1000:.0f} ms"
                        + (f"; {flops / 1e9:.2f} GFLOP = {flops / median / 1e9:.0f} GFLOP/s"
                           if flops else "")),
            Measurement(f"width {width}: serving_default, 681x1024 JPEGs -> PNG, latency",
                        served[len(served) // 2] * 1000, "ms",
                        f"median of {calls}, range {served[0] * 1000:.0f}-{served[-1] * 1000:.0f} ms"),
            Measurement(f"width {width}: edit_tensor, batch of {batch}, throughput", batch / batch_median,
                        "images/s", f"{batch_median:.2f} s per batch, median of {batch_calls}"),
        ]
        model = module = nets = None  # Free the full-width networks before the next width.
        gc.collect()
    rows.append(_load_row("at end"))
    return rows


BENCHMARKS: dict[str, Callable[..., list[Measurement]]] = {
    "data": benchmark_data,
    "train": benchmark_train,
    "infer": benchmark_infer,
}


def get_benchmark(name: str) -> Callable[..., list[Measurement]]:
    """The benchmark called ``name``.

    Raises:
      ValueError: ``name`` is not a key of ``BENCHMARKS``.
    """
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"Unknown benchmark {name!r}; expected one of: "
                         f"{', '.join(sorted(BENCHMARKS))}.") from None


def format_table(rows: list[Measurement]) -> str:
    """Rows as an aligned plain-text table."""
    width = max(len(r.what) for r in rows)
    lines = [f"{'what':<{width}}  {'value':>10}  {'unit':<9}  note",
             "-" * (width + 36)]
    for r in rows:
        lines.append(f"{r.what:<{width}}  {r.value:>10.1f}  {r.unit:<9}  {r.note}".rstrip())
    return "\n".join(lines)


def run(name: str, **settings) -> str:
    """Runs benchmark ``name`` with ``settings`` and returns its report.

    Args:
      name: A key of ``BENCHMARKS``.
      **settings: Keyword arguments of the benchmark (e.g. ``batch_size``).

    Returns:
      A header (date, machine, settings) and the table.
    """
    benchmark = get_benchmark(name)
    rows = benchmark(**settings)
    described = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    header = [f"benchmark: {name} ({described})",
              f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
              f"machine: {machine_description()}"]
    return "\n".join(header + ["", format_table(rows)])
