# Copyright (c) mmdysample contributors. All rights reserved.
"""The stuff background of a fine scene: fine borders and thin structures.

The regions of the default background (``sky``, ``ground``, ``water``, with
their textures from :mod:`.textures`) get borders with detail at the scale
of a few pixels: a band of ``foliage`` with a toothed top (blades and tree
tops 2-8 px apart) between the sky and the ground, and a shore whose wavy
line carries a ripple or a crenellation of 3-10 px period. In front of them
stand the thin stuff structures: a ``fence`` of pickets 1-3 px wide with
rails of 1-2 px, and one to four ``wire``\\ s of 1-3 px, sagging across the
image or straight at any angle.

Widths and periods are in pixels and do not grow with the image: they are
what an output stride of 4 or 8 cannot resolve. Band heights and positions
scale with the image height.
"""
from typing import Tuple

import cv2
import numpy as np

from .metainfo import FINE_STUFF_CLASSES, FINE_STUFF_PALETTE
from .textures import (_ground_texture, _jitter_colour, _sky_texture,
                       _smooth_noise, _water_texture, _wavy_line)

__all__ = ['render_fine_background']

_SKY, _GROUND, _WATER, _FOLIAGE, _FENCE, _WIRE = (
    FINE_STUFF_CLASSES.index(name)
    for name in ('sky', 'ground', 'water', 'foliage', 'fence', 'wire'))

_FOLIAGE_PROB = 0.85
_FENCE_PROB = 0.6
_MAX_WIRES = 4
_WIRE_THICKNESS = (1, 1, 2, 3)  # cv2 thickness: 1, 1, 2-3 and 3-4 px
_STRAIGHT_WIRE_PROB = 0.3
_SUBPIXEL_SHIFT = 4  # cv2 fractional bits used when drawing wires


def _teeth(rng: np.random.Generator, xs: np.ndarray,
           amplitude: float) -> np.ndarray:
    """Height above the base line of a row of sharp teeth, per column.

    Each tooth of the row has its own height in ``[0.3, 1] * amplitude``;
    teeth are 3-8 px apart, so their tips are 1-4 px wide.
    """
    period = rng.uniform(3.0, 8.0)
    phase = rng.uniform(0.0, period)
    position = (xs + phase) / period
    index = np.floor(position).astype(np.int64)
    frac = position - index
    heights = amplitude * rng.uniform(0.3, 1.0, int(index.max()) + 1)
    sharpness = rng.uniform(1.0, 2.0)
    return heights[index] * (1.0 - np.abs(2.0 * frac - 1.0))**sharpness


