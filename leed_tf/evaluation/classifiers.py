"""Expression and identity classifiers that judge edits (docs/design.md section 5).

Both are one small CNN (``build_classifier``) trained on *real* faces of a
labelled data set and then applied to edited faces:

* ``expression``: classes are the data set's expressions. Trained on the
  training subjects; its accuracy on the held-out subjects' real faces is the
  ceiling an edit's expression accuracy is compared with (StarGAN's protocol).
* ``identity``: classes are subjects. On synthetic data every identity of the
  run's population (training and held-out), trained on its renders and checked
  on renders it never saw (intensity 0.5, poses between the rendered ones);
  on real data every subject, with one image in five of each held back.

A classifier takes ``[B, S, S, 3]`` faces in [-1, 1] (or ``uint8``) at the
data set's image size and resizes them to ``input_size`` inside the model,
which keeps training to seconds on a CPU. It is saved as a folder:
``model.keras`` plus ``classifier.json`` (kind, class names, the data it was
trained on, its held-out accuracy).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from leed_tf.config import DataConfig
from leed_tf.data import sources
from leed_tf.data.records import FaceSet
from leed_tf.data.images import as_unit_images, scale_to_unit
from leed_tf.run_folder import write_json

KINDS = ("expression", "identity")
MODEL_FILE = "model.keras"
INFO_FILE = "classifier.json"
# Real data sets: one image in this many of each subject checks the identity classifier.
IDENTITY_HOLDOUT_EVERY = 5
# Synthetic identity check renders: an intensity and yaw offsets never rendered for training.
IDENTITY_CHECK_INTENSITY = 0.5
_SINGLE_POSE_OFFSET = 15.0
_MAX_YAW = 45.0


@dataclass
class ClassifierSettings:
    """How a classifier is built and trained.

    Attributes:
      input_size: Side the faces are resized to inside the model.
      channels: Output channels of the conv blocks (3x3 conv, batch norm,
        ReLU, 2x2 max-pool each).
      dropout: Dropout before the last dense layer.
      epochs: Training epochs.
      batch_size: Faces per step.
      learning_rate: Initial Adam learning rate (cosine decay to 0).
      seed: Seed of initialisation and data order.
    """

    input_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 96)
    dropout: float = 0.2
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0


def build_classifier(num_classes: int, image_size: int = 128,
                     settings: ClassifierSettings | None = None) -> keras.Sequential:
    """The CNN: resize, conv blocks, global average pooling, dense logits.

    Args:
      num_classes: Output logits.
      image_size: Side of the input faces.
      settings: Architecture (``input_size``, ``channels``, ``dropout``).
    """
    settings = settings or ClassifierSettings()
    blocks = []
    for channels in settings.channels:
        # Momentum 0.9: a few hundred steps must suffice for the moving
        # statistics, or inference sees other activations than training did.
        blocks += [keras.layers.Conv2D(channels, 3, padding="same", use_bias=False),
                   keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU(),
                   keras.layers.MaxPooling2D()]
    return keras.Sequential(
        [keras.Input((image_size, image_size, 3)),
         keras.layers.Resizing(settings.input_size, settings.input_size, antialias=True),
         *blocks, keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(settings.dropout),
         keras.layers.Dense(num_classes)], name="classifier")


@dataclass
class LabelledImages:
    """Faces with class indices.

    Attributes:
      images: ``uint8 [N, S, S, 3]``.
      labels: ``int [N]`` indices into the classifier's class names.
      description: What the faces are, for reports.
    """

    images: np.ndarray
    labels: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ClassifierData:
    """What a classifier of one kind is trained and checked on.

    Attributes:
      kind: ``expression`` or ``identity``.
      class_names: Names of the classes.
      train: Training faces.
      validation: Faces the classifier never sees in training.
      fingerprint: The data settings the classes depend on; a cached
        classifier is reused only for equal fingerprints.
    """

    kind: str
    class_names: tuple[str, ...]
    train: LabelledImages
    validation: LabelledImages
    fingerprint: dict = field(default_factory=dict)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")


def data_fingerprint(kind: str, data: DataConfig, image_size: int) -> dict:
    """The settings that decide a classifier's classes and training faces
    (augmentation and the neutral source do not)."""
    check_kind(kind)
    keys = ["dataset", "data_dir", "test_fraction", "split_seed"]
    if data.dataset == "synthetic":
        keys = ["dataset", "test_fraction", "synthetic_subjects", "synthetic_intensities",
                "synthetic_poses", "synthetic_seed"]
    values = dataclasses.asdict(data)
    return {"kind": kind, "image_size": image_size,
            **{k: list(values[k]) if isinstance(values[k], tuple) else values[k] for k in keys}}


def classifier_data(kind: str, data: DataConfig, image_size: int = 128,
                    cache_dir: str | None = None) -> ClassifierData:
    """Loads (or renders) the faces a classifier of ``kind`` learns from.

    Args:
      kind: ``expression`` or ``identity``.
      data: The data set's settings (a run's ``config.data``).
      image_size: Side of the faces.
      cache_dir: Decoded-data cache of real data sets.

    Raises:
      ValueError: unknown kind, or an expression data set without labels.
    """
    check_kind(kind)
    fingerprint = data_fingerprint(kind, data, image_size)
    if kind == "expression":
        train_set, test_set = sources.load_splits(data, image_size, cache_dir=cache_dir)
        train, test = _labelled(train_set), _labelled(test_set)
        if not len(train) or not len(test):
            raise ValueError(f"The {data.dataset} data set has no expression labels in its "
                             f"{'training' if not len(train) else 'test'} split; an expression "
                             f"classifier needs labelled faces.")
        return ClassifierData(
            kind, tuple(train_set.expression_names),
            LabelledImages(train.images, train.expressions,
                           f"{len(train)} faces of {len(train_set.subject_names)} training subjects"),
            LabelledImages(test.images, test.expressions,
                           f"{len(test)} real faces of {len(test_set.subject_names)} held-out subjects"),
            fingerprint)
    if data.dataset == "synthetic":
        return _synthetic_identity_data(data, image_size, fingerprint)
    return _real_identity_data(data, image_size, cache_dir, fingerprint)


def _labelled(face_set: FaceSet) -> FaceSet:
    return face_set.subset(np.flatnonzero(face_set.expressions >= 0))


def _synthetic_identity_data(data: DataConfig, image_size: int, fingerprint: dict) -> ClassifierData:
    from leed_tf.data import synthetic

    # Every identity of the run's population, training and held-out alike:
    # edits are of held-out identities, and more classes make retention harder.
    train_set, held_out = sources.load_splits(data, image_size)
    offset = len(train_set.subject_names)
    names = tuple(train_set.subject_names) + tuple(held_out.subject_names)
    images = np.concatenate([train_set.images, held_out.images])
    labels = np.concatenate([train_set.subjects, held_out.subjects + offset])
    poses = check_poses(data.synthetic_poses)
    check = synthetic.render_face_set(len(names), data.synthetic_seed, poses=poses,
                                      intensities=(IDENTITY_CHECK_INTENSITY,), size=image_size)
    return ClassifierData(
        "identity", names,
        LabelledImages(images, labels, f"{len(images)} renders of {len(names)} identities"),
        LabelledImages(check.images, check.subjects,
                       f"{len(check)} other renders of the same identities (intensity "
                       f"{IDENTITY_CHECK_INTENSITY}, yaw {', '.join(f'{p:g}' for p in poses)})"),
        fingerprint)


def check_poses(poses) -> tuple[float, ...]:
    """Yaws between the rendered ones (or beside a single one): views of the
    same identities the identity classifier never trains on."""
    poses = sorted(float(p) for p in poses)
    if len(poses) == 1:
        p = poses[0]
        between = [p - _SINGLE_POSE_OFFSET, p + _SINGLE_POSE_OFFSET]
    else:
        between = [(a + b) / 2.0 for a, b in zip(poses, poses[1:])]
    return tuple(float(np.clip(p, -_MAX_YAW, _MAX_YAW)) for p in between)


def _real_identity_data(data: DataConfig, image_size: int, cache_dir, fingerprint) -> ClassifierData:
    from leed_tf.data import loaders

    faces = loaders.load_face_set(data.dataset, data.data_dir, size=image_size, split="all",
                                  cache_dir=cache_dir)
    held = np.zeros(len(faces), bool)
    for subject in np.unique(faces.subjects):
        members = np.flatnonzero(faces.subjects == subject)
        held[members[IDENTITY_HOLDOUT_EVERY - 1::IDENTITY_HOLDOUT_EVERY]] = True
    if not held.any():
        raise ValueError(f"No subject of {data.data_dir} has {IDENTITY_HOLDOUT_EVERY} images; an "
                         f"identity classifier needs several images per subject.")
    names = tuple(faces.subject_names)
    return ClassifierData(
        "identity", names,
        LabelledImages(faces.images[~held], faces.subjects[~held],
                       f"{int((~held).sum())} faces of {len(names)} subjects"),
        LabelledImages(faces.images[held], faces.subjects[held],
                       f"{int(held.sum())} other faces of the same subjects (one in "
                       f"{IDENTITY_HOLDOUT_EVERY})"),
        fingerprint)


class ImageClassifier:
    """A trained classifier with its class names and training report.

    Args:
      model: The Keras model (``[B, S, S, 3]`` in [-1, 1] -> logits).
      kind: ``expression`` or ``identity``.
      class_names: Class names, in logit order.
      info: The training report (``classifier.json``).
    """

    def __init__(self, model: keras.Model, kind: str, class_names, info: dict | None = None):
        check_kind(kind)
        self.model = model
        self.kind = kind
        self.class_names = tuple(class_names)
        self.info = dict(info or {})
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    @property
    def image_size(self) -> int:
        return int(self.model.input_shape[1])

    def class_indices(self, names, what: str = "classes") -> np.ndarray:
        """The class index of each name (e.g. the expression an edit should show).

        Raises:
          ValueError: naming the names this classifier does not know.
        """
        lookup = {name: i for i, name in enumerate(self.class_names)}
        missing = sorted({str(n) for n in names if n not in lookup})
        if missing:
            known = ", ".join(self.class_names[:10]) + (" ..." if len(self.class_names) > 10 else "")
            raise ValueError(f"The {self.kind} classifier does not know the {what} "
                             f"{', '.join(missing[:10])}; it knows {known}. Train one on this run's data "
                             f"(scripts/train_classifier.py --run_dir=... --kind={self.kind}).")
        return np.asarray([lookup[n] for n in names], np.int64)

    def logits(self, images, batch_size: int = 256) -> np.ndarray:
        """Logits ``float32 [N, classes]`` of faces in [-1, 1] or ``uint8``.

        Raises:
          ValueError: faces of another size than the classifier's input.
        """
        images = np.asarray(images)
        if images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"This {self.kind} classifier takes [N, {self.image_size}, "
                             f"{self.image_size}, 3] faces, got {images.shape}.")
        out = [self._forward(tf.constant(as_unit_images(images[i:i + batch_size]))).numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict(self, images, batch_size: int = 256) -> np.ndarray:
        """Class index of each face."""
        return self.logits(images, batch_size).argmax(axis=-1)

    def accuracy(self, images, labels) -> float:
        """Fraction of faces classified as ``labels``."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def save(self, directory: str) -> str:
        """Writes ``model.keras`` and ``classifier.json`` into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        self.model.save(os.path.join(directory, MODEL_FILE))
        info = dict(self.info, kind=self.kind, class_names=list(self.class_names))
        write_json(os.path.join(directory, INFO_FILE), info)
        return directory

    @classmethod
    def load(cls, directory: str) -> "ImageClassifier":
        """Reads a folder written by ``save``.

        Raises:
          FileNotFoundError: naming the missing file.
        """
        for name in (MODEL_FILE, INFO_FILE):
            if not os.path.exists(os.path.join(directory, name)):
                raise FileNotFoundError(f"{directory} holds no classifier ({name} is missing); train "
                                        f"one with scripts/train_classifier.py --out={directory}.")
        with open(os.path.join(directory, INFO_FILE)) as f:
            info = json.load(f)
        model = keras.saving.load_model(os.path.join(directory, MODEL_FILE), compile=False)
        return cls(model, info["kind"], info["class_names"], info)


def train_classifier(data: ClassifierData, settings: ClassifierSettings | None = None,
                     verbose: int = 0) -> ImageClassifier:
    """Trains a classifier on ``data.train`` and reports its accuracy on
    ``data.validation`` (in ``info["validation_accuracy"]``).

    Args:
      data: Faces and classes (``classifier_data``).
      settings: Architecture and training settings.
      verbose: Keras ``fit`` verbosity.
    """
    settings = settings or ClassifierSettings()
    start = time.time()
    keras.utils.set_random_seed(settings.seed)
    image_size = data.train.images.shape[1]
    model = build_classifier(len(data.class_names), image_size, settings)
    steps = settings.epochs * int(np.ceil(len(data.train) / settings.batch_size))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(settings.learning_rate,
                                                                               max(1, steps))),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = (tf.data.Dataset.from_tensor_slices((data.train.images, data.train.labels.astype(np.int32)))
               .shuffle(len(data.train), seed=settings.seed, reshuffle_each_iteration=True)
               .batch(settings.batch_size)
               .map(lambda x, y: (scale_to_unit(x), y))
               .prefetch(tf.data.AUTOTUNE))
    model.fit(dataset, epochs=settings.epochs, verbose=verbose, shuffle=False)  # Shuffled above.
    classifier = ImageClassifier(model, data.kind, data.class_names)
    classifier.info = {
        "kind": data.kind, "class_names": list(data.class_names),
        "trained_on": data.train.description, "checked_on": data.validation.description,
        "validation_accuracy": classifier.accuracy(data.validation.images, data.validation.labels),
        "data": data.fingerprint, "settings": dataclasses.asdict(settings),
        "seconds": round(time.time() - start, 1)}
    return classifier


def train_and_save(kind: str, data: DataConfig, directory: str, image_size: int = 128,
                   settings: ClassifierSettings | None = None, cache_dir: str | None = None,
                   verbose: int = 0) -> ImageClassifier:
    """Trains a classifier of ``kind`` on ``data``'s faces and saves it in ``directory``."""
    classifier = train_classifier(classifier_data(kind, data, image_size, cache_dir), settings, verbose)
    classifier.save(directory)
    return classifier


