"""Procedural synthetic faces: the built-in data set that needs no download.

Every face is drawn from three separate groups of parameters:

* identity (:class:`Identity`): face shape, skin, hair, eyes, nose, mouth,
  ears, clothes and background colour;
* expression: one of the eight RaFD categories, expressed as a vector of
  facial action intensities (brow raise, lip-corner pull, jaw drop, ...)
  scaled by ``intensity``, so that intensity 0 is exactly the neutral face;
* pose: head yaw in degrees (positive turns the face towards the image's
  right).

Because the three are independent, every edit has a ground truth:
``render(identity_a, expression_b)`` is what editing ``a`` towards ``b``
should give (docs/design.md §4 and §5).

Modules:

* ``identity``: :class:`Identity`, its palettes and sampling
  (:func:`sample_identity`, :func:`make_identities`), the expression and
  facial action tables (``EXPRESSIONS``, ``ACTIONS``, ``EXPRESSION_ACTIONS``)
  with :func:`expression_index` and :func:`expression_actions`;
* ``geometry``: the drawing machinery: anti-aliased implicit shapes
  (``_cover``, ``_segment``) and the posed head model and canvas
  (``_HeadCanvas``);
* ``face``: the face renderer ``_Face`` (the layers, back to front) and
  :func:`render`;
* ``sets``: face sets (:func:`render_face_set`, :func:`render_ground_truth`,
  :func:`expression_sheet`) and the on-disk writer (:func:`write_dataset`,
  :func:`to_rafd_canvas`, :func:`rafd_angle_code`, :func:`rafd_demographics`).

``contact_sheet`` is defined in :mod:`leed_tf.data.sheets` and re-exported
here for existing callers.
"""

from leed_tf.data.sheets import contact_sheet
from leed_tf.data.synthetic.face import render
from leed_tf.data.synthetic.identity import (ACTIONS, EXPRESSION_ACTIONS, EXPRESSIONS, HAIR_STYLES,
                                             IDENTITY_DIM, NEUTRAL_INDEX, Identity, expression_actions,
                                             expression_index, make_identities, sample_identity)
from leed_tf.data.synthetic.sets import (RAFD_ETHNICITIES, RAFD_GENDERS, expression_sheet,
                                         rafd_angle_code, rafd_demographics, render_face_set,
                                         render_ground_truth, to_rafd_canvas, write_dataset)

__all__ = [
    # identity
    "ACTIONS", "EXPRESSION_ACTIONS", "EXPRESSIONS", "HAIR_STYLES", "IDENTITY_DIM", "NEUTRAL_INDEX",
    "Identity", "expression_actions", "expression_index", "make_identities", "sample_identity",
    # face
    "render",
    # sets
    "RAFD_ETHNICITIES", "RAFD_GENDERS", "expression_sheet", "rafd_angle_code", "rafd_demographics",
    "render_face_set", "render_ground_truth", "to_rafd_canvas", "write_dataset",
    # leed_tf.data.sheets
    "contact_sheet",
]