def _ripple(rng: np.random.Generator, xs: np.ndarray) -> np.ndarray:
    """A fine ripple of 3-10 px period: a sine or a crenellation."""
    period = rng.uniform(3.0, 10.0)
    amplitude = rng.uniform(1.0, 3.0)
    wave = np.sin(2 * np.pi * xs / period + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:
        wave = np.sign(wave)
    return amplitude * wave


def _fine_layout(rng: np.random.Generator, yy: np.ndarray,
                 xx: np.ndarray) -> np.ndarray:
    """The sky / foliage / ground / water regions with fine borders."""
    height, width = yy.shape
    xs = np.arange(width, dtype=np.float32)
    horizon = _wavy_line(rng, xs, height * rng.uniform(0.3, 0.5),
                         height * rng.uniform(0.02, 0.06), width)
    horizon = horizon + _ripple(rng, xs) * 0.5
    stuff = np.full((height, width), _GROUND, np.int64)
    layout = rng.random()
    if layout < 0.6:  # a shore: water behind (< 0.3) or in front
        behind = layout < 0.3
        level = rng.uniform(0.6, 0.75) if behind else rng.uniform(0.7, 0.85)
        shore = _wavy_line(rng, xs, height * level,
                           height * rng.uniform(0.01, 0.04), width)
        shore = shore + _ripple(rng, xs)
        water = yy < shore[None, :] if behind else yy >= shore[None, :]
        stuff[water] = _WATER
    if rng.random() < _FOLIAGE_PROB:
        thickness = height * rng.uniform(0.02, 0.1)
        top = horizon - thickness - _teeth(rng, xs, rng.uniform(3.0, 10.0))
        stuff[yy < horizon[None, :]] = _FOLIAGE
        stuff[yy < top[None, :]] = _SKY
    else:
        stuff[yy < horizon[None, :]] = _SKY
    return stuff


def _fence_mask(rng: np.random.Generator, yy: np.ndarray,
                xx: np.ndarray) -> np.ndarray:
    """Pickets 1-3 px wide, 4-9 px apart, joined by two thin rails."""
    height, width = yy.shape
    bottom = height * rng.uniform(0.55, 0.9) + rng.uniform(
        -0.15, 0.15) * (xx - width / 2)
    top = bottom - height * rng.uniform(0.06, 0.16)
    period = rng.uniform(4.0, 9.0)
    picket = int(rng.integers(1, 4))
    phase = rng.uniform(0.0, period)
    band = (yy >= top) & (yy < bottom)
    if rng.random() < 0.5:
        x0 = rng.uniform(0, 0.5) * width
        band &= (xx >= x0) & (xx < x0 + rng.uniform(0.3, 0.7) * width)
    pickets = ((xx + phase) % period) < picket
    rails = np.zeros_like(band)
    for level in (rng.uniform(0.15, 0.35), rng.uniform(0.6, 0.85)):
        rail_y = np.floor(top + level * (bottom - top))
        rails |= (yy >= rail_y) & (yy < rail_y + int(rng.integers(1, 3)))
    return band & (pickets | rails)


def _wire_mask(rng: np.random.Generator, height: int,
               width: int) -> np.ndarray:
    """One to four wires of 1-3 px, sagging or straight, edge to edge."""
    mask = np.zeros((height, width), np.uint8)
    scale = 1 << _SUBPIXEL_SHIFT
    for _ in range(int(rng.integers(1, _MAX_WIRES + 1))):
        thickness = int(rng.choice(_WIRE_THICKNESS))
        if rng.random() < _STRAIGHT_WIRE_PROB:
            angle = rng.uniform(0, np.pi)
            centre = rng.uniform(0, 1, 2) * (width, height)
            reach = np.hypot(height, width)
            t = np.array([-reach, reach])
            points = centre + t[:, None] * (np.cos(angle), np.sin(angle))
        else:  # a catenary-like sag between two posts outside the image
            xs = np.linspace(-0.1 * width, 1.1 * width, max(8, width // 2))
            y_left, y_right = rng.uniform(0.05, 0.65, 2) * height
            sag = rng.uniform(0.0, 0.2) * height
            u = (xs - xs[0]) / (xs[-1] - xs[0])
            ys = y_left + (y_right - y_left) * u + sag * 4 * u * (1 - u)
            points = np.stack([xs, ys], axis=1)
        pts = np.round(points * scale).astype(np.int32)
        cv2.polylines(mask, [pts], False, 1, thickness, cv2.LINE_8,
                      _SUBPIXEL_SHIFT)
    return mask.astype(bool)


def _foliage_texture(rng: np.random.Generator, yy: np.ndarray,
                     xx: np.ndarray) -> np.ndarray:
    """Dark green leaves: blotches of two scales and fine speckle."""
    height, width = yy.shape
    base = _jitter_colour(rng, FINE_STUFF_PALETTE[_FOLIAGE], 12)
    leaves = (_smooth_noise(rng, height, width, int(rng.integers(12, 24))) +
              _smooth_noise(rng, height, width, int(rng.integers(30, 48))))
    tex = base * (0.75 + 0.25 * leaves[..., None])
    return tex + rng.normal(0, 6, tex.shape)


def _flat_texture(rng: np.random.Generator, colour: Tuple[int, int, int],
                  shape: Tuple[int, int]) -> np.ndarray:
    """A jittered flat colour with light noise (fence paint, wire)."""
    tex = np.broadcast_to(_jitter_colour(rng, colour, 15), shape + (3, ))
    return tex + rng.normal(0, 4, shape + (3, ))


def render_fine_background(rng: np.random.Generator, height: int,
                           width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Lay out the fine stuff regions and structures and texture them.

    Args:
        rng (np.random.Generator): Source of randomness.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: The ``(H, W, 3)`` float32 RGB
        image (not yet rounded or clipped) and the ``(H, W)`` int64 index
        into :data:`FINE_STUFF_CLASSES` of every pixel.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    stuff_map = _fine_layout(rng, yy, xx)
    if rng.random() < _FENCE_PROB:
        stuff_map[_fence_mask(rng, yy, xx)] = _FENCE
    stuff_map[_wire_mask(rng, height, width)] = _WIRE
    textures = (
        _sky_texture(rng, yy, xx),
        _ground_texture(rng, yy, xx),
        _water_texture(rng, yy, xx),
        _foliage_texture(rng, yy, xx),
        _flat_texture(rng, FINE_STUFF_PALETTE[_FENCE], (height, width)),
        _flat_texture(rng, FINE_STUFF_PALETTE[_WIRE], (height, width)),
    )
    image = np.zeros((height, width, 3), np.float32)
    for idx, tex in enumerate(textures):
        region = stuff_map == idx
        image[region] = tex[region]
    return image, stuff_map
