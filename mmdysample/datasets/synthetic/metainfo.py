# Copyright (c) mmdysample contributors. All rights reserved.
"""Classes, palettes, ``metainfo`` dicts and COCO category ids.

The class tuples fix the label values of every format: ADE label ``k`` is
``SEG_CLASSES[k - 1]``, COCO category ``i + 1`` is ``THING_CLASSES[i]``,
and the panoptic stuff categories follow the things. Each kind of scene
has its own classes: the default scenes the names without a prefix, the
fine scenes (``scenes='fine'``) the ``FINE_*`` names. A
:class:`ClassSet` bundles one kind's classes for the format writers.
"""
from typing import Dict, NamedTuple, Sequence, Tuple

__all__ = [
    'GENERATOR_VERSION', 'THING_CLASSES', 'STUFF_CLASSES', 'SEG_CLASSES',
    'PANOPTIC_CLASSES', 'THING_PALETTE', 'STUFF_PALETTE', 'SEG_PALETTE',
    'PANOPTIC_PALETTE', 'COCO_METAINFO', 'PANOPTIC_METAINFO', 'ADE_METAINFO',
    'FINE_THING_CLASSES', 'FINE_STUFF_CLASSES', 'FINE_SEG_CLASSES',
    'FINE_PANOPTIC_CLASSES', 'FINE_THING_PALETTE', 'FINE_STUFF_PALETTE',
    'FINE_SEG_PALETTE', 'FINE_PANOPTIC_PALETTE', 'FINE_COCO_METAINFO',
    'FINE_PANOPTIC_METAINFO', 'FINE_ADE_METAINFO', 'ClassSet',
    'DEFAULT_CLASSES', 'FINE_CLASSES'
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

# The fine scenes (``scenes='fine'``, :mod:`.fine_shapes`,
# :mod:`.fine_textures`). Things are what one counts and boxes: compact
# objects, small or with thin parts (an open ring, a cross). Stuff is what
# one does not count: the background regions with fine borders
# (``foliage``) and the long thin structures that cross the image
# (``fence``, ``wire``), as COCO-stuff has ``fence`` and ``net`` and
# Cityscapes ``fence`` and ``pole`` without instances. So wires are in the
# semantic and panoptic labels (one stuff segment per image) and not in the
# COCO instances.
FINE_THING_CLASSES = THING_CLASSES + ('ring', 'cross')
FINE_STUFF_CLASSES = STUFF_CLASSES + ('foliage', 'fence', 'wire')
FINE_SEG_CLASSES = FINE_STUFF_CLASSES + FINE_THING_CLASSES
FINE_PANOPTIC_CLASSES = FINE_THING_CLASSES + FINE_STUFF_CLASSES

FINE_THING_PALETTE = THING_PALETTE + [(255, 105, 180), (245, 140, 30)]
FINE_STUFF_PALETTE = STUFF_PALETTE + [(45, 95, 45), (225, 220, 205),
                                      (35, 30, 30)]
FINE_SEG_PALETTE = FINE_STUFF_PALETTE + FINE_THING_PALETTE
FINE_PANOPTIC_PALETTE = FINE_THING_PALETTE + FINE_STUFF_PALETTE

FINE_COCO_METAINFO = dict(classes=FINE_THING_CLASSES,
                          palette=FINE_THING_PALETTE)
FINE_PANOPTIC_METAINFO = dict(
    classes=FINE_PANOPTIC_CLASSES,
    thing_classes=FINE_THING_CLASSES,
    stuff_classes=FINE_STUFF_CLASSES,
    palette=FINE_PANOPTIC_PALETTE)
FINE_ADE_METAINFO = dict(classes=FINE_SEG_CLASSES, palette=FINE_SEG_PALETTE)


class ClassSet(NamedTuple):
    """The classes of one kind of scene, as the format writers use them.

    Attributes:
        things (tuple[str]): Thing classes; a scene's ``labels`` index them.
        stuff (tuple[str]): Stuff classes; a scene's ``stuff_map`` indexes
            them.
        thing_palette (Sequence[tuple[int, int, int]]): RGB per thing.
        stuff_palette (Sequence[tuple[int, int, int]]): RGB per stuff.
        metainfo (dict[str, dict]): The ``'coco'``, ``'panoptic'`` and
            ``'ade'`` ``metainfo`` dicts of the kind.
    """
    things: Tuple[str, ...]
    stuff: Tuple[str, ...]
    thing_palette: Sequence[Tuple[int, int, int]]
    stuff_palette: Sequence[Tuple[int, int, int]]
    metainfo: Dict[str, dict]

    @property
    def thing_cat_ids(self) -> Tuple[int, ...]:
        """COCO category ids of the things: ``1 .. len(things)``."""
        return tuple(range(1, len(self.things) + 1))

    @property
    def stuff_cat_ids(self) -> Tuple[int, ...]:
        """Panoptic category ids of the stuff, after the things'."""
        first = len(self.things) + 1
        return tuple(range(first, first + len(self.stuff)))


DEFAULT_CLASSES = ClassSet(
    THING_CLASSES, STUFF_CLASSES, THING_PALETTE, STUFF_PALETTE,
    dict(coco=COCO_METAINFO, panoptic=PANOPTIC_METAINFO, ade=ADE_METAINFO))
FINE_CLASSES = ClassSet(
    FINE_THING_CLASSES, FINE_STUFF_CLASSES, FINE_THING_PALETTE,
    FINE_STUFF_PALETTE,
    dict(coco=FINE_COCO_METAINFO, panoptic=FINE_PANOPTIC_METAINFO,
         ade=FINE_ADE_METAINFO))
