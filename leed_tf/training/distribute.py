"""tf.distribute and mixed precision for the training stages (docs/design.md section 6).

One code path serves one device (the default strategy), several local devices
(``MirroredStrategy``) and several machines (``MultiWorkerMirroredStrategy``,
configured by ``TF_CONFIG``). A step on N replicas computes what the
single-device step computes on the same global batch:

- The input pipeline builds the single-device batches; each is cut into N
  contiguous slices and replica i takes the i-th (``distribute_batches``).
- A step's random draws (gradient-penalty mix factors, target domains,
  augmentation seeds) are made once, outside the replicas, for the global
  batch; each replica takes its rows (``replica_rows``).
- A replica differentiates its share of the loss, ``loss / N``
  (``replica_share``): means over N equal slices average to the global
  batch's mean.
- In-batch contrastive losses (the InfoNCE bounds of Q and S) are computed on
  the gathered global batch (``global_batch``). Every replica then holds the
  same loss; ``all_gather``'s gradient sums what the replicas send back and
  hands each replica its own rows, so with the ``1 / N`` share the gradient
  is the global loss's.
- Batch normalisation normalises with the global batch's statistics:
  ``networks.layers.batch_norm`` builds synchronized layers under a strategy
  with several replicas.
- Gradients are summed over the replicas once, by the step
  (``sum_gradients``), so the gradient norm it reports is the global batch's.
  Keras' TensorFlow optimizers would sum them again when applied in a replica
  context; ``SummedGradientsAdam`` does not.

With one replica every helper here is the identity and adds no op, so the
default strategy runs the graph (and gives the numbers) of a plain
single-device step.
"""

from __future__ import annotations

import contextlib
import json
import os

import keras
import tensorflow as tf

# Checked at import: the one private hook this module relies on. Without it a
# Keras upgrade would silently sum every gradient N times.
if not hasattr(keras.optimizers.Adam, "_all_reduce_sum_gradients"):
    raise ImportError("This Keras version's optimizers no longer define _all_reduce_sum_gradients; "
                      "SummedGradientsAdam in leed_tf/training/distribute.py must be updated.")


def make_deterministic() -> None:
    """TensorFlow's op determinism, and one thread per op and between ops.

    Op determinism alone leaves CPU training a little different from run to
    run (multi-threaded kernels); with single threads two runs agree bit for
    bit. Thread counts can only be set before TensorFlow runs its first op.

    Raises:
      RuntimeError: TensorFlow already runs with other thread counts.
    """
    threading = tf.config.threading
    if not threading.get_intra_op_parallelism_threads() == threading.get_inter_op_parallelism_threads() == 1:
        try:
            threading.set_intra_op_parallelism_threads(1)
            threading.set_inter_op_parallelism_threads(1)
        except RuntimeError as error:
            raise RuntimeError("deterministic=True needs single-threaded TensorFlow, which can only be "
                               "set before TensorFlow runs anything: train in a new process (as "
                               "scripts/train.py --deterministic does).") from error
    tf.config.experimental.enable_op_determinism()


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (``Config.strategy``).

    Args:
      name: ``default`` (one device), ``mirrored`` (every local GPU; without
        GPUs every logical CPU device) or ``multi_worker`` (the cluster in
        the ``TF_CONFIG`` environment variable). ``multi_worker`` must be
        created before TensorFlow runs anything else in the process.

    Raises:
      ValueError: for an unknown name, or ``multi_worker`` without a valid
        ``TF_CONFIG``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG", ""))
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected default, mirrored or multi_worker.")


_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')


