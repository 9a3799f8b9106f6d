"""The drawing machinery under every synthetic face.

Shapes are implicit functions ``f(x, y)`` (negative inside) whose coverage is
``clip(0.5 - f / |grad f|, 0, 1)`` (:func:`_cover`), which gives a one-pixel
anti-aliased edge whatever the units of ``f``; each feature is evaluated only
inside its own small window of the canvas. Geometry is in "128-units" (pixels
of a 128x128 render) and scales with ``size``.

Pose is head yaw in degrees (positive turns the face towards the image's
right), a 2.5-D approximation in which each row of the head is a deep skull
ellipse joined to a flatter face ellipse, seen from a rotated camera
(:class:`_HeadCanvas`).
"""

from __future__ import annotations

import math

import numpy as np

from leed_tf.data.synthetic.identity import Identity


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


class _HeadCanvas:
    """A canvas and the posed head model that features are drawn through.

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
