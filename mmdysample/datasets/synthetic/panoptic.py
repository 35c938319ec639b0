# Copyright (c) mmdysample contributors. All rights reserved.
"""COCO panoptic segmentation: segment-id PNGs and ``segments_info``.

Every visible thing is one segment and every stuff class with visible
pixels another; the PNGs encode segment ids as ``R + 256 * G + 256 ** 2 *
B`` and lie next to the JSON, named like the COCO images.
"""
import os.path as osp
from typing import List

import numpy as np

from .coco import _info, coco_stem
from .files import _dump_json, _write_rgb
from .masks import _id2rgb, _tight_bbox
from .metainfo import DEFAULT_CLASSES, ClassSet
from .scenes import Scene

__all__ = ['write_panoptic_png', 'write_panoptic_json']


def _panoptic_categories(classes: ClassSet) -> List[dict]:
    cats = []
    for cat_id, name, colour in zip(classes.thing_cat_ids, classes.things,
                                    classes.thing_palette):
        cats.append(
            dict(id=cat_id, name=name, supercategory='shape', isthing=1,
                 color=list(colour)))
    for cat_id, name, colour in zip(classes.stuff_cat_ids, classes.stuff,
                                    classes.stuff_palette):
        cats.append(
            dict(id=cat_id, name=name, supercategory='scene', isthing=0,
                 color=list(colour)))
    return cats


def write_panoptic_png(scene: Scene, png_dir: str, image_id: int,
                       first_id: int) -> dict:
    """Write the segment-id PNG of a scene and return its annotation.

    Args:
        scene (Scene): The rendered scene.
        png_dir (str): PNG folder of the split (``panoptic_train2017``).
        image_id (int): COCO image id.
        first_id (int): Id of the first segment; the things follow in
            drawing order, then the stuff classes in class order.

    Returns:
        dict: ``image_id``, ``file_name`` and ``segments_info``.
    """
    segments = []
    for idx, label in enumerate(scene.labels):
        mask = scene.instance_map == idx
        segments.append((mask, scene.classes.thing_cat_ids[label]))
    for stuff_idx, cat_id in enumerate(scene.classes.stuff_cat_ids):
        mask = (scene.stuff_map == stuff_idx) & (scene.instance_map < 0)
        if mask.any():
            segments.append((mask, cat_id))
    segment_map = np.zeros(scene.instance_map.shape, np.int64)
    segments_info = []
    for segment_id, (mask, cat_id) in enumerate(segments, first_id):
        segment_map[mask] = segment_id
        segments_info.append(
            dict(id=segment_id, category_id=cat_id, iscrowd=0,
                 bbox=_tight_bbox(mask), area=int(mask.sum())))
    file_name = f'{coco_stem(image_id)}.png'
    _write_rgb(osp.join(png_dir, file_name), _id2rgb(segment_map))
    return dict(
        image_id=image_id, file_name=file_name, segments_info=segments_info)


def write_panoptic_json(path: str,
                        split: str,
                        images: List[dict],
                        annotations: List[dict],
                        classes: ClassSet = DEFAULT_CLASSES) -> None:
    """Write the panoptic JSON of a split.

    Args:
        path (str): The JSON file (``panoptic_train2017.json``, ...).
        split (str): ``'train'`` or ``'val'``, named in ``info``.
        images (list[dict]): The COCO ``images`` entries of the split.
        annotations (list[dict]): The entries of
            :func:`write_panoptic_png`.
        classes (ClassSet): The classes of the scenes, for ``categories``.
            Defaults to those of the default scenes.
    """
    _dump_json(
        path,
        dict(info=_info(split), licenses=[], images=images,
             annotations=annotations,
             categories=_panoptic_categories(classes)))
