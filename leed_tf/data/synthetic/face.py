"""The synthetic face renderer: :class:`_Face` paints the layers of one face
through the head model of :class:`~leed_tf.data.synthetic.geometry._HeadCanvas`
(see that module for the drawing conventions), and :func:`render` is its
public entry point.

Expressions change only the facial features; the head's outline, hair,
ears, clothes and background never depend on the expression, so an
expression edit can only change pixels inside the face.
"""

from __future__ import annotations

import math

import numpy as np

from leed_tf.data.synthetic.geometry import _FACE_DEPTH, _HEAD_DEPTH, _HeadCanvas, _cover, _segment
from leed_tf.data.synthetic.identity import HAIR_STYLES, Identity, expression_actions


class _Face(_HeadCanvas):
    """Renders one face, layer by layer, back to front."""

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

