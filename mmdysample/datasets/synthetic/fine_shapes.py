# Copyright (c) mmdysample contributors. All rights reserved.
"""The things of a fine scene: small shapes and thin-walled ones.

Six to fourteen instances of :data:`FINE_THING_CLASSES`: the default
shapes (:mod:`.shapes`) mostly small, 4-16 px across (a quarter of them
16-40 px), an open ``ring`` (an elliptic arc with a wall of 1-4 px, 10-48
px across, whose gap keeps it free of holes) and a ``cross`` (two bars of
1-4 px, 8-30 px long). As in the default scenes later things occlude
earlier ones; a placement is kept only if every visible part is one
connected region without holes (so the COCO polygons describe it exactly)
and keeps at least 40 % of its pixels.
"""
from typing import List, Tuple

import cv2
import numpy as np

from .metainfo import FINE_THING_CLASSES, FINE_THING_PALETTE
from .shapes import (_is_simple_region, _rasterise, _shape_polygon,
                     _visible_masks)
from .textures import _jitter_colour

__all__ = ['place_fine_things']

_RING, _CROSS = FINE_THING_CLASSES.index('ring'), FINE_THING_CLASSES.index(
    'cross')
_NUM_THINGS = (6, 15)  # [low, high) things per scene
_SMALL_SIZE = (4.0, 16.0)  # px, extent of the small default shapes
_MEDIUM_SIZE = (16.0, 40.0)  # px, the other quarter
_MEDIUM_PROB = 0.25
_RING_SIZE = (10.0, 48.0)
_CROSS_SIZE = (8.0, 30.0)
_THICKNESS = (1, 2, 3)  # cv2 thickness of rings and crosses: 1-4 px
_MAX_FRACTION = 0.45  # largest extent as a fraction of min(H, W)
_MIN_VISIBLE_AREA = 6  # pixels
_MIN_VISIBLE_FRACTION = 0.4
_PLACEMENT_TRIES = 25
_COLOUR_JITTER = 20.0
_SUBPIXEL_SHIFT = 4  # cv2 fractional bits used when drawing


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(low * (high / low)**rng.random())


def _fixed(points: np.ndarray) -> np.ndarray:
    """Coordinates in cv2's fixed point (:data:`_SUBPIXEL_SHIFT` bits)."""
    return np.round(points * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)


def _ring_points(rng: np.random.Generator, size: float) -> np.ndarray:
    """The centre line of an open elliptic ring of extent ``size``."""
    radius_x = size / 2
    radius_y = radius_x * rng.uniform(0.6, 1.0)
    # the gap is at least 4 px at the smaller radius, so thick walls and
    # the 8-connected rasterisation do not close it into a hole
    gap = max(rng.uniform(0.5, 1.2), 4.0 / radius_y)
    start = rng.uniform(0, 2 * np.pi)
    angles = np.linspace(start + gap / 2, start + 2 * np.pi - gap / 2,
                         max(16, int(2 * size)))
    tilt = rng.uniform(0, np.pi)
    xs, ys = radius_x * np.cos(angles), radius_y * np.sin(angles)
    return np.stack([
        xs * np.cos(tilt) - ys * np.sin(tilt),
        xs * np.sin(tilt) + ys * np.cos(tilt)
    ], axis=1)


def _cross_points(rng: np.random.Generator, size: float) -> np.ndarray:
    """The two bars of a cross of extent ``size``, as ``(2, 2, 2)``."""
    angle = rng.uniform(0, np.pi)
    bars = []
    for turn in (0.0, rng.uniform(0.35, 0.65) * np.pi):
        direction = np.array([np.cos(angle + turn), np.sin(angle + turn)])
        bars.append(np.stack([-direction, direction]) * size / 2)
    return np.stack(bars)


def _draw_thing(rng: np.random.Generator, label: int, size: float,
                height: int, width: int) -> np.ndarray:
    """Draw a thing at a random place; return its ``(H, W)`` bool mask."""
    if label == _RING:
        strokes = [_ring_points(rng, size)]
    elif label == _CROSS:
        strokes = list(_cross_points(rng, size))
    else:  # the default shapes have the same index in both class lists
        strokes = [_shape_polygon(rng, label, size, (0.0, 0.0))]
    thickness = (int(rng.choice(_THICKNESS))
                 if label in (_RING, _CROSS) else 0)
    pad = thickness / 2
    low = np.min([s.min(axis=0) for s in strokes], axis=0) - pad
    high = np.max([s.max(axis=0) for s in strokes], axis=0) + pad
    centre = np.array([
        rng.uniform(-lo, limit - 1 - hi) if limit - 1 - hi > -lo else
        (limit - 1 - hi - lo) / 2
        for lo, hi, limit in zip(low, high, (width, height))
    ])
    if not thickness:
        return _rasterise(strokes[0] + centre, height, width)
    mask = np.zeros((height, width), np.uint8)
    cv2.polylines(mask, [_fixed(s + centre) for s in strokes], False, 1,
                  thickness, cv2.LINE_8, _SUBPIXEL_SHIFT)
    return mask.astype(bool)


def _thing_size(rng: np.random.Generator, label: int, side: int) -> float:
    """Extent in pixels of a thing of class ``label``."""
    if label == _RING:
        low, high = _RING_SIZE
    elif label == _CROSS:
        low, high = _CROSS_SIZE
    elif rng.random() < _MEDIUM_PROB:
        low, high = _MEDIUM_SIZE
    else:
        low, high = _SMALL_SIZE
    high = min(high, max(low, _MAX_FRACTION * side))
    return _log_uniform(rng, low, high)


def _placement_ok(masks: List[np.ndarray]) -> bool:
    """Every visible part is large enough, connected and hole-free."""
    for full, vis in zip(masks, _visible_masks(masks)):
        area = int(vis.sum())
        if area < max(_MIN_VISIBLE_AREA, _MIN_VISIBLE_FRACTION * full.sum()):
            return False
        if not _is_simple_region(vis):
            return False
    return True


def place_fine_things(
    rng: np.random.Generator, height: int, width: int
) -> Tuple[List[np.ndarray], List[int], List[np.ndarray]]:
    """Choose, size, place and colour the things of one fine scene.

    Args:
        rng (np.random.Generator): Source of randomness.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        tuple[list[np.ndarray], list[int], list[np.ndarray]]: In drawing
        order, the ``(H, W)`` bool mask of every thing before occlusion,
        its index into :data:`FINE_THING_CLASSES` and its float32 RGB
        colour.
    """
    side = min(height, width)
    masks: List[np.ndarray] = []
    labels: List[int] = []
    colours: List[np.ndarray] = []
    for _ in range(int(rng.integers(*_NUM_THINGS))):
        label = int(rng.integers(len(FINE_THING_CLASSES)))
        for _try in range(_PLACEMENT_TRIES):
            size = _thing_size(rng, label, side)
            mask = _draw_thing(rng, label, size, height, width)
            if _placement_ok(masks + [mask]):
                break
        else:
            continue
        masks.append(mask)
        labels.append(label)
        colours.append(
            _jitter_colour(rng, FINE_THING_PALETTE[label], _COLOUR_JITTER))
    return masks, labels, colours