def load_or_train(kind: str, directory: str, data: DataConfig, image_size: int = 128,
                  settings: ClassifierSettings | None = None, cache_dir: str | None = None,
                  log=print) -> tuple[ImageClassifier, bool]:
    """The classifier cached in ``directory``, or a new one trained and saved there.

    Args:
      kind: ``expression`` or ``identity``.
      directory: The classifier's folder.
      data: Settings of the data set it must have been trained on.
      image_size: Side of the faces.
      settings: Settings for training a new one.
      cache_dir: Decoded-data cache of real data sets.
      log: Where to say that a classifier is being trained.

    Returns:
      The classifier and whether it was trained now.

    Raises:
      ValueError: ``directory`` holds a classifier of another kind or trained
        on other data (naming the differences).
    """
    expected = data_fingerprint(kind, data, image_size)
    if os.path.exists(os.path.join(directory, INFO_FILE)):
        classifier = ImageClassifier.load(directory)
        found = classifier.info.get("data", {})
        differences = [f"{key}: {found.get(key)!r} (expected {value!r})"
                       for key, value in expected.items() if found.get(key) != value]
        if differences:
            raise ValueError(f"The {classifier.kind} classifier in {directory} was trained on other data "
                             f"than this run's ({'; '.join(differences)}). Give another "
                             f"--classifier_dir (it is trained there) or delete that folder.")
        return classifier, False
    log(f"No {kind} classifier in {directory}: training one on real faces "
        f"(saved there for later evaluations) ...")
    classifier = train_and_save(kind, data, directory, image_size, settings, cache_dir)
    log(f"  {kind} classifier: {classifier.info['validation_accuracy']:.1%} on "
        f"{classifier.info['checked_on']} ({classifier.info['seconds']:.0f} s).")
    return classifier, True
