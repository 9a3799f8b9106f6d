"""Identity similarity with dlib's 128-d face embedding (optional).

dlib's ResNet face descriptor (http://dlib.net/face_recognition.py.html)
maps a face to a 128-d vector; two photos of one person are usually closer
than ``SAME_PERSON_DISTANCE`` (0.6, dlib's own threshold). Identity
similarity of an edit is the distance between the embeddings of the edit and
of its input.

It needs the optional ``eval`` extra: ``pip install -e '.[eval]'`` (or
``pip install dlib-bin face-recognition-models``). The model files come from
the ``face_recognition_models`` package, read with ``importlib.resources``
from a module object that is *not executed*: that package's ``__init__``
imports ``pkg_resources``, which current setuptools no longer ships.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from contextlib import ExitStack

import numpy as np

from leed_tf.data.images import to_uint8

SAME_PERSON_DISTANCE = 0.6
INSTALL_HINT = ("dlib identity similarity needs the optional 'eval' extra: "
                "pip install -e '.[eval]'  (or: pip install dlib-bin face-recognition-models)")
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"
# Face crops fill the image; when dlib's detector finds no face (small or
# stylised faces) the landmarks are searched in this central box instead.
FALLBACK_MARGIN = 0.1


def available() -> str | None:
    """None when dlib and its models are installed, else why not (with the
    install command)."""
    missing = [name for name in ("dlib", "face_recognition_models")
               if importlib.util.find_spec(name) is None]
    return f"{' and '.join(missing)} not installed. {INSTALL_HINT}" if missing else None


def model_file(name: str, stack: ExitStack):
    """A filesystem path of one of ``face_recognition_models``' files.

    Raises:
      ImportError: the package is not installed (with the install command).
      FileNotFoundError: the package lacks the file.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise ImportError(f"face_recognition_models is not installed. {INSTALL_HINT}")
    # A module object built from the spec but never executed: resources are
    # reachable through its loader without running the package's __init__.
    package = importlib.util.module_from_spec(spec)
    resource = importlib.resources.files(package) / "models" / name
    if not resource.is_file():
        raise FileNotFoundError(f"face_recognition_models has no models/{name}; reinstall it: {INSTALL_HINT}")
    return str(stack.enter_context(importlib.resources.as_file(resource)))


class FaceEmbedder:
    """dlib's 128-d face descriptors of face crops.

    Raises:
      ImportError: dlib or its models are not installed (with the install command).
    """

    def __init__(self):
        reason = available()
        if reason:
            raise ImportError(reason)
        import dlib

        self._files = ExitStack()
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(model_file(LANDMARK_MODEL, self._files))
        self._recognizer = dlib.face_recognition_model_v1(model_file(RECOGNITION_MODEL, self._files))
        self._dlib = dlib

    def embed(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors of faces in [-1, 1] (or ``uint8``), ``[N, H, W, 3]``.

        Returns:
          ``float64 [N, 128]`` descriptors and ``bool [N]``: whether dlib's
          detector found the face (else the central box was used).
        """
        images = np.asarray(images)
        pixels = images if images.dtype == np.uint8 else to_uint8(images)
        descriptors, detected = [], []
        for image in pixels:
            image = np.ascontiguousarray(image)
            faces = self._detector(image, 1)
            if len(faces):
                box = max(faces, key=lambda r: r.area())
            else:
                h, w = image.shape[:2]
                box = self._dlib.rectangle(int(w * FALLBACK_MARGIN), int(h * FALLBACK_MARGIN),
                                           int(w * (1 - FALLBACK_MARGIN)), int(h * (1 - FALLBACK_MARGIN)))
            shape = self._landmarks(image, box)
            descriptors.append(np.asarray(self._recognizer.compute_face_descriptor(image, shape)))
            detected.append(bool(len(faces)))
        return (np.asarray(descriptors, np.float64).reshape(-1, 128), np.asarray(detected, bool))


def identity_distances(descriptors, other_descriptors) -> dict[str, np.ndarray]:
    """Per pair of ``[N, 128]`` descriptors (``FaceEmbedder.embed``): the
    embedding distance, and whether it is below ``SAME_PERSON_DISTANCE``
    (1.0) or not (0.0)."""
    distance = np.linalg.norm(np.asarray(descriptors) - np.asarray(other_descriptors), axis=1)
    return {"identity_distance": distance, "same_person": (distance < SAME_PERSON_DISTANCE).astype(float)}
