"""Procedural synthetic faces: the built-in data set that needs no download.

Every face is drawn from three separate groups of parameters:

* identity (:class:`Identity`): face shape, skin, hair, eyes, nose, mouth,
  ears, clothes and background colour;
* expression: one of the eight RaFD categories, expressed as a vector of
  facial action intensities (brow raise, lip-corner pull, jaw drop, ...)
  scaled by ``intensity``, so that intensity 0 is exactly the neutral face;
* pose: head yaw in degrees (positive turns the face towards the image's
  right), a 2.5-D approximation in which each row of the head is a deep skull
  ellipse joined to a flatter face ellipse, seen from a rotated camera.

Expressions change only the facial features; the head's outline, hair,
ears, clothes and background never depend on the expression, so an
expression edit can only change pixels inside the face.

Because the three are independent, every edit has a ground truth:
``render(identity_a, expression_b)`` is what editing ``a`` towards ``b``
should give (docs/design.md §4 and §5).

Drawing is vectorised numpy. Shapes are implicit functions ``f(x, y)``
(negative inside) whose coverage is ``clip(0.5 - f / |grad f|, 0, 1)``, which
gives a one-pixel anti-aliased edge whatever the units of ``f``; each feature
is evaluated only inside its own small window of the canvas. Geometry is in
"128-units" (pixels of a 128x128 render) and scales with ``size``.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from leed_tf.data.records import RAFD_EXPRESSIONS, FaceSet

EXPRESSIONS = RAFD_EXPRESSIONS
NEUTRAL_INDEX = EXPRESSIONS.index("neutral")

# Facial actions, loosely FACS action units (AU numbers in brackets).
ACTIONS = (
    "brow_raise",               # AU1+2: whole brow up
    "inner_brow_raise",         # AU1: inner ends up (sadness, fear)
    "brow_lower",               # AU4: brows down
    "brow_knit",                # AU4: inner ends drawn together
    "upper_lid_raise",          # AU5: eyes wide open
    "lid_tighten",              # AU7: eyes narrowed
    "lid_droop",                # AU43 (partial): heavy upper lids
    "cheek_raise",              # AU6: cheeks up, lower lids pushed up
    "nose_wrinkle",             # AU9
    "upper_lip_raise",          # AU10
    "lip_corner_pull",          # AU12: both corners up
    "lip_corner_depress",       # AU15: both corners down
    "unilateral_corner_raise",  # AU12/14 on one side only (contempt)
    "lip_stretch",              # AU20
    "lip_pucker",               # AU18/22: narrow, rounded mouth
    "lip_press",                # AU23/24: thin, pressed lips
    "chin_raise",               # AU17: lower lip pushed up
    "jaw_drop",                 # AU26/27: mouth open
)

# Each expression is a point in action space; ``intensity`` scales it.
EXPRESSION_ACTIONS = {
    "angry": {"brow_lower": 1.0, "brow_knit": 1.0, "lid_tighten": 0.7,
              "lip_press": 1.0, "lip_corner_depress": 0.35, "chin_raise": 0.5},
    "contemptuous": {"unilateral_corner_raise": 1.0, "lid_tighten": 0.15},
    "disgusted": {"nose_wrinkle": 1.0, "upper_lip_raise": 1.0, "brow_lower": 0.6,
                  "brow_knit": 0.3, "lid_tighten": 0.5, "cheek_raise": 0.3,
                  "lip_corner_depress": 0.4, "chin_raise": 0.3},
    "fearful": {"brow_raise": 0.7, "inner_brow_raise": 0.6, "brow_knit": 0.7,
                "upper_lid_raise": 1.0, "lip_stretch": 1.0, "jaw_drop": 0.45,
                "lip_corner_depress": 0.25},
    "happy": {"lip_corner_pull": 1.0, "cheek_raise": 0.8, "lid_tighten": 0.3,
              "jaw_drop": 0.25, "lip_stretch": 0.25},
    "neutral": {},
    "sad": {"inner_brow_raise": 1.0, "brow_knit": 0.4, "lid_droop": 0.6,
            "lip_corner_depress": 1.0, "chin_raise": 0.7},
    "surprised": {"brow_raise": 1.0, "upper_lid_raise": 1.0, "jaw_drop": 1.0,
                  "lip_pucker": 0.6},
}

HAIR_STYLES = ("short", "side_swept", "long", "curly", "buzz")

# RaFD geometry: a 681x1024 portrait whose face box (rows 90-711, columns
# 30-651) is what loaders crop and resize to 128.
RAFD_WIDTH, RAFD_HEIGHT = 681, 1024
RAFD_BOX = (90, 30, 621)  # top row, left column, side
RAFD_ETHNICITIES = ("Caucasian", "Moroccan", "Kid")
RAFD_GENDERS = ("male", "female")

_SKIN_PALETTE = np.array([(0.99, 0.87, 0.78), (0.93, 0.76, 0.63), (0.80, 0.60, 0.45),
                          (0.62, 0.42, 0.29), (0.42, 0.27, 0.18)], np.float64)
_HAIR_PALETTE = np.array([(0.08, 0.07, 0.07), (0.20, 0.13, 0.08), (0.38, 0.24, 0.13),
                          (0.55, 0.26, 0.12), (0.80, 0.64, 0.38), (0.92, 0.83, 0.58),
                          (0.60, 0.60, 0.60)], np.float64)
_HAIR_WEIGHTS = np.array([0.25, 0.22, 0.16, 0.1, 0.12, 0.07, 0.08])
_EYE_PALETTE = np.array([(0.22, 0.12, 0.06), (0.40, 0.24, 0.11), (0.47, 0.40, 0.18),
                         (0.28, 0.48, 0.30), (0.28, 0.48, 0.75), (0.48, 0.54, 0.60)],
                        np.float64)


@dataclass(frozen=True)
class Identity:
    """Parameters of one synthetic person (everything but expression and pose).

    Lengths are in 128-units (pixels of a 128x128 render); colours are RGB in
    [0, 1]. Every value is float32-exact so ``from_vector(to_vector())`` gives
    back an equal object.

    Attributes:
      face_width: Half-width of the face at its widest row.
      face_height: Distance from the widest row down to the chin.
      jaw: Width of the jaw relative to the cheeks (1 = no narrowing).
      eye_height: Eye row below the widest row.
      eye_spacing: Eye centre distance from the midline / ``face_width``.
      eye_size: Eye half-width / ``face_width``.
      nose_length: Nose bottom as a fraction of the eye-to-chin distance.
      nose_width: Nose half-width / ``face_width``.
      mouth_height: Mouth line as a fraction of the nose-to-chin distance.
      mouth_width: Mouth half-width / ``face_width``.
      lip_thickness: Lip thickness multiplier.
      brow_thickness: Eyebrow thickness at its inner end.
      brow_height: Brow height above the eye centre / eye half-width.
      brow_arch: Brow arch, 0 (straight) to 1.
      ear_size: Ear size multiplier.
      hair_style: Index into ``HAIR_STYLES``.
      hair_length: 0 (short) to 1 (long) within the style.
      skin: Skin colour.
      hair: Hair colour.
      eyes: Iris colour.
      background: Background colour.
      clothes: Shirt colour.
    """

    face_width: float
    face_height: float
    jaw: float
    eye_height: float
    eye_spacing: float
    eye_size: float
    nose_length: float
    nose_width: float
    mouth_height: float
    mouth_width: float
    lip_thickness: float
    brow_thickness: float
    brow_height: float
    brow_arch: float
    ear_size: float
    hair_style: int
    hair_length: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    eyes: tuple[float, float, float]
    background: tuple[float, float, float]
    clothes: tuple[float, float, float]

    def to_vector(self) -> np.ndarray:
        """The parameters as ``float32 [IDENTITY_DIM]`` (field order, colours
        expanded to three entries)."""
        values = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values.extend(value if isinstance(value, tuple) else (value,))
        return np.asarray(values, np.float32)

    @classmethod
    def from_vector(cls, vector) -> "Identity":
        """Inverse of :meth:`to_vector`."""
        vector = np.asarray(vector, np.float32).reshape(-1)
        if vector.size != IDENTITY_DIM:
            raise ValueError(f"identity vectors have {IDENTITY_DIM} entries, "
                             f"got {vector.size}.")
        values, i = {}, 0
        for f in dataclasses.fields(cls):
            if f.name in _COLOUR_FIELDS:
                values[f.name] = tuple(float(x) for x in vector[i:i + 3])
                i += 3
            elif f.name == "hair_style":
                values[f.name] = int(round(float(vector[i])))
                i += 1
            else:
                values[f.name] = float(vector[i])
                i += 1
        return cls(**values)


_COLOUR_FIELDS = ("skin", "hair", "eyes", "background", "clothes")
IDENTITY_DIM = sum(3 if f.name in _COLOUR_FIELDS else 1
                   for f in dataclasses.fields(Identity))


def _f32(x) -> float:
    return float(np.float32(x))


def _colour(rgb) -> tuple[float, float, float]:
    return tuple(_f32(c) for c in np.clip(rgb, 0.0, 1.0))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draws one random identity.

    Args:
      rng: Source of randomness; the identity is a pure function of its state.

    Returns:
      An :class:`Identity` whose background contrasts with its skin and hair
      (so the face is always separable from the background).
    """
    u = rng.uniform
    t = u(0.0, 1.0) ** 1.5 * (len(_SKIN_PALETTE) - 1)
    k = min(int(t), len(_SKIN_PALETTE) - 2)
    skin = _SKIN_PALETTE[k] + (t - k) * (_SKIN_PALETTE[k + 1] - _SKIN_PALETTE[k])
    skin = skin + u(-0.025, 0.025, 3)
    hair = _HAIR_PALETTE[rng.choice(len(_HAIR_PALETTE), p=_HAIR_WEIGHTS)] + u(-0.04, 0.04, 3)
    eyes = _EYE_PALETTE[rng.integers(len(_EYE_PALETTE))] + u(-0.04, 0.04, 3)
    clothes = np.array(colorsys.hsv_to_rgb(u(), u(0.25, 0.8), u(0.15, 0.8)))
    # Rejection sampling keeps the face separable from the background; it is
    # still deterministic because it only consumes ``rng``.
    while True:
        background = np.array(colorsys.hsv_to_rgb(u(), u(0.1, 0.5), u(0.45, 0.97)))
        if (np.linalg.norm(background - skin) > 0.3 and np.linalg.norm(background - hair) > 0.3
                and np.linalg.norm(background - clothes) > 0.2):
            break
    return Identity(
        face_width=_f32(u(31.0, 37.0)),
        face_height=_f32(u(40.0, 47.0)),
        jaw=_f32(u(0.6, 0.92)),
        eye_height=_f32(u(0.0, 4.0)),
        eye_spacing=_f32(u(0.38, 0.45)),
        eye_size=_f32(u(0.17, 0.205)),
        nose_length=_f32(u(0.40, 0.47)),
        nose_width=_f32(u(0.20, 0.28)),
        mouth_height=_f32(u(0.25, 0.33)),
        mouth_width=_f32(u(0.35, 0.43)),
        lip_thickness=_f32(u(0.75, 1.3)),
        brow_thickness=_f32(u(1.6, 3.2)),
        brow_height=_f32(u(1.45, 1.85)),
        brow_arch=_f32(u(0.0, 1.0)),
        ear_size=_f32(u(0.85, 1.15)),
        hair_style=int(rng.integers(len(HAIR_STYLES))),
        hair_length=_f32(u(0.0, 1.0)),
        skin=_colour(skin), hair=_colour(hair), eyes=_colour(eyes),
        background=_colour(background), clothes=_colour(clothes))


