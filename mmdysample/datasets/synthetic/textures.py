# Copyright (c) mmdysample contributors. All rights reserved.
"""The stuff background of a scene: its region layout and textures.

The background is split into two or three stuff regions (``sky`` on top
behind a wavy horizon, ``ground`` and optionally a band of ``water``), each
filled with its own procedural texture.
"""
from typing import Callable, Sequence, Tuple

import cv2
import numpy as np

from .metainfo import STUFF_CLASSES

__all__ = ['render_background']


def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  cells: int) -> np.ndarray:
    """Return smooth noise in ``[0, 1]`` made by upsampling a coarse grid."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    return np.clip(
        cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC),
        0.0, 1.0)


def _jitter_colour(rng: np.random.Generator, base: Sequence[float],
                   amount: float) -> np.ndarray:
    """Return ``base`` with every channel shifted by up to ``amount``."""
    colour = np.asarray(base, np.float32) + rng.uniform(-amount, amount, 3)
    return np.clip(colour, 0, 255).astype(np.float32)


def _wavy_line(rng: np.random.Generator, xs: np.ndarray, level: float,
               amplitude: float, width: int) -> np.ndarray:
    """Return the y coordinate of a wavy boundary for every column."""
    period = width * rng.uniform(0.4, 1.2)
    phase = rng.uniform(0, 2 * np.pi)
    ripple = rng.uniform(0, 0.3) * amplitude
    return (level + amplitude * np.sin(2 * np.pi * xs / period + phase) +
            ripple * np.sin(6 * np.pi * xs / period + 2 * phase))


def _sky_texture(rng: np.random.Generator, yy: np.ndarray,
                 xx: np.ndarray) -> np.ndarray:
    """Vertical blue gradient with soft white clouds."""
    height, width = yy.shape
    top = _jitter_colour(rng, (85, 145, 230), 20)
    bottom = _jitter_colour(rng, (185, 215, 245), 15)
    t = (yy / max(height - 1, 1))[..., None]
    tex = top * (1 - t) + bottom * t
    clouds = _smooth_noise(rng, height, width, int(rng.integers(3, 7)))
    cover = np.clip((clouds - rng.uniform(0.45, 0.7)) * 3.0, 0, 1)[..., None]
    tex = tex * (1 - 0.5 * cover) + 245.0 * 0.5 * cover
    return tex + rng.normal(0, 3, tex.shape)


def _ground_texture(rng: np.random.Generator, yy: np.ndarray,
                    xx: np.ndarray) -> np.ndarray:
    """Grass / dirt / gravel colour with one of several patterns."""
    height, width = yy.shape
    families = ((95, 140, 60), (140, 105, 70), (120, 120, 105))
    base = _jitter_colour(rng, families[rng.integers(len(families))], 15)
    kind = int(rng.integers(4))
    if kind == 0:  # oblique stripes
        theta = rng.uniform(0, np.pi)
        wavelength = rng.uniform(6, 16)
        coord = xx * np.cos(theta) + yy * np.sin(theta)
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * coord / wavelength)
    elif kind == 1:  # checker board
        cell = int(rng.integers(6, 17))
        pattern = ((xx // cell + yy // cell) % 2).astype(np.float32)
    elif kind == 2:  # blotches
        pattern = _smooth_noise(rng, height, width, int(rng.integers(6, 14)))
    else:  # grid of lines
        cell = int(rng.integers(8, 20))
        pattern = (((xx % cell) < 2) | ((yy % cell) < 2)).astype(np.float32)
    amplitude = rng.uniform(14, 26)
    tint = rng.uniform(0.7, 1.0, 3).astype(np.float32)
    shade = 1.0 - 0.15 * (yy / max(height - 1, 1))
    tex = (base + amplitude * (pattern[..., None] - 0.5) * tint)
    tex = tex * shade[..., None]
    return tex + rng.normal(0, 5, tex.shape)


def _water_texture(rng: np.random.Generator, yy: np.ndarray,
                   xx: np.ndarray) -> np.ndarray:
    """Dark blue-teal with horizontal wavy ripples."""
    base = _jitter_colour(rng, (40, 90, 150), 15)
    wavelength = rng.uniform(4, 9)
    wobble = rng.uniform(20, 60)
    ripples = np.sin(2 * np.pi * yy / wavelength +
                     1.5 * np.sin(2 * np.pi * xx / wobble))
    tex = base + rng.uniform(12, 22) * ripples[..., None] * np.array(
        [0.6, 0.9, 1.0], np.float32)
    return tex + rng.normal(0, 4, tex.shape)


_STUFF_TEXTURES: Tuple[Callable, ...] = (_sky_texture, _ground_texture,
                                         _water_texture)


def _stuff_layout(rng: np.random.Generator, yy: np.ndarray,
                  xx: np.ndarray) -> np.ndarray:
    """Return the stuff index of every pixel (sky / ground / water)."""
    height, width = yy.shape
    xs = np.arange(width, dtype=np.float32)
    horizon = _wavy_line(rng, xs, height * rng.uniform(0.25, 0.5),
                         height * rng.uniform(0.02, 0.07), width)
    stuff = np.full((height, width), STUFF_CLASSES.index('ground'), np.int64)
    layout = rng.random()
    if layout < 0.3:  # water directly below the horizon, ground in front
        shore = _wavy_line(rng, xs, height * rng.uniform(0.6, 0.75),
                           height * rng.uniform(0.01, 0.04), width)
        stuff[yy < shore[None, :]] = STUFF_CLASSES.index('water')
    elif layout < 0.6:  # ground then water in the foreground
        shore = _wavy_line(rng, xs, height * rng.uniform(0.65, 0.85),
                           height * rng.uniform(0.01, 0.04), width)
        stuff[yy >= shore[None, :]] = STUFF_CLASSES.index('water')
    stuff[yy < horizon[None, :]] = STUFF_CLASSES.index('sky')
    return stuff


def render_background(rng: np.random.Generator, height: int,
                      width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Lay out the stuff regions and fill each with its texture.

    Args:
        rng (np.random.Generator): Source of randomness.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: The ``(H, W, 3)`` float32 RGB
        image (not yet rounded or clipped) and the ``(H, W)`` int64 index
        into :data:`STUFF_CLASSES` of every pixel.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    stuff_map = _stuff_layout(rng, yy, xx)
    image = np.zeros((height, width, 3), np.float32)
    for idx, texture in enumerate(_STUFF_TEXTURES):
        # Every texture consumes randomness even when the region is empty,
        # which keeps later draws independent of the layout.
        tex = texture(rng, yy, xx)
        region = stuff_map == idx
        image[region] = tex[region]
    return image, stuff_map
