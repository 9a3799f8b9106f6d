"""Face alignment and paste-back with dlib (docs/usage.md, "Photos of any
framing").

A photo of any size and framing becomes a face framed as the training faces
were, and the edited face goes back into the photo:

    aligner = FaceAligner(template_for_run("runs/synthetic"))
    face = aligner.align(photo, "me.jpg")[0]          # the largest face
    edited = ...                                      # edit face.crop (S x S)
    result = paste_back(photo, edited, face)          # the whole photo

Detection is dlib's HOG face detector (in dlib itself); landmarks are dlib's
5- or 68-point shape predictors, shipped by the ``face-recognition-models``
package (``pip install -e '.[eval]'``). Nothing is downloaded at run time.

The framing the model was trained on is a ``FaceTemplate``: the mean
landmark positions that the same detector and predictors find on the
training faces, in the coordinates of their S x S crops (after each data
set's own crop: RaFD's face box, the centred square of CFEE, folders and
CSV lists, the synthetic renders as they are). ``template_for_run``
measures it once from the run's training faces and keeps it in the run
folder (``face_template.json``); an export carries it in its assets.

A face is aligned by the similarity transform (rotation, uniform scale,
shift) that best maps its landmarks onto the template's (least squares).
Only landmarks that an expression hardly moves are fitted (eye corners and
nose: the 5-point model's all, the 68-point model's eyes and nose, not
brows, mouth or jaw), so a smile does not change the framing.

Coordinates are continuous pixels: pixel ``(i, j)`` covers ``[j, j + 1) x
[i, i + 1)``, its centre at ``(j + 0.5, i + 0.5)``, as PIL's transforms use
them; dlib's integer landmark positions are pixel centres.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import numpy as np
from PIL import Image

from leed_tf.data.images import BadImageError
from leed_tf.run_folder import RunFolder, write_json

TEMPLATE_FILE = "face_template.json"
LANDMARKS = (5, 68)
FACES = ("largest", "all")
# The 68-point model's landmarks fitted: nose bridge and base (27-35), eyes (36-47).
_STABLE_68 = tuple(range(27, 48))
# dlib's HOG detector looks for faces of 80 px and more; photos are searched
# at most this large (a larger one is shrunk for the search, not for the
# landmarks), and searched again at twice the size when no face is found.
_DETECT_MAX_SIDE = 1024
# Lowest detection score taken for a face in a photo: dlib's HOG detector
# scores frontal faces above ~0.5, and its false alarms on clothes and
# badges near 0 (0.12 and 0.17 on skimage's astronaut photo). Training crops
# hold one face each: there any score will do.
MIN_SCORE = 0.3
# A template needs faces found in at least this many training images.
_MIN_TEMPLATE_FACES = 5
_TEMPLATE_IMAGES = 200
# Paste-back mask, in crop pixels: zero on the crop's outer margin (where
# resampling reaches past the crop), rising to one over the feather width.
_MASK_MARGIN = 2.0
_DLIB_HINT = ("Face alignment needs dlib and its landmark models: pip install dlib-bin "
              "face-recognition-models (or pip install -e '.[eval]').")


@dataclasses.dataclass
class FaceTemplate:
    """Where the training faces' landmarks are in their S x S crops.

    Attributes:
      image_size: S.
      points5: ``float [5, 2]``, x and y, the 5-point model's mean landmarks.
      points68: ``float [68, 2]``, the 68-point model's.
      faces: Training images whose face was found (the mean is over these).
      images: Training images searched.
      source: What they were, for people.
    """

    image_size: int
    points5: np.ndarray
    points68: np.ndarray
    faces: int
    images: int
    source: str

    def points(self, landmarks: int) -> np.ndarray:
        """The fitted landmarks of the ``landmarks``-point model."""
        return self.points5 if landmarks == 5 else self.points68[list(_STABLE_68)]

    def to_json(self) -> dict:
        return {"image_size": self.image_size, "points5": np.round(self.points5, 3).tolist(),
                "points68": np.round(self.points68, 3).tolist(), "faces": self.faces,
                "images": self.images, "source": self.source}

    @classmethod
    def from_json(cls, value: dict) -> "FaceTemplate":
        return cls(int(value["image_size"]), np.asarray(value["points5"], np.float64),
                   np.asarray(value["points68"], np.float64), int(value["faces"]), int(value["images"]),
                   str(value["source"]))

    def save(self, path: str) -> str:
        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str) -> "FaceTemplate":
        with open(path) as f:
            return cls.from_json(json.load(f))


@dataclasses.dataclass
class Face:
    """One face found in a photo.

    Attributes:
      box: The detector's ``(left, top, right, bottom)``, photo pixels.
      score: The detector's score.
      landmarks: ``float [P, 2]`` (x, y) in the photo, all P of the model.
      matrix: ``float [2, 3]``, the similarity from photo to crop
        coordinates: ``crop_xy = matrix[:, :2] @ photo_xy + matrix[:, 2]``.
      crop: ``uint8 [S, S, 3]``, the aligned face.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray
    matrix: np.ndarray
    crop: np.ndarray

    @property
    def angle(self) -> float:
        """The face's roll in the photo, degrees (counter-clockwise on screen
        is negative: image y points down)."""
        return math.degrees(math.atan2(-self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def scale(self) -> float:
        """Photo pixels per crop pixel."""
        return 1.0 / math.hypot(self.matrix[0, 0], self.matrix[1, 0])

    def matrix_shifted(self, left: int, top: int) -> np.ndarray:
        """The photo-to-crop matrix in the coordinates of a photo region
        whose corner is ``(left, top)``."""
        matrix = self.matrix.copy()
        matrix[:, 2] += matrix[:, :2] @ np.array([left, top], np.float64)
        return matrix


# ---------------------------------------------------------------- dlib


@functools.lru_cache(maxsize=None)
def _models(landmarks: int):
    """dlib's detector and the ``landmarks``-point predictor, loaded once."""
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        raise ImportError(_DLIB_HINT) from None
    path = (face_recognition_models.pose_predictor_five_point_model_location() if landmarks == 5
            else face_recognition_models.pose_predictor_model_location())
    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(path)


def _detect(photo: np.ndarray, landmarks: int, min_score: float = MIN_SCORE) -> list[tuple[tuple, float, np.ndarray]]:
    """``(box, score, landmarks)`` of every face dlib finds, largest first."""
    dlib, detector, predictor = _models(landmarks)
    height, width = photo.shape[:2]
    shrink = max(1.0, max(height, width) / _DETECT_MAX_SIDE)
    search = photo if shrink == 1.0 else np.asarray(
        Image.fromarray(photo).resize((round(width / shrink), round(height / shrink)), Image.LANCZOS))
    search = np.ascontiguousarray(search)
    boxes, scores, _ = detector.run(search, 0, min_score)
    if not boxes:  # Faces of 40-80 px: search at twice the size.
        boxes, scores, _ = detector.run(search, 1, min_score)
    found = []
    image = np.ascontiguousarray(photo)
    for box, score in zip(boxes, scores):
        left, top, right, bottom = (round(v * shrink) for v in (box.left(), box.top(), box.right(),
                                                                 box.bottom()))
        shape = predictor(image, dlib.rectangle(left, top, right, bottom))
        points = np.array([(p.x + 0.5, p.y + 0.5) for p in shape.parts()], np.float64)
        found.append(((left, top, right, bottom), float(score), points))
    found.sort(key=lambda f: (-(f[0][2] - f[0][0]) * (f[0][3] - f[0][1]), -f[1]))
    return found


# ---------------------------------------------------------------- geometry


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift) that
    maps points ``source [N, 2]`` onto ``target [N, 2]``, as ``[2, 3]``.

    With points as complex numbers the fit is ``t = a s + b``, solved in
    closed form (Umeyama's for 2-D without reflection).
    """
    s = source[:, 0] + 1j * source[:, 1]
    t = target[:, 0] + 1j * target[:, 1]
    s0, t0 = s - s.mean(), t - t.mean()
    a = np.vdot(s0, t0) / np.vdot(s0, s0)
    b = t.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a ``[2, 3]`` affine map."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear, -linear @ matrix[:, 2:]], axis=1)


def apply(matrix: np.ndarray, points) -> np.ndarray:
    """``matrix`` applied to points ``[N, 2]``."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], resample=Image.BICUBIC) -> np.ndarray:
    """``image`` resampled into an image of ``size = (width, height)`` whose
    pixel at ``p`` is ``image`` at ``invert(matrix) @ p``; ``matrix`` maps
    ``image``'s coordinates to the output's. Outside ``image`` is black
    (zero). A shrink of more than 2x first box-filters ``image`` by an
    integer factor (``Image.reduce``), so that fine detail does not alias.
    """
    scale = math.hypot(matrix[0, 0], matrix[1, 0])  # output pixels per input pixel
    pil = Image.fromarray(image)
    factor = int(1.0 / (2.0 * scale)) if scale < 0.5 else 1
    if factor > 1:
        pil = pil.reduce(factor)  # Reduced pixel j covers input [factor j, factor (j + 1)).
        matrix = np.concatenate([matrix[:, :2] * factor, matrix[:, 2:]], axis=1)
    inverse = invert(matrix)
    return np.asarray(pil.transform(size, Image.AFFINE, tuple(inverse.reshape(-1)), resample=resample))


def crop_corners(matrix: np.ndarray, size: int) -> np.ndarray:
    """Where the corners of the S x S crop cut by ``matrix`` (photo -> crop)
    lie in the photo, ``[4, 2]``."""
    return apply(invert(matrix), [(0, 0), (size, 0), (0, size), (size, size)])


def _crop(photo: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The S x S crop ``warp`` cuts, with the photo's edge pixels repeated
    where the crop reaches past the photo (black there would be a dark band
    for the model to edit, and paste-back would bring its trace in)."""
    height, width = photo.shape[:2]
    corners = crop_corners(matrix, size)
    low = np.maximum(0, np.ceil(-corners.min(axis=0)) + 2).astype(int)
    high = np.maximum(0, np.ceil(corners.max(axis=0) - (width, height)) + 2).astype(int)
    if not (low.any() or high.any()):
        return warp(photo, matrix, (size, size))
    padded = np.pad(photo, ((low[1], high[1]), (low[0], high[0]), (0, 0)), mode="edge")
    shifted = matrix.copy()
    shifted[:, 2] -= matrix[:, :2] @ low.astype(np.float64)  # padded xy = photo xy + low
    return warp(padded, shifted, (size, size))


def feather_mask(size: int, feather: float) -> np.ndarray:
    """``float32 [size, size]`` in [0, 1]: zero on the outer ``_MASK_MARGIN``
    pixels, one inside, a smooth ramp of ``feather`` pixels between."""
    centres = np.arange(size) + 0.5
    edge = np.minimum(centres, size - centres)  # Distance of each pixel centre to the nearest edge.
    distance = np.minimum(edge[:, None], edge[None, :])
    ramp = np.clip((distance - _MASK_MARGIN) / max(feather, 1e-6), 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep


def paste_back(photo: np.ndarray, edited: np.ndarray, face: Face, feather: float | None = None,
               change_only: bool = True) -> np.ndarray:
    """The photo with ``edited`` (the edit of ``face.crop``) blended in.

    The edited S x S face goes back through the inverse of the alignment and
    is blended with a feathered square mask (``feather_mask``; ``feather``
    crop pixels, default S / 8). Every photo pixel where the mask is zero
    keeps its value bit for bit.

    Args:
      photo: ``uint8 [H, W, 3]``, the photo the face was found in.
      edited: ``uint8 [S, S, 3]``.
      face: The face, as ``FaceAligner.align`` gave it.
      feather: Width of the mask's ramp, crop pixels.
      change_only: Add only the edit's change, ``edited - face.crop``, to the
        photo, which keeps the photo's own resolution wherever the edit
        changes nothing (a face larger than S pixels is not blurred to S).
        False pastes the S x S face itself.

    Returns:
      ``uint8 [H, W, 3]``.
    """
    size = edited.shape[0]
    feather = size / 8.0 if feather is None else feather
    height, width = photo.shape[:2]
    # Only the photo's part under the crop is resampled.
    corners = crop_corners(face.matrix, size)
    left, top = (max(0, math.floor(v) - 1) for v in corners.min(axis=0))
    right, bottom = min(width, math.ceil(corners[:, 0].max()) + 1), min(height, math.ceil(corners[:, 1].max()) + 1)
    result = photo.copy()
    if right <= left or bottom <= top:
        return result
    region_size = (right - left, bottom - top)
    # Region -> crop (PIL's transform takes the output-to-input map).
    to_crop = tuple(face.matrix_shifted(left, top).reshape(-1))

    def to_region(crop_image: np.ndarray, resample=Image.BICUBIC) -> np.ndarray:
        """A float ``[S, S, C]`` crop-frame image resampled into the region
        (bicubic for pixels, as ``warp``; bilinear for the mask, in [0, 1])."""
        return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(channel), mode="F").transform(
            region_size, Image.AFFINE, to_crop, resample=resample), np.float32)
            for channel in np.moveaxis(crop_image.astype(np.float32), -1, 0)], axis=-1)

    region = photo[top:bottom, left:right].astype(np.float32)
    mask = np.clip(to_region(feather_mask(size, feather)[..., None], Image.BILINEAR), 0.0, 1.0)
    if change_only:
        pixels = region + to_region(np.asarray(edited, np.float32) - face.crop.astype(np.float32))
    else:
        to_region_matrix = invert(face.matrix)
        to_region_matrix[:, 2] -= (left, top)
        pixels = warp(np.asarray(edited, np.uint8), to_region_matrix, region_size).astype(np.float32)
    blended = np.clip(np.rint(region + mask * (pixels - region)), 0, 255).astype(np.uint8)
    result[top:bottom, left:right] = np.where(mask > 0.0, blended, photo[top:bottom, left:right])
    return result


# ---------------------------------------------------------------- aligner


class FaceAligner:
    """Finds faces in photos and frames them like the training faces.

    Args:
      template: The training faces' framing.
      landmarks: 5 or 68: dlib's shape predictor used.
    """

    def __init__(self, template: FaceTemplate, landmarks: int = 5):
        if landmarks not in LANDMARKS:
            raise ValueError(f"landmarks must be one of {LANDMARKS}, got {landmarks!r}.")
        self.template = template
        self.landmarks = landmarks
        self.image_size = template.image_size
        _models(landmarks)  # A missing dlib fails here, with the install command.

    def detect(self, photo: np.ndarray) -> list[Face]:
        """Every face found in ``uint8 [H, W, 3]``, largest first (none: [])."""
        target = self.template.points(self.landmarks)
        faces = []
        for box, score, points in _detect(photo, self.landmarks):
            fitted = points if self.landmarks == 5 else points[list(_STABLE_68)]
            matrix = similarity(fitted, target)
            crop = _crop(photo, matrix, self.image_size)
            faces.append(Face(box, score, points, matrix, crop))
        return faces

    def align(self, photo: np.ndarray, name: str = "<image>", faces: str = "largest") -> list[Face]:
        """The largest face (``faces="largest"``) or every face (``"all"``).

        Raises:
          BadImageError: no face found (naming ``name``).
        """
        if faces not in FACES:
            raise ValueError(f"faces must be one of {FACES}, got {faces!r}.")
        found = self.detect(photo)
        if not found:
            height, width = photo.shape[:2]
            raise BadImageError(name, f"no face found by dlib in the {width}x{height} image (faces "
                                      f"under ~40 px, turned far from the camera or tilted more "
                                      f"than ~25 degrees are missed); crop the face yourself or edit "
                                      f"without --align")
        return found if faces == "all" else found[:1]


# ---------------------------------------------------------------- templates


def measure_template(images: np.ndarray, source: str, max_images: int = _TEMPLATE_IMAGES) -> FaceTemplate:
    """The mean landmarks dlib finds on training face crops.

    Args:
      images: ``uint8 [N, S, S, 3]``, the training faces as the model sees
        them (after their data set's crop).
      source: What they are, for people.
      max_images: At most this many, evenly spread over ``images``.

    Raises:
      ValueError: faces found in fewer than 5 of them.
    """
    size = images.shape[1]
    chosen = np.unique(np.linspace(0, len(images) - 1, min(max_images, len(images))).round().astype(int))
    # Crops are searched at twice their size: a 128-px crop's face is near
    # the detector's 80-px minimum.
    upscale = 2
    found5, found68 = [], []
    for index in chosen:
        big = np.asarray(Image.fromarray(images[index]).resize((size * upscale,) * 2, Image.LANCZOS))
        faces5, faces68 = _detect(big, 5, 0.0), _detect(big, 68, 0.0)
        if faces5 and faces68:
            found5.append(faces5[0][2] / upscale)
            found68.append(faces68[0][2] / upscale)
    if len(found5) < _MIN_TEMPLATE_FACES:
        raise ValueError(f"dlib found a face in only {len(found5)} of {len(chosen)} training images of "
                         f"{source}; alignment needs a template measured on at least "
                         f"{_MIN_TEMPLATE_FACES}.")
    return FaceTemplate(size, np.mean(found5, axis=0), np.mean(found68, axis=0), len(found5), len(chosen),
                        source)


def template_for_run(run_dir: str) -> FaceTemplate:
    """The run's ``face_template.json``, measured and kept there first if absent.

    The training faces are loaded as training loaded them (synthetic renders
    are rendered again; real data sets are read from the config's
    ``data_dir``, through the run's cache).

    Raises:
      FileNotFoundError: no config, or the data set is not there any more.
      ImportError: dlib is not installed.
    """
    from leed_tf.config import Config
    from leed_tf.data import sources

    folder = RunFolder(run_dir)
    path = folder.file(TEMPLATE_FILE)
    if os.path.exists(path):
        return FaceTemplate.load(path)
    config = Config.load(folder.require_config())
    _models(5)
    train, _ = sources.load_splits(config.data, config.model.image_size, cache_dir=folder.cache_dir)
    where = config.data.data_dir or f"seed {config.data.synthetic_seed}"
    template = measure_template(train.images, f"the {config.data.dataset} training faces ({where})")
    template.save(path)
    return template