def make_identities(num: int, seed: int, first: int = 0) -> list[Identity]:
    """Identities ``first .. first + num - 1`` of the population ``seed``.

    Identity ``i`` depends only on ``(seed, i)``: asking for more subjects
    never changes the earlier ones.
    """
    return [sample_identity(np.random.default_rng([seed, i])) for i in range(first, first + num)]


def expression_index(expression) -> int:
    """Index into ``EXPRESSIONS`` of a name or an index."""
    if isinstance(expression, (int, np.integer)):
        if not 0 <= int(expression) < len(EXPRESSIONS):
            raise ValueError(f"expression index {expression} out of range.")
        return int(expression)
    if expression not in EXPRESSIONS:
        raise ValueError(f"unknown expression {expression!r}; expected one of {EXPRESSIONS}.")
    return EXPRESSIONS.index(expression)


def expression_actions(expression, intensity: float = 1.0) -> dict[str, float]:
    """The facial action intensities of an expression at ``intensity``."""
    name = EXPRESSIONS[expression_index(expression)]
    table = EXPRESSION_ACTIONS[name]
    # ``+ 0.0`` turns -0.0 into 0.0 so intensity 0 is bit-identical to neutral.
    return {a: float(table.get(a, 0.0)) * float(intensity) + 0.0 for a in ACTIONS}


# --------------------------------------------------------------------------
# Drawing.


def _cover(f: np.ndarray) -> np.ndarray:
    """Coverage of the implicit shape ``f < 0`` with a one-pixel smooth edge.

    Dividing by the screen-space gradient turns any implicit function into an
    approximate signed distance in pixels, so shapes need not be exact SDFs and
    stay anti-aliased after the pose warp stretches them.
    """
    # Hand-rolled central differences: np.gradient's overhead dominates on
    # the small windows features are drawn in.
    gx = np.empty_like(f)
    gy = np.empty_like(f)
    gx[:, 1:-1] = f[:, 2:] - f[:, :-2]
    gx[:, 1:-1] *= 0.5
    gx[:, 0] = f[:, 1] - f[:, 0]
    gx[:, -1] = f[:, -1] - f[:, -2]
    gy[1:-1] = f[2:] - f[:-2]
    gy[1:-1] *= 0.5
    gy[0] = f[1] - f[0]
    gy[-1] = f[-1] - f[-2]
    g = np.sqrt(gx * gx + gy * gy)
    g += 1e-6
    out = 0.5 - f / g
    return np.clip(out, 0.0, 1.0, out=out)


