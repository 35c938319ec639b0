# Copyright (c) mmdysample contributors. All rights reserved.
"""The things of a scene: shape polygons, placement and painting.

Two to six instances of :data:`THING_CLASSES` are placed one after the
other; later shapes occlude earlier ones, and a placement is kept only if
every instance still shows a large, simple (connected, hole-free) region.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .metainfo import THING_CLASSES, THING_PALETTE
from .textures import _jitter_colour

__all__ = ['place_things', 'paint_things']

# Sizes and placement rules of the things.
_MIN_THING_SIZE = 12.0  # pixels, extent of the smallest shape
_MAX_THING_FRACTION = 0.45  # largest extent as a fraction of min(H, W)
_SIZE_SKEW = 0.75  # < 1 favours larger shapes (median ~38 px at 192 px)
_MIN_VISIBLE_AREA = 30  # pixels; smaller visible parts are dropped
_MIN_VISIBLE_FRACTION = 0.4  # of the unoccluded area
_PLACEMENT_TRIES = 25
_COLOUR_SWAP_PROB = 0.1  # chance that a thing borrows another colour
_SUBPIXEL_SHIFT = 4  # cv2 fractional bits used when rasterising shapes


def _shape_polygon(rng: np.random.Generator, label: int, size: float,
                   centre: Tuple[float, float]) -> np.ndarray:
    """Return the vertices of a thing of class ``label`` as ``(N, 2)``."""
    cx, cy = centre
    name = THING_CLASSES[label]
    if name == 'circle':
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radii = np.full(64, size / 2)
    elif name == 'rectangle':
        long_side = size
        short_side = size * rng.uniform(0.45, 1.0)
        theta = np.deg2rad(rng.uniform(-30, 30))
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]],
                           np.float64) * [long_side / 2, short_side / 2]
        if rng.random() < 0.5:
            corners = corners[:, ::-1]
        rot = np.array([[np.cos(theta), -np.sin(theta)],
                        [np.sin(theta), np.cos(theta)]])
        return corners @ rot.T + [cx, cy]
    elif name == 'triangle':
        base_angle = rng.uniform(0, 2 * np.pi)
        angles = (base_angle + np.arange(3) * 2 * np.pi / 3 +
                  np.deg2rad(rng.uniform(-10, 10, 3)))
        radii = size / 1.6 * rng.uniform(0.9, 1.1, 3)
    else:  # star
        points = 5
        base_angle = rng.uniform(0, 2 * np.pi)
        angles = base_angle + np.arange(2 * points) * np.pi / points
        outer = size / 2 * 1.05
        radii = np.where(
            np.arange(2 * points) % 2 == 0, outer,
            outer * rng.uniform(0.4, 0.5))
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)],
                    axis=1)


def _rasterise(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a polygon (without anti-aliasing) into a bool mask."""
    mask = np.zeros((height, width), np.uint8)
    scale = 1 << _SUBPIXEL_SHIFT
    pts = np.round(polygon * scale).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, _SUBPIXEL_SHIFT)
    return mask.astype(bool)


def _is_simple_region(mask: np.ndarray) -> bool:
    """Whether ``mask`` is one connected region without holes."""
    contours, hierarchy = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return len(contours) == 1 and (hierarchy is None
                                   or hierarchy[0, 0, 3] == -1)


def _visible_masks(masks: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Return the visible part of each mask (later masks are on top)."""
    covered = np.zeros_like(masks[0]) if masks else None
    visible = []
    for mask in reversed(masks):
        visible.append(mask & ~covered)
        covered = covered | mask
    return visible[::-1]


def _placement_ok(masks: Sequence[np.ndarray]) -> bool:
    """Check that every instance keeps a large, simple visible region."""
    for full, vis in zip(masks, _visible_masks(masks)):
        area = int(vis.sum())
        if area < _MIN_VISIBLE_AREA:
            return False
        if area < _MIN_VISIBLE_FRACTION * full.sum():
            return False
        if area != full.sum() and not _is_simple_region(vis):
            return False
    return True


def place_things(
    rng: np.random.Generator, height: int, width: int
) -> Tuple[List[np.ndarray], List[int], List[np.ndarray]]:
    """Choose, size, place and colour the things of one scene.

    Args:
        rng (np.random.Generator): Source of randomness.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        tuple[list[np.ndarray], list[int], list[np.ndarray]]: In drawing
        order, the ``(H, W)`` bool mask of every thing before occlusion,
        its index into :data:`THING_CLASSES` and its float32 RGB colour.
    """
    side = min(height, width)
    max_size = max(_MIN_THING_SIZE, _MAX_THING_FRACTION * side)
    num_things = int(rng.integers(2, 7))
    masks: List[np.ndarray] = []
    labels: List[int] = []
    colours: List[np.ndarray] = []
    for _ in range(num_things):
        label = int(rng.integers(len(THING_CLASSES)))
        for _try in range(_PLACEMENT_TRIES):
            # log-uniform size, skewed towards larger shapes
            size = _MIN_THING_SIZE * (max_size / _MIN_THING_SIZE)**(
                rng.random()**_SIZE_SKEW)
            shape = _shape_polygon(rng, label, size, (0.0, 0.0))
            low, high = shape.min(axis=0), shape.max(axis=0)
            centre = tuple(
                rng.uniform(-lo, limit - 1 - hi) if limit - 1 - hi > -lo
                else (limit - 1 - hi - lo) / 2
                for lo, hi, limit in zip(low, high, (width, height)))
            mask = _rasterise(shape + centre, height, width)
            if (mask.sum() >= _MIN_VISIBLE_AREA
                    and _placement_ok(masks + [mask])):
                break
        else:
            continue
        colour_label = label
        if rng.random() < _COLOUR_SWAP_PROB:
            colour_label = int(rng.integers(len(THING_CLASSES)))
        masks.append(mask)
        labels.append(label)
        colours.append(_jitter_colour(rng, THING_PALETTE[colour_label], 30))

    # Drop anything that became too small (cannot happen with the checks
    # above, but keeps the invariant explicit).
    while masks:
        visible = _visible_masks(masks)
        small = [i for i, v in enumerate(visible)
                 if v.sum() < _MIN_VISIBLE_AREA]
        if not small:
            break
        for i in reversed(small):
            del masks[i], labels[i], colours[i]
    return masks, labels, colours


def paint_things(rng: np.random.Generator, image: np.ndarray,
                 masks: Sequence[np.ndarray],
                 colours: Sequence[np.ndarray]) -> np.ndarray:
    """Paint the things over ``image`` (in place) with a shading ramp.

    Args:
        rng (np.random.Generator): Source of randomness.
        image (np.ndarray): ``(H, W, 3)`` float32 RGB image, modified.
        masks (Sequence[np.ndarray]): ``(H, W)`` bool masks in drawing
            order; later ones are on top.
        colours (Sequence[np.ndarray]): Base RGB colour of every mask.

    Returns:
        np.ndarray: ``(H, W)`` int64 map, ``-1`` where no thing is visible,
        otherwise the index of the visible mask.
    """
    instance_map = np.full(image.shape[:2], -1, np.int64)
    for idx, (mask, colour) in enumerate(zip(masks, colours)):
        ys, xs = np.nonzero(mask)
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction) + 1e-6
        extent = max(float(np.ptp(xs)), float(np.ptp(ys)), 1.0)
        ramp = ((xs - xs.mean()) * direction[0] +
                (ys - ys.mean()) * direction[1]) / extent
        shading = 24.0 * ramp[:, None] + rng.normal(0, 3, (len(xs), 3))
        image[ys, xs] = colour + shading
        instance_map[mask] = idx
    return instance_map