def check_tf_config(text: str) -> dict:
    """Parses ``TF_CONFIG`` and checks it names a cluster and this task.

    Raises:
      ValueError: naming TF_CONFIG and showing an example.
    """
    if not text.strip():
        raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable, set on "
                         f"every machine (its own task index on each), e.g. {_TF_CONFIG_EXAMPLE}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); expected e.g. {_TF_CONFIG_EXAMPLE}") from None
    config = config if isinstance(config, dict) else {}
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict) \
            or "type" not in task or "index" not in task:
        raise ValueError(f"TF_CONFIG must hold a 'cluster' and this process's 'task' (type and index), "
                         f"got {text!r}; e.g. {_TF_CONFIG_EXAMPLE}")
    members = cluster.get(task["type"])
    if not isinstance(members, list) or not 0 <= int(task["index"]) < len(members):
        raise ValueError(f"TF_CONFIG's task {task} is not in its cluster {cluster}.")
    return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, summaries and markers (the
    chief worker of a multi-worker cluster; always true on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def check_jit_compile(strategy: tf.distribute.Strategy, jit_compile: bool) -> None:
    """Refuses XLA on CPUs with several replicas, before any step runs.

    Raises:
      ValueError: XLA on a CPU compiles no collective op (measured with TF
        2.21: "Collectives are not yet implemented for CPU devices when
        compiling with XLA"), and every multi-replica step has some.
    """
    if jit_compile and strategy.num_replicas_in_sync > 1 and not tf.config.list_logical_devices("GPU"):
        raise ValueError(f"jit_compile with {strategy.num_replicas_in_sync} replicas needs GPUs: XLA "
                         "implements no collective op on CPUs. Drop --jit_compile, or use "
                         "--strategy=default.")


def check_built_in_scope(strategy: tf.distribute.Strategy, variables) -> None:
    """Checks that ``variables`` were created under ``strategy.scope()``.

    Raises:
      ValueError: for networks built under another strategy (or none).
    """
    for variable in variables[:1]:
        if not strategy.extended.variable_created_in_scope(getattr(variable, "value", variable)):
            raise ValueError(f"Variable {variable.path} was not created under the training strategy "
                             f"({type(strategy).__name__}): build the networks inside strategy.scope().")


def distribute_batches(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset,
                       global_batch_size: int):
    """``dataset``'s global batches cut into one contiguous slice per replica.

    Replica i gets rows ``[i * B / N, (i + 1) * B / N)`` of every batch, the
    rows ``replica_rows`` takes of a step's random draws. The slices come from
    the single-device pipeline's batches (same order, same augmentation), and
    no tf.data graph rewrite is applied (auto-sharding would serialise the
    dataset, image array included): with several workers each builds the same
    batches and keeps its replicas' rows.

    Args:
      strategy: The training strategy.
      dataset: Batches of ``global_batch_size`` (dicts of tensors).
      global_batch_size: Rows of every batch.

    Returns:
      ``dataset`` itself with one replica; else a distributed dataset whose
      elements hold per-replica values.

    Raises:
      ValueError: if the batch does not split evenly.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return dataset
    if global_batch_size % replicas:
        raise ValueError(f"The batch size {global_batch_size} is not a multiple of the "
                         f"{replicas} replicas; the batch is global, each replica takes an equal share.")
    rows = global_batch_size // replicas

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local * rows

        def split(batch):
            return tf.nest.map_structure(
                lambda t: tf.reshape(t[first:first + local * rows], [local, rows] + t.shape[1:].as_list()),
                batch)

        # One element per local replica, in replica order (the strategy deals
        # a pipeline's elements to its replicas in turn).
        return dataset.map(split).unbatch()

    return strategy.distribute_datasets_from_function(pipeline)


def _replicas() -> int:
    return tf.distribute.get_replica_context().num_replicas_in_sync


def replica_rows(values):
    """This replica's rows of tensors drawn for the whole global batch.

    Call in a replica context. Every tensor's first axis is the global batch;
    replica i takes the i-th of N equal slices, the rows ``distribute_batches``
    gave it.
    """
    replicas = _replicas()
    if replicas == 1:
        return values
    context = tf.distribute.get_replica_context()

    def rows(t):
        count = tf.shape(t)[0] // replicas
        start = tf.cast(context.replica_id_in_sync_group, tf.int32) * count
        return t[start:start + count]

    return tf.nest.map_structure(rows, values)


def global_batch(*tensors):
    """Every replica's rows of ``tensors``, in global batch order (a tuple).

    The gradient flows back to each replica's own rows: TF's ``all_gather``
    gradient all-reduces what each replica sends back and slices it.
    """
    if _replicas() == 1:
        return tensors
    return tuple(tf.distribute.get_replica_context().all_gather(list(tensors), axis=0))


def replica_share(loss):
    """The part of a global-batch loss one replica differentiates: ``loss / N``."""
    replicas = _replicas()
    return loss if replicas == 1 else loss / replicas


def cross_replica_mean(value):
    """The mean of ``value`` over the replicas (a statistic of the global batch)."""
    if _replicas() == 1:
        return value
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, value)


def sum_gradients(gradients: list) -> list:
    """Each replica's gradients summed over the replicas: the global batch's."""
    if _replicas() == 1 or not gradients:
        return gradients
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, list(gradients))


class SummedGradientsAdam(keras.optimizers.Adam):
    """Adam for gradients the training step has already summed over replicas.

    Keras 3's TensorFlow optimizers all-reduce (sum) the gradients they are
    given in a replica context (``_all_reduce_sum_gradients``). The steps here
    sum them first (``sum_gradients``), once: the gradient norm they report is
    then the global batch's, and ``LossScaleOptimizer``'s finiteness test,
    which reads the first replica's gradients only, sees the summed ones.
    Outside a strategy, or with one replica, this is ``keras.optimizers.Adam``.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


@contextlib.contextmanager
def precision_policy(precision: str):
    """Sets the Keras mixed-precision policy (``Config.precision``) for the
    networks built inside, and restores the previous one on exit.

    Layers keep the policy they were built with; losses cast to float32
    (``training.losses``), and variables are float32 under every policy.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