def _segment(x, y, x0, y0, x1, y1):
    """Distance to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return np.hypot(x - x0 - t * dx, y - y0 - t * dy), t


_HEAD_DEPTH = 1.08  # skull depth / width
_FACE_DEPTH = 0.62  # face depth / width: the face is flatter than the skull


class _Face:
    """Renders one face (see the module docstring for the conventions).

    Frontal coordinates: ``X`` to the image's right and ``V`` down, in
    128-units from the head's centre (the widest row of the face); a feature
    is drawn in these coordinates and the pose warp maps it to the canvas.
    """

    def __init__(self, identity: Identity, actions: dict[str, float], pose: float, size: int):
        self.id = identity
        self.a = actions
        self.size = size
        self.scale = size / 128.0
        self.yaw = math.radians(pose)
        self.sin, self.cos = math.sin(self.yaw), math.cos(self.yaw)
        self.img = np.empty((size, size, 3), np.float32)
        self.img[:] = identity.background
        # Pixel centres in 128-units.
        self.coords = ((np.arange(size, dtype=np.float32) + 0.5) / self.scale)

        i = identity
        self.W0, self.Hb = i.face_width, i.face_height
        self.Ht = 1.08 * self.W0
        self.cx = 64.0
        self.cy = 106.0 - self.Hb
        self.ey = i.eye_height
        self.ex = i.eye_spacing * self.W0
        self.ew = i.eye_size * self.W0
        self.nb = self.ey + i.nose_length * (self.Hb - self.ey)
        self.nw = i.nose_width * self.W0
        self.my = self.nb + i.mouth_height * (self.Hb - self.nb)
        self.mw = i.mouth_width * self.W0
        self.skin = np.asarray(i.skin, np.float32)
        self.hair = np.asarray(i.hair, np.float32)

        # Per-row head model, seen after a yaw. Each row v (down from the widest
        # row) is the union of two ellipses of the same half-width W and front
        # point: a deep skull (half-depth D) and a flatter face (half-depth
        # _FACE_DEPTH * W) that carries the features. The flat face keeps the
        # far mouth corner and eye inside the cheek at 45 degrees, as on a real
        # head; the skull gives the back of the head its width. The lower face
        # moves forward as it narrows so the chin swings with the nose.
        self.xs = self.coords - self.cx
        self.v = self.coords - self.cy
        W, D, zc = self._row_params(self.v)
        Df = _FACE_DEPTH * W
        self.W = W.astype(np.float32)
        self.zc = zc.astype(np.float32)
        self.zf = (zc + D - Df).astype(np.float32)
        self.As, self.bs = self._projection(W, D)
        self.Af, self.bf = self._projection(W, Df)

    # -- coordinates ---------------------------------------------------------

    def _rows(self, v0, v1):
        r0 = int(math.floor((self.cy + v0) * self.scale - 2))
        r1 = int(math.ceil((self.cy + v1) * self.scale + 2))
        return max(r0, 0), min(r1, self.size)

    def _cols(self, x0, x1):
        c0 = int(math.floor((self.cx + x0) * self.scale - 2))
        c1 = int(math.ceil((self.cx + x1) * self.scale + 2))
        return max(c0, 0), min(c1, self.size)

    def _projection(self, W, D):
        """Screen half-width A and phase beta of rotated row ellipses:
        ``x = A sin(phi + beta)`` for the point at angle phi."""
        A = np.maximum(np.hypot(W * self.cos, D * self.sin), 1e-3)
        return A.astype(np.float32), np.arctan2(D * self.sin, W * self.cos).astype(np.float32)

    def _row_params(self, v):
        """Half-width W, half-depth D and forward offset zc of rows ``v``.

        The outline is an ellipse above the widest row and a squarer curve
        below it, narrowing towards the chin by ``jaw``. The silhouette does
        not depend on the expression, so expressions never touch the
        background.
        """
        v = np.asarray(v, np.float64)
        upper = self.W0 * np.sqrt(np.clip(1.0 - (v / self.Ht) ** 2, 0.0, 1.0))
        vb = np.clip(v / self.Hb, 0.0, 1.0)
        lower = self.W0 * (1.0 - vb ** 2.2) ** (1 / 2.2) * (1.0 - (1.0 - self.id.jaw) * vb ** 2.5)
        W = np.where(v < 0, upper, lower)
        W = np.maximum(np.where((v < -self.Ht) | (v > self.Hb), 0.0, W), 1e-3)
        zc = np.where(v < 0, 0.0, 0.7 * _HEAD_DEPTH * (self.W0 - W))
        return W, _HEAD_DEPTH * W, zc

    def window(self, x0, x1, v0, v1, depth=0.0):
        """Canvas window covering the frontal box [x0, x1] x [v0, v1].

        Returns:
          ``(rows, cols, X, V, front)``: slices, the frontal coordinates of the
          window's pixels (``X [h, w]``, ``V [h, 1]``) and a mask of the pixels
          on the visible front half of the head; ``None`` if the window is empty.
        """
        r0, r1 = self._rows(v0, v1)
        if r1 - r0 < 3:
            return None
        rows = slice(r0, r1)
        W, A, beta = self.W[rows], self.Af[rows], self.bf[rows]
        shift = (self.zf[rows] + depth) * self.sin
        # The warp is monotonic along a row, so the box's side edges bound it.
        ends = [shift + A * np.sin(np.arcsin(np.clip(x / W, -1.0, 1.0)) + beta) for x in (x0, x1)]
        c0, c1 = self._cols(float(min(e.min() for e in ends)), float(max(e.max() for e in ends)))
        if c1 - c0 < 3:
            return None
        cols = slice(c0, c1)
        X, front = self._frontal(rows, cols, depth)
        if depth:
            # Raised features (the nose) stay on the face's visible surface.
            front = front & self._frontal(rows, cols)[1]
        return rows, cols, X, self.v[rows][:, None], front

    def _frontal(self, rows, cols, depth=0.0):
        """Inverse of the pose warp: frontal X of every pixel in a window.

        Pixels off the face's visible half get |X| >= W growing towards the
        back of the skull (up to 2W), and pixels off the head 3 * W0, so
        frontal features never show there.
        """
        W = self.W[rows][:, None]
        x = self.xs[cols][None, :]
        uf = (x - (self.zf[rows][:, None] + depth) * self.sin) / self.Af[rows][:, None]
        phi = np.arcsin(np.clip(uf, -1.0, 1.0)) - self.bf[rows][:, None]
        front = (np.abs(uf) <= 1.0) & (np.abs(phi) <= 0.5 * math.pi)
        us = (x - self.zc[rows][:, None] * self.sin) / self.As[rows][:, None]
        phs = np.arcsin(np.clip(us, -1.0, 1.0)) - self.bs[rows][:, None]
        side = np.sign(phs) * W * (1.0 + np.clip(np.abs(phs) - 1.2, 0.0, 1.0))
        side = np.where(np.abs(us) <= 1.0, side, np.sign(us) * 3.0 * self.W0)
        X = np.where(front, W * np.sin(phi), side)
        return X.astype(np.float32), front

    # -- painting ------------------------------------------------------------

    def paint(self, rows, cols, alpha, colour):
        """Alpha-blends ``colour`` (RGB or per-pixel RGB) into a window."""
        target = self.img[rows, cols]
        target += (np.asarray(colour, np.float32) - target) * alpha[..., None]

    # -- layers --------------------------------------------------------------

    def draw(self) -> np.ndarray:
        """Paints every layer back to front and returns the uint8 image."""
        self.torso()
        self.back_hair()
        self.neck()
        self.ears(behind=True)
        self.head()
        self.cheeks()
        self.forehead_lines()
        self.nasolabial_folds()
        self.nose()
        self.mouth()
        self.eyes()
        self.brows()
        self.front_hair()
        self.ears(behind=False)
        return np.clip(self.img * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def _full(self, v0, v1, x0=-64.0, x1=64.0):
        r0, r1 = self._rows(v0, v1)
        c0, c1 = self._cols(x0, x1)
        rows, cols = slice(r0, r1), slice(c0, c1)
        return rows, cols, self.xs[cols][None, :], self.v[rows][:, None]

    def torso(self):
        top = self.Hb + 6.0
        rows, cols, x, v = self._full(top - 2, 64.0)
        half_neck = 0.42 * self.W0 * (0.6 + 0.5 * self.id.jaw)
        body = (x / (2.1 * self.W0)) ** 2 + ((v - top - 32.0) / 32.0) ** 2 - 1.0
        neckline = (x / (1.15 * half_neck)) ** 2 + ((v - top) / 8.0) ** 2 - 1.0
        f = np.maximum(body * 20.0, -neckline * 8.0)
        self.paint(rows, cols, _cover(f), np.asarray(self.id.clothes) * 0.95)

    def _hair_geometry(self):
        """The style's name, hair thickness on top and at the sides, lowest row
        of the hair round the face, and lowest row of the hair hanging behind
        the head (None: none hangs)."""
        i, ey, Hb = self.id, self.ey, self.Hb
        style = HAIR_STYLES[i.hair_style % len(HAIR_STYLES)]
        if style == "short":
            return style, 5.0, 2.5, ey - 3.0, None
        if style == "side_swept":
            return style, 7.0, 3.0, ey + 2.0, Hb * (0.35 + 0.5 * i.hair_length)
        if style == "long":
            return style, 6.0, 4.0, Hb * 0.75, Hb * (0.9 + 0.6 * i.hair_length)
        if style == "curly":
            return style, 12.0 + 4.0 * i.hair_length, 9.0 + 3.0 * i.hair_length, ey + 12.0, ey + 16.0
        return style, 1.5, 1.0, ey - 5.0, None

    def back_hair(self):
        style, top, side, _, bottom = self._hair_geometry()
        if bottom is None:
            return
        rows, cols, x, v = self._full(-self.Ht - top - 1, bottom + 1)
        # The back of the head moves away from the direction the face turns.
        c = -0.3 * self.W0 * self.sin
        half = np.where(v < 0, (self.W0 + side) * np.sqrt(np.clip(1 - (v / (self.Ht + top)) ** 2, 0, 1)),
                        self.W0 + side + 1.0)
        wave = 1.5 * np.sin(x * 0.45) if style != "curly" else 2.5 * np.sin(x * 0.8)
        f = np.maximum(np.abs(x - c) - half, v - bottom - wave)
        if style == "curly":
            r = np.hypot(x - c, (v + 4.0) * 0.95)
            ang = np.arctan2(v, x - c)
            f = np.minimum(f, r - (self.W0 + side) - 2.0 * np.sin(9 * ang))
        self.paint(rows, cols, _cover(f), self._hair_colour(x - c, v, np.full(f.shape, 0.78, np.float32)))

    def neck(self):
        half = 0.42 * self.W0 * (0.6 + 0.5 * self.id.jaw)
        rows, cols, x, v = self._full(0.2 * self.Hb, 64.0)
        c = 0.1 * self.W0 * self.sin
        f = np.maximum(np.abs(x - c) - half, 0.2 * self.Hb - v)
        shade = np.clip(0.72 + 0.006 * (v - self.Hb), 0.72, 0.85)
        self.paint(rows, cols, _cover(f), self.skin * shade[..., None])

    def ears(self, behind: bool):
        i = self.id
        if HAIR_STYLES[i.hair_style % len(HAIR_STYLES)] in ("long", "curly"):
            return
        v_e = 0.5 * (self.ey + self.nb) - 1.0
        eh = 0.55 * (self.nb - self.ey) * i.ear_size
        W, D, zc = (float(t) for t in self._row_params(v_e))
        for side in (-1.0, 1.0):
            phi = side * math.radians(100.0)
            facing = math.cos(phi + self.yaw)
            if not behind and facing < 0.15:
                continue
            x_s = zc * self.sin + W * math.sin(phi) * self.cos + D * math.cos(phi) * self.sin
            out = math.sin(phi + self.yaw)
            half_w = 0.45 * eh * (0.45 + 0.55 * max(facing, 0.0))
            xc = x_s + 0.5 * half_w * out
            rows, cols, x, v = self._full(v_e - eh - 1, v_e + eh + 1, xc - half_w - 2, xc + half_w + 2)
            f = ((x - xc) / half_w) ** 2 + ((v - v_e) / eh) ** 2 - 1.0
            self.paint(rows, cols, _cover(f), self.skin * 0.9)
            if not behind:
                inner = ((x - xc - 0.1 * half_w * out) / (0.55 * half_w)) ** 2 + ((v - v_e) / (0.65 * eh)) ** 2 - 1.0
                self.paint(rows, cols, _cover(inner) * 0.5, self.skin * 0.65)

    def _head_field(self, rows, x, v):
        """Implicit head outline: the union of the face and skull ellipses."""
        f_face = np.abs(x - self.zf[rows][:, None] * self.sin) - self.Af[rows][:, None]
        f_skull = np.abs(x - self.zc[rows][:, None] * self.sin) - self.As[rows][:, None]
        return np.maximum(np.minimum(f_face, f_skull), np.maximum(v - self.Hb, -self.Ht - v))

    def head(self):
        rows, cols, x, v = self._full(-self.Ht - 1, self.Hb + 1)
        f = self._head_field(rows, x, v)
        # Lambert-like shading from the skull normal's screen angle, light
        # slightly from the left: a rounder look at no cost to the features.
        dxs = x - self.zc[rows][:, None] * self.sin
        psi = np.arcsin(np.clip(dxs / self.As[rows][:, None], -1.0, 1.0))
        shade = 0.86 + 0.14 * np.cos(0.9 * psi + 0.2)
        shade = shade - 0.06 * np.clip((v - 0.55 * self.Hb) / (0.45 * self.Hb), 0, 1) ** 2
        self.paint(rows, cols, _cover(f), self.skin * shade[..., None])

    def cheeks(self):
        a = self.a
        raise_ = a["cheek_raise"]
        for side in (-1.0, 1.0):
            xc = side * 0.55 * self.W0
            vc = self.ey + 0.55 * (self.nb - self.ey) - 2.5 * raise_
            win = self.window(xc - 10, xc + 10, vc - 8, vc + 8)
            if win is None:
                continue
            rows, cols, X, V, front = win
            g = np.exp(-(((X - xc) / 7.5) ** 2 + ((V - vc) / 5.0) ** 2))
            alpha = (0.18 + 0.35 * raise_) * g * front
            blush = np.minimum(self.skin * np.array([1.06, 0.86, 0.84], np.float32) + 0.04, 1.0)
            self.paint(rows, cols, alpha, blush)

    def forehead_lines(self):
        a = self.a
        raise_ = a["brow_raise"]
        inner = a["inner_brow_raise"]
        if raise_ + inner <= 0.0:
            return
        base = self.ey - self.id.brow_height * self.ew - 1.6 * self.ew
        colour = self.skin * 0.72
        for k in range(3):
            yk = base - 3.2 * k - 2.0 * raise_
            half = 0.5 * self.W0 * (1.0 - 0.12 * k)
            win = self.window(-half, half, yk - 3, yk + 3)
            if win is None:
                continue
            rows, cols, X, V, front = win
            f = np.abs(V - (yk + 1.5 * (X / half) ** 2)) - 0.45
            f = np.maximum(f, np.abs(X) - half)
            weight = raise_ * (1 - 0.5 * (X / half) ** 2) + inner * np.exp(-(X / (0.22 * self.W0)) ** 2)
            self.paint(rows, cols, _cover(f) * np.clip(0.4 * weight, 0, 0.5) * front, colour)

    def nasolabial_folds(self):
        a = self.a
        _, reach, drop = self._mouth_geometry()
        for side in (-1.0, 1.0):
            corner_x, corner_y = reach[side], self.my + drop[side]
            strength = (0.16 + 0.5 * a["lip_corner_pull"] + 0.3 * a["nose_wrinkle"]
                        + 0.35 * a["upper_lip_raise"] + 0.2 * a["lip_stretch"]
                        + (0.55 * a["unilateral_corner_raise"] if side > 0 else 0.0))
            x0, y0 = side * (self.nw * 1.15), self.nb - 0.5 * self.nw
            x1, y1 = side * (corner_x + 2.5), corner_y + 2.5
            xm, ym = 0.5 * (x0 + x1) + side * 2.0, 0.5 * (y0 + y1)
            win = self.window(min(x0, x1) - 3, max(x0, x1) + 3, min(y0, y1) - 2, max(y0, y1) + 2)
            if win is None:
                continue
            rows, cols, X, V, front = win
            d1, t1 = _segment(X, V, x0, y0, xm, ym)
            d2, t2 = _segment(X, V, xm, ym, x1, y1)
            d = np.minimum(d1, d2)
            fade = np.where(d1 < d2, 1.0, 1.0 - 0.8 * t2 ** 2)
            self.paint(rows, cols, _cover(d - 0.55) * np.clip(strength, 0, 0.85) * fade * front,
                       self.skin * 0.68)

    def nose(self):
        a = self.a
        wrinkle = a["nose_wrinkle"]
        nb = self.nb - 1.2 * wrinkle - 0.5 * a["upper_lip_raise"]
        nw = self.nw * (1.0 + 0.12 * wrinkle)
        tip_depth = 0.12 * self.W0
        dark = self.skin * 0.42
        # Bridge: a faint shadow line on the side away from the light.
        win = self.window(-nw, nw, self.ey, nb, 0.5 * tip_depth)
        if win is not None:
            rows, cols, X, V, front = win
            x_line = 0.45 * nw * np.clip((V - self.ey) / (nb - self.ey), 0, 1) ** 0.5 + 0.25 * nw
            f = np.maximum(np.abs(X - x_line) - 0.5, np.maximum(self.ey + 0.8 * self.ew - V, V - nb + 0.9 * nw))
            self.paint(rows, cols, _cover(f) * 0.22 * front, self.skin * 0.7)
        win = self.window(-1.6 * nw, 1.6 * nw, nb - 1.3 * nw, nb + 3, tip_depth)
        if win is None:
            return
        rows, cols, X, V, front = win
        # Shadow under the tip.
        g = np.exp(-((X / (0.8 * nw)) ** 2 + ((V - nb - 0.8) / 1.6) ** 2))
        self.paint(rows, cols, 0.3 * g * front, self.skin * 0.7)
        for side in (-1.0, 1.0):
            # Wing (ala) crease: the outer arc of an ellipse round the nostril.
            xc, vc, r = side * 0.68 * nw, nb - 0.42 * nw, 0.42 * nw
            e = np.sqrt(((X - xc) / r) ** 2 + ((V - vc) / (1.1 * r)) ** 2)
            f = np.maximum(np.abs(e - 1.0) * r - 0.5, np.maximum(-side * (X - xc) - 0.2 * r, vc - 0.9 * r - V))
            self.paint(rows, cols, _cover(f) * 0.45 * front, self.skin * 0.6)
            # Nostril.
            nx, ny = side * 0.4 * nw, nb - 0.3
            f = ((X - nx) / (0.27 * nw)) ** 2 + ((V - ny + 0.25 * side * (X - nx)) / (0.11 * nw + 0.45)) ** 2 - 1.0
            self.paint(rows, cols, _cover(f) * 0.75 * front, dark)
        if wrinkle > 0:
            win = self.window(-1.2 * nw, 1.2 * nw, self.ey - 2, self.ey + 1.6 * self.ew, 0.3 * tip_depth)
            if win is not None:
                rows, cols, X, V, front = win
                for k in range(3):
                    yk = self.ey + 0.2 * self.ew + 0.45 * self.ew * k
                    half = 0.55 * nw + 0.12 * nw * k
                    f = np.maximum(np.abs(V - yk + 1.2 * (X / half) ** 2) - 0.45, np.abs(X) - half)
                    self.paint(rows, cols, _cover(f) * 0.75 * wrinkle * front, self.skin * 0.62)

    def _mouth_opening(self):
        """How far the upper and lower lips part from the mouth line."""
        a = self.a
        mw = self.mw * (1.0 - 0.08 * a["lip_press"])
        open_top = mw * (0.26 * a["jaw_drop"] + 0.28 * a["upper_lip_raise"]
                         + 0.07 * a["lip_corner_pull"] + 0.06 * a["lip_stretch"])
        open_bot = mw * (0.85 * a["jaw_drop"] + 0.10 * a["lip_corner_pull"] + 0.10 * a["lip_stretch"])
        return open_top, open_bot

    def _mouth_geometry(self):
        """The mouth's width scale ``mw`` and, per side (-1: image left, +1:
        image right), how far the corner reaches from the midline and how far
        below the mouth line it sits."""
        a = self.a
        mw = self.mw * (1.0 - 0.08 * a["lip_press"])
        stretch, pucker = a["lip_stretch"], a["lip_pucker"]
        base = mw * (1.0 + 0.22 * stretch + 0.10 * a["lip_corner_pull"] - 0.32 * pucker
                     + 0.06 * a["lip_corner_depress"])
        corner_y = mw * (-0.42 * a["lip_corner_pull"] + 0.34 * a["lip_corner_depress"] + 0.05 * stretch)
        uni = a["unilateral_corner_raise"]
        return mw, {-1.0: base, 1.0: base + 0.2 * mw * uni}, {-1.0: corner_y, 1.0: corner_y - 0.55 * mw * uni}

    def mouth(self):
        a = self.a
        mw, reach, drop = self._mouth_geometry()
        lip = self.id.lip_thickness
        half_l, half_r = reach[-1.0], reach[1.0]
        upper_raise = a["upper_lip_raise"]
        open_top, open_bot = self._mouth_opening()
        t_up = 0.22 * mw * lip * (1.0 - 0.75 * a["lip_press"])
        t_lo = 0.30 * mw * lip * (1.0 - 0.7 * a["lip_press"]) * (1.0 + 0.2 * a["chin_raise"])
        extent = max(half_l, half_r)
        win = self.window(-half_l - 2, half_r + 2,
                          self.my + min(drop[-1.0], drop[1.0], 0.0) - open_top - t_up - 3,
                          self.my + max(drop[-1.0], drop[1.0], 0.0) + open_bot + t_lo + 5)
        if win is None:
            return
        rows, cols, X, V, front = win
        half = np.where(X < 0, half_l, half_r)
        corner = np.where(X < 0, drop[-1.0], drop[1.0])
        xn = X / half
        g = np.clip(1.0 - xn * xn, 0.0, 1.0)
        # A one-sided raise lifts that whole half of the mouth, not just its corner.
        bend = np.where(X < 0, 2.0, 2.0 - 0.7 * a["unilateral_corner_raise"])
        ym = self.my + corner * np.abs(xn) ** bend - mw * (0.12 * a["chin_raise"] + 0.05 * upper_raise) * g
        p = 0.5 / (1.0 + 0.8 * a["lip_stretch"])
        gp = g ** p
        y_ti = ym - open_top * gp
        y_bi = ym + open_bot * gp
        bow = 1.0 - 0.3 * np.exp(-(X / (0.12 * mw)) ** 2) + 0.12 * np.exp(-((np.abs(X) - 0.28 * mw) / (0.15 * mw)) ** 2)
        y_to = y_ti - t_up * g ** 0.35 * bow
        y_bo = y_bi + t_lo * g ** 0.35
        ends = np.abs(xn) - 1.0
        lip_colour = np.clip(self.skin * np.array([0.86, 0.58, 0.58], np.float32) + np.array([0.08, 0.0, 0.01]), 0, 1)
        # Shadow crease under the lower lip (deepened by the chin raiser).
        f = np.maximum(np.abs(V - y_bo - 2.2 - 0.6 * g) - 0.6, np.abs(X) - 0.55 * extent)
        self.paint(rows, cols, _cover(f) * (0.15 + 0.35 * a["chin_raise"]) * front, self.skin * 0.7)
        self.paint(rows, cols, _cover(np.maximum(np.maximum(y_bi - V, V - y_bo), ends)) * front, lip_colour)
        self.paint(rows, cols, _cover(np.maximum(np.maximum(y_to - V, V - y_ti), ends)) * front, lip_colour * 0.88)
        opening = np.maximum(np.maximum(y_ti - V, V - y_bi), ends)
        closed_line = np.maximum(opening, np.abs(xn) - 0.92)
        self.paint(rows, cols, _cover(closed_line - 0.45) * front, lip_colour * 0.35)
        gap = open_top + open_bot
        if gap > 0.3:
            teeth_alpha = min((gap - 0.3) / 1.5, 1.0)
            f = np.maximum(opening, V - (y_ti + 0.3 * mw * g ** 0.5))
            self.paint(rows, cols, _cover(f) * teeth_alpha * front, np.array([0.95, 0.94, 0.88]))
            if a["lip_stretch"] > 0:
                f = np.maximum(opening, (y_bi - 0.16 * mw * g ** 0.5) - V)
                self.paint(rows, cols, _cover(f) * teeth_alpha * min(a["lip_stretch"], 1.0) * front,
                           np.array([0.9, 0.88, 0.82]))
        # Corners (commissures), and the dimple of a one-sided smile.
        for side in (-1.0, 1.0):
            d = np.hypot(X - side * reach[side], V - self.my - drop[side])
            self.paint(rows, cols, _cover(d - 0.8) * 0.45 * front, self.skin * 0.5)
        uni = a["unilateral_corner_raise"]
        if uni > 0:
            cxp, cyp = reach[1.0], self.my + drop[1.0]
            f = np.maximum(np.abs(X - cxp - 2.0 - 0.6 * (V - cyp) ** 2 / 3.0) - 0.5, np.abs(V - cyp) - 3.0)
            self.paint(rows, cols, _cover(f) * 0.6 * uni * front, self.skin * 0.6)

    def eyes(self):
        a = self.a
        ew = self.ew
        hu = 0.50 * ew * (1.0 + 0.65 * a["upper_lid_raise"] - 0.38 * a["lid_tighten"]
                          - 0.35 * a["lid_droop"] - 0.15 * a["cheek_raise"] - 0.12 * a["brow_lower"])
        hl = (0.36 * ew * (1.0 + 0.25 * a["upper_lid_raise"] - 0.5 * a["lid_tighten"])
              - 0.30 * ew * a["cheek_raise"])
        hu = max(hu, 0.12 * ew)
        ri = 0.52 * ew
        iris = np.asarray(self.id.eyes, np.float32)
        dark = np.array([0.1, 0.07, 0.06], np.float32)
        for side in (-1.0, 1.0):
            xc = side * self.ex
            win = self.window(xc - 1.5 * ew, xc + 1.5 * ew, self.ey - 1.25 * ew - 2, self.ey + 1.0 * ew + 2)
            if win is None:
                continue
            rows, cols, X, V, front = win
            x = X - xc
            xn = x / ew
            g = np.clip(1.0 - xn * xn, 0.0, 1.0) ** 0.8
            outer = np.clip(side * xn, 0.0, 1.0)
            inner = np.clip(-side * xn, 0.0, 1.0)
            y_u = (self.ey - hu * g + 0.22 * ew * a["lid_droop"] * outer * g
                   + 0.2 * ew * a["brow_lower"] * inner * g - 0.05 * ew * inner)
            y_l = self.ey + hl * g
            eye = np.maximum(np.maximum(y_u - V, V - y_l), np.abs(xn) - 1.0)
            eye_cover = _cover(eye) * front
            # Crease above the lid, and the pushed-up lower lid of a smile.
            crease = self.ey - (0.88 * ew - 0.2 * ew * a["brow_lower"]) * g ** 0.7
            f = np.maximum(np.abs(V - crease) - 0.45, np.abs(xn) - 0.85)
            self.paint(rows, cols, _cover(f) * 0.3 * front, self.skin * 0.68)
            if a["cheek_raise"] > 0:
                bag = y_l + 0.3 * ew
                f = np.maximum(np.abs(V - bag) - 0.45, np.abs(xn) - 0.8)
                self.paint(rows, cols, _cover(f) * 0.4 * a["cheek_raise"] * front, self.skin * 0.68)
                for k in (-1.0, 0.0, 1.0):
                    d, _ = _segment(X, V, xc + side * 1.15 * ew, self.ey + 0.15 * ew * k,
                                    xc + side * 1.45 * ew, self.ey + 0.35 * ew * k)
                    self.paint(rows, cols, _cover(d - 0.4) * 0.45 * a["cheek_raise"] * front, self.skin * 0.66)
            self.paint(rows, cols, eye_cover, np.array([0.95, 0.93, 0.9], np.float32))
            icy = self.ey + 0.04 * ew
            r = np.hypot(x, V - icy)
            self.paint(rows, cols, _cover(np.maximum(r - ri, eye)) * front, iris * 0.6)
            self.paint(rows, cols, _cover(np.maximum(r - 0.8 * ri, eye)) * front, iris)
            self.paint(rows, cols, _cover(np.maximum(r - 0.42 * ri, eye)) * front, dark)
            hr = np.hypot(x + 0.3 * ri, V - icy + 0.35 * ri)
            self.paint(rows, cols, _cover(np.maximum(hr - 0.22 * ri - 0.2, eye)) * 0.9 * front,
                       np.ones(3, np.float32))
            # Lash line along the upper lid, heavier towards the outer corner.
            lash = 0.55 + 0.35 * outer
            f = np.maximum(np.abs(V - (y_u - 0.35)) - lash, np.abs(xn) - 1.05)
            self.paint(rows, cols, _cover(f) * front, dark)
            f = np.maximum(np.abs(V - (y_l + 0.3)) - 0.35, np.abs(xn) - 0.95)
            self.paint(rows, cols, _cover(f) * 0.45 * front, self.skin * 0.5)

    def brows(self):
        a, ew, i = self.a, self.ew, self.id
        y_b = self.ey - i.brow_height * ew
        raise_, inner_raise = a["brow_raise"], a["inner_brow_raise"]
        lower, knit = a["brow_lower"], a["brow_knit"]
        y_in = y_b + ew * (-0.75 * raise_ - 0.85 * inner_raise + 0.6 * lower + 0.3 * knit)
        y_out = y_b + ew * (-0.6 * raise_ + 0.2 * inner_raise + 0.2 * lower)
        arch = ew * (0.1 + 0.25 * i.brow_arch + 0.25 * raise_ - 0.15 * lower)
        colour = np.minimum(self.hair * 0.8, self.skin * 0.5 + 0.02)
        for side in (-1.0, 1.0):
            x_in = side * (self.ex - 1.0 * ew - 0.3 * ew * knit)
            x_out = side * (self.ex + 1.3 * ew)
            lo, hi = min(x_in, x_out), max(x_in, x_out)
            win = self.window(lo - 2, hi + 2, min(y_in, y_out) - arch - 4, max(y_in, y_out) + 4)
            if win is None:
                continue
            rows, cols, X, V, front = win
            t = (X - x_in) / (x_out - x_in)
            tc = np.clip(t, 0.0, 1.0)
            yc = y_in + (y_out - y_in) * tc - arch * 4.0 * tc ** 0.8 * (1.0 - tc)
            th = i.brow_thickness * (1.15 - 0.6 * tc)
            length = hi - lo
            f = np.maximum(np.abs(V - yc) - 0.5 * th, np.maximum(-t, t - 1.0) * length)
            self.paint(rows, cols, _cover(f) * front, colour)
        if knit + lower > 0:
            win = self.window(-0.25 * self.ex, 0.25 * self.ex, y_in - 2, y_in + 6)
            if win is not None:
                rows, cols, X, V, front = win
                for side in (-1.0, 1.0):
                    d, _ = _segment(X, V, side * 0.09 * self.ex, y_in - 0.5, side * 0.06 * self.ex, y_in + 4.5)
                    self.paint(rows, cols, _cover(d - 0.45) * np.clip(0.45 * knit + 0.25 * lower, 0, 0.7) * front,
                               self.skin * 0.66)

    def _hair_colour(self, X, V, shade):
        """Hair colour with strands radiating from the crown (frontal coords,
        so they turn with the head)."""
        ang = np.arctan2(V + 1.4 * self.Ht, X)
        strands = np.sin(ang * 60.0 + 2.0 * np.sin(ang * 9.0 + self.id.hair_length * 6.0))
        return self.hair[None, None, :] * (shade * (0.93 + 0.07 * strands))[..., None]

    def front_hair(self):
        i = self.id
        style, top, side, v_end, _ = self._hair_geometry()
        rows, cols, x, v = self._full(-self.Ht - top - 3, v_end + 2)
        W = self.W[rows][:, None]
        # Volume: the head inflated by the hair's thickness, thinning to
        # nothing at the style's lowest row, and sitting a little towards the
        # back of the head.
        upper = (self.W0 + side) * np.sqrt(np.clip(1.0 - (v / (self.Ht + top)) ** 2, 0.0, 1.0))
        taper = np.clip((v_end - v) / 8.0, 0.0, 1.0)
        Wi = np.where(v < 0, upper, W + side * taper)
        As, _ = self._projection(Wi, _HEAD_DEPTH * Wi)
        Af, _ = self._projection(Wi, _FACE_DEPTH * Wi)
        back = 0.12 * (side + top) * self.sin
        dx = x - self.zc[rows][:, None] * self.sin + back
        dxf = x - self.zf[rows][:, None] * self.sin
        f_vol = np.maximum(np.minimum(np.abs(dx) - As, np.abs(dxf) - Af),
                           np.maximum(-self.Ht - top - v, v - v_end))
        if style == "curly":
            ang = np.arctan2(v, dx)
            f_vol = f_vol - 1.6 * np.sin(10.0 * ang) - 0.8
        elif style != "buzz":
            f_vol = f_vol - 0.7 * np.sin(np.arctan2(v, dx) * 14.0)
        # Hair on the skull, above the hairline (frontal coordinates).
        X, front = self._frontal(rows, cols)
        n = np.clip(np.abs(X) / self.W0, 0.0, 1.0)
        brow_top = self.ey - i.brow_height * self.ew - 1.1 * self.ew
        forehead = brow_top - 12.0 - (4.0 * i.hair_length if style == "buzz" else 0.0)
        temple = self.ey - 3.0
        hairline = (forehead + (temple - forehead) * n ** 2.6
                    + 2.5 * np.exp(-((n - 0.55) / 0.17) ** 2))
        # Sideburns reach down beside the ears.
        sideburn = np.clip((n * self.W0 / np.maximum(W, 1e-3) - 0.86) / 0.08, 0.0, 1.0)
        hairline = hairline + (self.ey + 5.0 - hairline) * sideburn * (style != "long")
        if style == "side_swept":
            # A fringe swept across the forehead, clear of even raised brows.
            sx = np.clip(X / self.W0, -1.0, 1.0) * (1.0 if i.hair_length > 0.5 else -1.0)
            fringe = brow_top - 8.0 - 7.0 * (1.0 + sx) ** 1.3
            hairline = np.maximum(hairline, np.where(front, fringe, hairline))
        elif style == "long":
            # Curtains of hair over the sides of the face.
            curtain = np.clip((n * self.W0 / np.maximum(W, 1e-3) - 0.84) / 0.04, 0.0, 1.0)
            hairline = hairline + (v_end - hairline) * curtain
        elif style == "curly":
            hairline = np.maximum(hairline, forehead + 2.0 + 1.5 * np.sin(X * 0.9))
        # Beyond the visible half of the face the hair reaches the nape.
        behind = np.clip(np.abs(X) / np.maximum(W, 1e-3) - 1.0, 0.0, 1.0) * 3.0
        behind = np.minimum(behind, 1.0)
        nape = self.ey + 12.0 if style in ("short", "buzz", "side_swept") else v_end
        hairline = hairline * (1.0 - behind) + nape * behind
        head = self._head_field(rows, x, v)
        # Hair is the volume off the head plus the scalp above the hairline.
        f = np.minimum(np.maximum(f_vol, -head), np.maximum(head, v - hairline))
        psi = np.arcsin(np.clip(dx / As, -1.0, 1.0))
        shade = 0.85 + 0.22 * np.cos(0.9 * psi + 0.2) - 0.1 * np.clip((v + self.Ht) / 25.0, 0, 1)
        colour = self._hair_colour(X, v, shade)
        if style == "buzz":
            colour = 0.55 * colour + 0.45 * self.skin * 0.85
        self.paint(rows, cols, _cover(f), colour)


def render(identity: Identity, expression, intensity: float = 1.0, pose: float = 0.0,
           size: int = 128) -> np.ndarray:
    """Renders one face.

    Args:
      identity: Who.
      expression: A name from ``EXPRESSIONS`` or its index.
      intensity: Expression strength; 0 is exactly the neutral face, 1 the
        full expression (values above 1 exaggerate).
      pose: Head yaw in degrees, -45..45 (positive turns the face towards the
        image's right).
      size: Output side in pixels.

    Returns:
      ``uint8 [size, size, 3]`` RGB image.
    """
    actions = expression_actions(expression, intensity)
    return _Face(identity, actions, float(pose), int(size)).draw()


def render_face_set(num_subjects: int, seed: int = 0,
                    poses: Sequence[float] = (-45.0, 0.0, 45.0),
                    intensities: Sequence[float] = (1.0,),
                    expressions: Sequence[str] = EXPRESSIONS, size: int = 128,
                    first_subject: int = 0) -> FaceSet:
    """Every subject x expression x pose x intensity, in that nesting order.

    Neutral has no intensity, so it is rendered once per pose (with intensity
    0 in ``extras["intensity"]``).

    Args:
      num_subjects: Number of identities.
      seed: Population seed (see :func:`make_identities`).
      poses: Yaw angles in degrees.
      intensities: Expression intensities.
      expressions: Expression names (subset of ``EXPRESSIONS``).
      size: Image side.
      first_subject: Index of the first identity, e.g. to render held-out
        subjects that a smaller training set does not contain.

    Returns:
      A :class:`FaceSet` with ``expression_names == EXPRESSIONS`` and extras
      ``identity`` (``float32 [N, IDENTITY_DIM]``) and ``intensity``
      (``float32 [N]``).
    """
    identities = make_identities(num_subjects, seed, first_subject)
    names = tuple(f"s{first_subject + k:03d}" for k in range(num_subjects))
    images, subjects, exprs, pose_list, vecs, strengths = [], [], [], [], [], []
    for k, identity in enumerate(identities):
        vector = identity.to_vector()
        for expression in expressions:
            e = expression_index(expression)
            levels = (0.0,) if e == NEUTRAL_INDEX else tuple(intensities)
            for pose in poses:
                for level in levels:
                    images.append(render(identity, e, level, pose, size))
                    subjects.append(k)
                    exprs.append(e)
                    pose_list.append(pose)
                    vecs.append(vector)
                    strengths.append(level)
    n = len(images)
    return FaceSet(
        images=np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        subjects=np.asarray(subjects, np.int32),
        expressions=np.asarray(exprs, np.int32),
        poses=np.asarray(pose_list, np.float32),
        gazes=["frontal"] * n,
        paths=[""] * n,
        subject_names=names,
        expression_names=tuple(EXPRESSIONS),
        extras={"identity": np.asarray(vecs, np.float32).reshape(n, IDENTITY_DIM),
                "intensity": np.asarray(strengths, np.float32)})


def render_ground_truth(identity_vectors, expressions, intensities, poses,
                        size: int = 128) -> np.ndarray:
    """Renders ``[N]`` faces from identity vectors, e.g. the targets of edits.

    Args:
      identity_vectors: ``[N, IDENTITY_DIM]`` from :meth:`Identity.to_vector`.
      expressions: ``[N]`` expression indices.
      intensities: ``[N]`` expression intensities.
      poses: ``[N]`` yaw angles in degrees.
      size: Image side.

    Returns:
      ``uint8 [N, size, size, 3]``.
    """
    vectors = np.asarray(identity_vectors, np.float32).reshape(-1, IDENTITY_DIM)
    expressions = np.asarray(expressions).reshape(-1)
    intensities = np.broadcast_to(np.asarray(intensities, np.float32), expressions.shape)
    poses = np.broadcast_to(np.asarray(poses, np.float32), expressions.shape)
    out = np.zeros((len(vectors), size, size, 3), np.uint8)
    for n, vector in enumerate(vectors):
        out[n] = render(Identity.from_vector(vector), int(expressions[n]), float(intensities[n]),
                        float(poses[n]), size)
    return out


# --------------------------------------------------------------------------
# Writing to disk.


def rafd_angle_code(pose: float) -> str:
    """RaFD's camera-angle code of a yaw: -90/-45/0/45/90 -> 000/045/090/135/180."""
    code = 90 + int(round(pose))
    if code not in (0, 45, 90, 135, 180):
        raise ValueError(f"RaFD has poses -90, -45, 0, 45 and 90 only, got {pose}.")
    return f"{code:03d}"


def rafd_demographics(seed: int, subject: int) -> tuple[str, str]:
    """Deterministic (ethnicity, gender) of a synthetic subject for RaFD names."""
    rng = np.random.default_rng([seed, subject, 0x2AFD])
    return (RAFD_ETHNICITIES[int(rng.integers(len(RAFD_ETHNICITIES)))],
            RAFD_GENDERS[int(rng.integers(len(RAFD_GENDERS)))])


def to_rafd_canvas(face: np.ndarray, background) -> np.ndarray:
    """Places a square render in a 681x1024 RaFD-like portrait.

    The render is upscaled (bicubic) into RaFD's face box so that cropping the
    box and resizing gives the render back.
    """
    from PIL import Image

    top, left, side = RAFD_BOX
    canvas = np.empty((RAFD_HEIGHT, RAFD_WIDTH, 3), np.uint8)
    canvas[:] = np.clip(np.asarray(background) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    big = Image.fromarray(face).resize((side, side), Image.BICUBIC)
    canvas[top:top + side, left:left + side] = np.asarray(big)
    return canvas


def write_dataset(out_dir: str, fmt: str = "rafd", num_subjects: int = 10, seed: int = 0,
                  poses: Sequence[float] = (-45.0, 0.0, 45.0),
                  expressions: Sequence[str] = EXPRESSIONS, intensity: float = 1.0,
                  first_subject: int = 0, size: int = 128, quality: int = 95,
                  progress=None) -> list[str]:
    """Writes synthetic faces as image files.

    Args:
      out_dir: Destination folder (created).
      fmt: ``"rafd"``: RaFD's file names and 681x1024 JPEG geometry,
        ``Rafd{angle}_{subject:02d}_{ethnicity}_{gender}_{expression}_frontal.jpg``
        with subjects numbered from 1; ``"folder"``:
        ``<expression>/<subject>_<pose>.png`` at ``size``.
      num_subjects: Number of identities.
      seed: Population seed.
      poses: Yaw angles in degrees.
      expressions: Expression names.
      intensity: Intensity of the non-neutral expressions.
      first_subject: Index of the first identity.
      size: Render side (the ``folder`` image size).
      quality: JPEG quality of ``rafd`` files.
      progress: Optional ``callable(done, total)``.

    Returns:
      The written paths, in writing order.
    """
    from PIL import Image

    if fmt not in ("rafd", "folder"):
        raise ValueError(f"fmt must be 'rafd' or 'folder', got {fmt!r}.")
    identities = make_identities(num_subjects, seed, first_subject)
    total = num_subjects * len(expressions) * len(poses)
    paths, done = [], 0
    os.makedirs(out_dir, exist_ok=True)
    for k, identity in enumerate(identities):
        index = first_subject + k
        ethnicity, gender = rafd_demographics(seed, index)
        for expression in expressions:
            e = expression_index(expression)
            for pose in poses:
                face = render(identity, e, intensity, pose, size)
                if fmt == "rafd":
                    name = (f"Rafd{rafd_angle_code(pose)}_{index + 1:02d}_{ethnicity}_{gender}_"
                            f"{EXPRESSIONS[e]}_frontal.jpg")
                    path = os.path.join(out_dir, name)
                    Image.fromarray(to_rafd_canvas(face, identity.background)).save(path, quality=quality)
                else:
                    folder = os.path.join(out_dir, EXPRESSIONS[e])
                    os.makedirs(folder, exist_ok=True)
                    path = os.path.join(folder, f"s{index:03d}_{pose:g}.png")
                    Image.fromarray(face).save(path)
                paths.append(path)
                done += 1
                if progress is not None:
                    progress(done, total)
    return paths


def contact_sheet(faces, rows: int, cols: int, column_labels: Sequence[str] | None = None,
                  row_labels: Sequence[str] | None = None, pad: int = 2) -> np.ndarray:
    """Tiles faces row-major into one image, with optional text labels.

    Args:
      faces: A :class:`FaceSet` or ``uint8 [N, S, S, 3]``; the first
        ``rows * cols`` are used.
      rows: Grid rows.
      cols: Grid columns.
      column_labels: Text above each column.
      row_labels: Text left of each row.
      pad: Pixels between tiles.

    Returns:
      ``uint8 [H, W, 3]`` image on a white background.
    """
    from PIL import Image, ImageDraw

    images = faces.images if isinstance(faces, FaceSet) else np.asarray(faces)
    if len(images) < rows * cols:
        raise ValueError(f"{rows}x{cols} grid needs {rows * cols} faces, got {len(images)}.")
    s = images.shape[1]
    top = 14 if column_labels else 0
    left = 34 if row_labels else 0
    sheet = np.full((top + rows * (s + pad) + pad, left + cols * (s + pad) + pad, 3), 255, np.uint8)
    for n in range(rows * cols):
        r, c = divmod(n, cols)
        y, x = top + pad + r * (s + pad), left + pad + c * (s + pad)
        sheet[y:y + s, x:x + s] = images[n]
    if column_labels or row_labels:
        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        for c, text in enumerate(column_labels or ()):
            x = left + pad + c * (s + pad) + s // 2
            draw.text((x, 2), str(text), fill=(0, 0, 0), anchor="ma")
        for r, text in enumerate(row_labels or ()):
            y = top + pad + r * (s + pad) + s // 2
            draw.text((2, y), str(text), fill=(0, 0, 0), anchor="lm")
        sheet = np.asarray(pil)
    return sheet


def expression_sheet(num_subjects: int = 6, seed: int = 0, pose: float = 0.0,
                     first_subject: int = 0, size: int = 128) -> np.ndarray:
    """A labelled grid: one row per subject, one column per expression.

    Args:
      num_subjects: Rows.
      seed: Population seed.
      pose: Yaw of every face.
      first_subject: Index of the first identity.
      size: Face side.

    Returns:
      ``uint8 [H, W, 3]`` image.
    """
    faces = render_face_set(num_subjects, seed, poses=(pose,), size=size,
                            first_subject=first_subject)
    return contact_sheet(faces, num_subjects, len(EXPRESSIONS), column_labels=EXPRESSIONS,
                         row_labels=faces.subject_names)
