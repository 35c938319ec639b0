# Copyright (c) mmdysample contributors. All rights reserved.
"""Classes, palettes, ``metainfo`` dicts and COCO category ids.

The class tuples fix the label values of every format: ADE label ``k`` is
``SEG_CLASSES[k - 1]``, COCO category ``i + 1`` is ``THING_CLASSES[i]``,
and the panoptic stuff categories follow the things.
"""
__all__ = [
    'GENERATOR_VERSION', 'THING_CLASSES', 'STUFF_CLASSES', 'SEG_CLASSES',
    'PANOPTIC_CLASSES', 'THING_PALETTE', 'STUFF_PALETTE', 'SEG_PALETTE',
    'PANOPTIC_PALETTE', 'COCO_METAINFO', 'PANOPTIC_METAINFO', 'ADE_METAINFO'
]

#: Bumped whenever the rendered content or the file formats change, so
#: that an existing output directory is regenerated instead of reused.
GENERATOR_VERSION = 2

THING_CLASSES = ('circle', 'rectangle', 'triangle', 'star')
STUFF_CLASSES = ('sky', 'ground', 'water')
#: Semantic segmentation classes (ADE label ``k`` is ``SEG_CLASSES[k-1]``).
SEG_CLASSES = STUFF_CLASSES + THING_CLASSES
#: Panoptic classes in mmdet's order: things first, then stuff.
PANOPTIC_CLASSES = THING_CLASSES + STUFF_CLASSES

#: Nominal RGB colour of every thing class (instances are jittered).
THING_PALETTE = [(225, 45, 45), (250, 205, 35), (170, 60, 220),
                 (25, 25, 30)]
#: Representative RGB colour of every stuff class.
STUFF_PALETTE = [(140, 185, 240), (110, 135, 70), (40, 90, 150)]
SEG_PALETTE = STUFF_PALETTE + THING_PALETTE
PANOPTIC_PALETTE = THING_PALETTE + STUFF_PALETTE

#: Ready-made ``metainfo`` dicts for the three dataset flavours.
COCO_METAINFO = dict(classes=THING_CLASSES, palette=THING_PALETTE)
PANOPTIC_METAINFO = dict(
    classes=PANOPTIC_CLASSES,
    thing_classes=THING_CLASSES,
    stuff_classes=STUFF_CLASSES,
    palette=PANOPTIC_PALETTE)
ADE_METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)

# COCO category ids: things are 1..4, stuff (panoptic only) follows.
_THING_CAT_IDS = tuple(range(1, len(THING_CLASSES) + 1))
_STUFF_CAT_IDS = tuple(
    range(len(THING_CLASSES) + 1,
          len(THING_CLASSES) + len(STUFF_CLASSES) + 1))
