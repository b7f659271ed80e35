"""Draw a synthetic face: identity traits seen through one image's nuisance (PIL + NumPy)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facetrain.data.synth.identity import Identity
from facetrain.data.synth.nuisance import Nuisance

__all__ = ["render_face"]

CANVAS = (192, 224)  # (width, height): twice the 96x112 aligned crop


def _shade(colour, factor: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, c * factor))) for c in colour)


def _ellipse(draw: ImageDraw.ImageDraw, cx, cy, rx, ry, **kw) -> None:
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], **kw)


def _draw_background(rng: np.random.Generator, nz: Nuisance) -> Image.Image:
    half = (CANVAS[0] // 2, CANVAS[1] // 2)  # drawn and blurred at half size: it is out of focus anyway
    img = Image.new("RGB", half, nz.background)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):  # clutter
        x, y = rng.integers(0, half[0]), rng.integers(0, half[1])
        r = rng.integers(5, 30)
        draw.rectangle([x - r, y - r, x + r, y + r // 2], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img.filter(ImageFilter.GaussianBlur(1.5)).resize(CANVAS, Image.Resampling.BILINEAR)


def _draw_face(ident: Identity, nz: Nuisance) -> Image.Image:
    """The face on a transparent layer, with yaw and pitch moving the inner features."""
    layer = Image.new("RGBA", CANVAS, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx, cy = CANVAS[0] / 2, CANVAS[1] / 2 + 4
    sy, sp = math.sin(nz.yaw), math.sin(nz.pitch)
    rx = ident.face_rx * (1 - 0.12 * abs(sy))
    fx = cx + 0.55 * ident.face_rx * sy  # inner features slide with yaw
    fy = cy + 0.35 * ident.face_ry * sp
    hair, skin = ident.hair + (255,), ident.skin + (255,)

    if ident.hair_style == 1:  # long hair falls behind the face
        d.rounded_rectangle([cx - rx - 14, cy - ident.face_ry - 10, cx + rx + 14, cy + ident.face_ry + 30],
                            radius=40, fill=hair)
    for side in (-1, 1):  # ears; the far one hides as the head turns
        if side * sy > -0.45:
            ex = cx + side * (rx - 2) - 0.3 * ident.face_rx * sy
            _ellipse(d, ex, fy + 2, ident.ear * 0.6, ident.ear, fill=_shade(ident.skin, 0.9) + (255,))
    _ellipse(d, cx, cy, rx, ident.face_ry, fill=skin)
    chin_w = rx * (0.9 - 0.6 * ident.chin)
    d.polygon([(cx - rx * 0.95, cy + 10), (cx + rx * 0.95, cy + 10),
               (fx + chin_w, cy + ident.face_ry + 6 * ident.chin), (fx - chin_w, cy + ident.face_ry + 6 * ident.chin)],
              fill=skin)
    if ident.beard > 0:
        beard = ident.hair + (int(160 + 95 * ident.beard),)
        d.chord([cx - rx, cy - 10, cx + rx, cy + ident.face_ry + 8 * ident.chin], 10, 170, fill=beard)
    top = cy - ident.face_ry
    line = top + 12 + 22 * ident.hairline * (1.8 if ident.hair_style == 2 else 1.0)
    if ident.hair_style != 2 or ident.hairline < 0.6:
        d.chord([cx - rx - 3, top - 8 - (14 if ident.hair_style == 4 else 0), cx + rx + 3, 2 * line - top + 8],
                180, 360, fill=hair)
    if ident.hair_style == 3:  # fringe
        d.rectangle([cx - rx * 0.8, line - 4, cx + rx * 0.8, line + 10], fill=hair)

    eye_y = fy + ident.eye_y
    for side in (-1, 1):
        scale = 1 - 0.25 * side * sy  # the far eye looks smaller
        ex = fx + side * ident.eye_dx * (1 - 0.2 * abs(sy))
        erx, ery = ident.eye_rx * scale, ident.eye_ry * nz.eye_open
        _ellipse(d, ex, eye_y, erx, max(ery, 0.8), fill=(245, 245, 240, 255))
        if nz.eye_open > 0.3:
            _ellipse(d, ex + 3 * sy, eye_y, ery * 0.95, ery * 0.95, fill=ident.iris + (255,))
            _ellipse(d, ex + 3 * sy, eye_y, ery * 0.4, ery * 0.4, fill=(10, 10, 10, 255))
        by = eye_y - ident.brow_gap
        slant = side * ident.brow_slant * erx
        d.line([(ex - erx * 1.2, by + slant), (ex + erx * 1.2, by - slant)],
               fill=_shade(ident.hair, 0.8) + (255,), width=max(1, int(ident.brow_thick)))

    nose_len = ident.nose_len * (1 - 0.3 * abs(sp))
    nx = fx + 0.25 * ident.face_rx * sy  # the nose tip sticks out, so it moves further
    d.line([(fx + 2 * sy, eye_y + 4), (nx, eye_y + nose_len)], fill=_shade(ident.skin, 0.75) + (255,), width=3)
    for side in (-1, 1):
        _ellipse(d, nx + side * ident.nose_w / 2, eye_y + nose_len, 2.5, 2, fill=_shade(ident.skin, 0.55) + (255,))

    my = fy + ident.mouth_y
    mw = ident.mouth_w * (1 - 0.25 * abs(sy))
    curve = 6 * nz.smile
    top, bottom = my - ident.lip_thick - curve, my + ident.lip_thick + curve
    if bottom < top:  # a frown deeper than thin lips are thick: a line of a mouth, not a box inside out
        top = bottom = my
    d.chord([fx - mw, top, fx + mw, bottom], 0, 180, fill=ident.lip + (255,))
    if ident.moustache:
        d.line([(fx - mw * 0.9, my - ident.lip_thick - 3), (fx + mw * 0.9, my - ident.lip_thick - 3)],
               fill=ident.hair + (255,), width=4)
    if ident.mole is not None:
        _ellipse(d, fx + ident.mole[0] * rx, fy + ident.mole[1] * ident.face_ry, 2.2, 2.2, fill=(60, 40, 30, 255))
    if ident.glasses and nz.keep_glasses:
        for side in (-1, 1):
            ex = fx + side * ident.eye_dx * (1 - 0.2 * abs(sy))
            box = [ex - ident.eye_rx * 1.5, eye_y - 9, ex + ident.eye_rx * 1.5, eye_y + 9]
            if ident.glasses == 1:
                d.ellipse(box, outline=(30, 30, 30, 255), width=2)
            else:
                d.rectangle(box, outline=(30, 30, 30, 255), width=2)
        d.line([(fx - ident.eye_dx + ident.eye_rx * 1.5, eye_y), (fx + ident.eye_dx - ident.eye_rx * 1.5, eye_y)],
               fill=(30, 30, 30, 255), width=2)
    return layer


def _frame(layer: Image.Image, nz: Nuisance) -> Image.Image:
    """Roll, scale and shift the face layer about the canvas centre."""
    cx, cy = CANVAS[0] / 2, CANVAS[1] / 2
    a = math.radians(nz.roll)
    cos_a, sin_a = math.cos(a) / nz.scale, math.sin(a) / nz.scale
    tx, ty = cx + nz.shift[0], cy + nz.shift[1]
    # inverse map: output pixel -> input pixel
    coeffs = (cos_a, sin_a, cx - cos_a * tx - sin_a * ty, -sin_a, cos_a, cy + sin_a * tx - cos_a * ty)
    return layer.transform(CANVAS, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def _occlude(img: Image.Image, nz: Nuisance) -> None:
    d = ImageDraw.Draw(img)
    w, h = CANVAS
    ox, oy = nz.occlusion_pos
    if nz.occlusion == 1:  # a bar over the eyes (sunglasses, a hat brim)
        y = h * (0.42 + 0.05 * oy)
        d.rectangle([w * 0.15, y - 14, w * 0.85, y + 14], fill=nz.occlusion_colour)
    elif nz.occlusion == 2:  # the lower face (scarf, mask, microphone)
        d.rectangle([w * 0.1, h * (0.68 + 0.06 * oy), w * 0.9, h], fill=nz.occlusion_colour)
    elif nz.occlusion == 3:  # a hand or object from a side
        x = w * (0.5 + 0.35 * ox)
        d.ellipse([x - 40, h * (0.45 + 0.2 * oy) - 50, x + 40, h * (0.45 + 0.2 * oy) + 50], fill=nz.occlusion_colour)


def _light(img: Image.Image, nz: Nuisance) -> Image.Image:
    """Directional illumination and a colour cast, as a multiplicative field."""
    w, h = img.size
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    field = nz.gain * (1 + nz.light_strength * (xs * math.cos(nz.light_angle) + ys * math.sin(nz.light_angle)))
    arr = np.asarray(img, dtype=np.float32) * field[..., None] * np.array(nz.tint, dtype=np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _degrade(img: Image.Image, nz: Nuisance, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Down-sampling, blur and noise growing with the (long-tailed) quality level."""
    q = nz.quality
    if q > 0.05:
        factor = 1 + 4 * q
        small = (max(8, int(size[0] / factor)), max(8, int(size[1] / factor)))
        img = img.resize(small, Image.Resampling.BILINEAR).resize(size, Image.Resampling.BILINEAR)
        img = img.filter(ImageFilter.GaussianBlur(2.0 * q))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 2 + 12 * q, (size[1], size[0], 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def render_face(ident: Identity, nz: Nuisance, rng: np.random.Generator, size: tuple[int, int] = (96, 112)
                ) -> Image.Image:
    """One RGB image of `ident` under `nz`, `size` = (width, height)."""
    img = _draw_background(rng, nz)
    face = _frame(_draw_face(ident, nz), nz)
    img.paste(face, (0, 0), face)
    if nz.occlusion:
        _occlude(img, nz)
    return _degrade(_light(img.resize(size, Image.Resampling.BOX), nz), nz, size, rng)
