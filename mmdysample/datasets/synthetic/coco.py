# Copyright (c) mmdysample contributors. All rights reserved.
"""COCO detection / instance segmentation: images, instances JSON.

The JPEGs written here are shared with the panoptic format, which lists
the same ``images`` entries.
"""
import os.path as osp
from typing import List

from .files import _dump_json, _write_rgb
from .masks import _tight_bbox, mask_to_polygons
from .metainfo import DEFAULT_CLASSES, GENERATOR_VERSION, ClassSet
from .scenes import Scene

__all__ = [
    'coco_stem', 'write_coco_image', 'coco_instances', 'write_coco_json'
]


def _info(split: str) -> dict:
    return dict(
        description=f'mmdysample synthetic shapes ({split})',
        version=str(GENERATOR_VERSION),
        year=2024,
        contributor='mmdysample',
        date_created='')


def _coco_categories(classes: ClassSet) -> List[dict]:
    return [
        dict(id=cat_id, name=name, supercategory='shape')
        for cat_id, name in zip(classes.thing_cat_ids, classes.things)
    ]


def coco_stem(image_id: int) -> str:
    """The file name stem of image ``image_id``, COCO style."""
    return f'{image_id:012d}'


def write_coco_image(scene: Scene, img_dir: str, image_id: int) -> dict:
    """Write the JPEG of a scene and return its ``images`` entry.

    Args:
        scene (Scene): The rendered scene.
        img_dir (str): Image folder of the split (``train2017``, ...).
        image_id (int): COCO image id.

    Returns:
        dict: ``id``, ``file_name``, ``height`` and ``width``.
    """
    file_name = f'{coco_stem(image_id)}.jpg'
    _write_rgb(osp.join(img_dir, file_name), scene.image)
    height, width = scene.image.shape[:2]
    return dict(id=image_id, file_name=file_name, height=height, width=width)


def coco_instances(scene: Scene, image_id: int, first_id: int) -> List[dict]:
    """Return the instance annotations of a scene (polygons and boxes).

    Args:
        scene (Scene): The rendered scene.
        image_id (int): COCO image id.
        first_id (int): Annotation id of the first instance; the others
            follow in drawing order.

    Returns:
        list[dict]: One COCO annotation per visible instance.
    """
    annotations = []
    cat_ids = scene.classes.thing_cat_ids
    for idx, label in enumerate(scene.labels):
        mask = scene.instance_map == idx
        annotations.append(
            dict(id=first_id + idx, image_id=image_id,
                 category_id=cat_ids[label],
                 segmentation=mask_to_polygons(mask),
                 area=int(mask.sum()), bbox=_tight_bbox(mask),
                 iscrowd=0))
    return annotations


def write_coco_json(path: str,
                    split: str,
                    images: List[dict],
                    annotations: List[dict],
                    classes: ClassSet = DEFAULT_CLASSES) -> None:
    """Write the instances JSON of a split.

    Args:
        path (str): The JSON file (``instances_train2017.json``, ...).
        split (str): ``'train'`` or ``'val'``, named in ``info``.
        images (list[dict]): The entries of :func:`write_coco_image`.
        annotations (list[dict]): The entries of :func:`coco_instances`.
        classes (ClassSet): The classes of the scenes, for ``categories``.
            Defaults to those of the default scenes.
    """
    _dump_json(
        path,
        dict(info=_info(split), licenses=[], images=images,
             annotations=annotations,
             categories=_coco_categories(classes)))
