# Copyright (c) mmdysample contributors. All rights reserved.
"""ADE20K-style semantic segmentation: a JPEG and a uint8 label PNG.

Labels follow ADE20K with ``reduce_zero_label=True``: ``0`` is "other"
(never written here) and ``k`` is class ``k - 1`` of the scene's kind:
``SEG_CLASSES[k - 1]`` (default scenes) or ``FINE_SEG_CLASSES[k - 1]``.
"""
import os.path as osp

from .files import _write_gray, _write_rgb
from .scenes import Scene

__all__ = ['ade_stem', 'write_ade_pair']


def ade_stem(prefix: str, number: int) -> str:
    """The file name stem of image ``number`` (from 1), ADE20K style."""
    return f'{prefix}_{number:08d}'


def write_ade_pair(scene: Scene, img_dir: str, ann_dir: str,
                   stem: str) -> None:
    """Write the image and the label map of a scene.

    Args:
        scene (Scene): The rendered scene.
        img_dir (str): Image folder of the split (``images/training``).
        ann_dir (str): Label folder (``annotations/training``).
        stem (str): File name stem (:func:`ade_stem`).
    """
    _write_rgb(osp.join(img_dir, f'{stem}.jpg'), scene.image)
    _write_gray(osp.join(ann_dir, f'{stem}.png'), scene.semantic_map())
