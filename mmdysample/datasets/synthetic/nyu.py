# Copyright (c) mmdysample contributors. All rights reserved.
"""NYU Depth V2 layout, as mmseg's ``NYUDataset`` reads it.

A JPEG image and a 16-bit PNG of the same stem per room::

    nyu/images/{train,test}/<category>_<number>.jpg
    nyu/annotations/{train,test}/<category>_<number>.png

The PNG holds the depth in millimetres (``0`` would mark an invalid
pixel; the rendered rooms have none), so ``LoadDepthAnnotation(
depth_rescale_factor=1e-3)`` gives metres. mmseg takes a sample's
``category_id`` from the file name text before its first digit (a name
without a digit raises ``StopIteration`` there), hence the room's category
as the stem's first word.
"""
import os.path as osp

import numpy as np

from .files import _write_gray, _write_rgb
from .rooms import DepthScene

__all__ = ['DEPTH_PNG_SCALE', 'nyu_stem', 'depth_to_png', 'write_nyu_pair']

#: PNG units per metre.
DEPTH_PNG_SCALE = 1000


def nyu_stem(category: str, number: int) -> str:
    """The file name stem of image ``number`` (from 1) of a split.

    Example:
        >>> nyu_stem('living_room', 7)
        'living_room_0007'
    """
    return f'{category}_{number:04d}'


def depth_to_png(depth: np.ndarray) -> np.ndarray:
    """Depth in metres to the uint16 millimetres of the PNG.

    Args:
        depth (np.ndarray): Depth in metres; values that are not finite or
            not positive are invalid.

    Returns:
        np.ndarray: uint16 millimetres, rounded, ``0`` where invalid; at
        least 1 mm where valid, at most 65.535 m.

    Example:
        >>> depth_to_png(np.array([0.5, 9.9996, 0.0, np.nan])).tolist()
        [500, 10000, 0, 0]
    """
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    mm = np.round(np.where(valid, depth, 0) * DEPTH_PNG_SCALE)
    mm = np.where(valid, np.clip(mm, 1, np.iinfo(np.uint16).max), 0)
    return mm.astype(np.uint16)


def write_nyu_pair(scene: DepthScene, img_dir: str, ann_dir: str,
                   stem: str) -> None:
    """Write the image and the depth PNG of a room.

    Args:
        scene (DepthScene): The rendered room.
        img_dir (str): Image folder of the split (``images/train``).
        ann_dir (str): Depth folder (``annotations/train``).
        stem (str): File name stem (:func:`nyu_stem`).
    """
    _write_rgb(osp.join(img_dir, f'{stem}.jpg'), scene.image)
    _write_gray(osp.join(ann_dir, f'{stem}.png'), depth_to_png(scene.depth))
