"""Who a synthetic face is, and what its expressions do.

:class:`Identity` holds everything about a person but expression and pose;
:func:`sample_identity` / :func:`make_identities` draw them from the colour
palettes below. An expression is a point in the space of facial ``ACTIONS``
(``EXPRESSION_ACTIONS``), scaled by ``intensity`` so that intensity 0 is
exactly the neutral face.
"""

from __future__ import annotations

import colorsys
import dataclasses
from dataclasses import dataclass

import numpy as np

from leed_tf.data.records import RAFD_EXPRESSIONS

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
