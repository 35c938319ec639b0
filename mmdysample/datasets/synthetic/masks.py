# Copyright (c) mmdysample contributors. All rights reserved.
"""From masks to annotations: boxes, COCO polygons, panoptic id colours."""
from typing import List

import cv2
import numpy as np

__all__ = ['mask_to_polygons']


def _tight_bbox(mask: np.ndarray) -> List[int]:
    """Return ``[x, y, w, h]`` of the smallest box holding ``mask``."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """Convert a binary mask to COCO polygons that rasterise back exactly.

    The contour is traced on a 2x upsampled copy of the mask, which puts
    the vertices a quarter pixel inside the pixel borders. pycocotools
    then rasterises the polygons back to exactly the same pixels (holes
    are not represented; the generator never produces them).

    Args:
        mask (np.ndarray): ``(H, W)`` boolean mask.

    Returns:
        list[list[float]]: One flat ``[x0, y0, x1, y1, ...]`` list per
        outer contour, each with at least three points.
    """
    up = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) < 3:
            continue
        coords = (contour.reshape(-1).astype(np.float64) + 0.5) / 2
        polygons.append([float(c) for c in coords])
    return polygons


def _id2rgb(id_map: np.ndarray) -> np.ndarray:
    """Encode segment ids as ``R + 256 * G + 256 ** 2 * B`` (uint8 RGB)."""
    ids = id_map.astype(np.uint32)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 256**2) % 256],
                    axis=-1).astype(np.uint8)
