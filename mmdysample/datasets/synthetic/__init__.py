# Copyright (c) mmdysample contributors. All rights reserved.
"""Deterministic generator of a small synthetic dataset in real formats.

The generator renders simple outdoor-like scenes: the background is split
into two or three *stuff* regions (``sky`` on top behind a wavy horizon,
``ground`` and optionally a band of ``water``), each filled with its own
texture, and two to six *thing* instances (``circle``, ``rectangle``,
``triangle``, ``star``) are painted on top. Later shapes occlude earlier
ones and every annotation describes the visible pixels only.

These large convex shapes on smooth regions are the *default* scenes. The
*fine* scenes (``scenes='fine'``, ``--scenes fine``) are where the
upsampler matters: thin wires and fence pickets of 1-3 px, open rings with
thin walls, shapes of 4-16 px, region borders toothed or rippled at a few
pixels, and twelve classes instead of seven (``FINE_*`` in
:mod:`.metainfo`); :mod:`.stats` measures the difference.

The same scenes are written in the on-disk formats that mmdet and mmseg
read for COCO detection / instance segmentation, COCO panoptic
segmentation and ADE20K semantic segmentation, so a config only needs to
swap ``data_root``::

    <out_dir>/
      meta.json                            generation parameters + version
      coco/
        train2017/000000000001.jpg ...     RGB images (JPEG)
        val2017/000001000001.jpg ...
        annotations/
          instances_train2017.json         COCO instances (polygons)
          instances_val2017.json
          panoptic_train2017.json          COCO panoptic segments_info
          panoptic_val2017.json
          panoptic_train2017/*.png         id = R + 256 * G + 256 ** 2 * B
          panoptic_val2017/*.png
      ade/
        images/training/ADE_train_00000001.jpg ...
        images/validation/ADE_val_00000001.jpg ...
        annotations/training/ADE_train_00000001.png ...   uint8 labels
        annotations/validation/ADE_val_00000001.png ...

The depth data (``scenes='depth'``, ``--scenes depth``, written to
``data/synthetic_depth`` by default) is another kind of scene: indoor box
rooms with furniture seen by a camera with NYU Depth V2's intrinsics
(:mod:`.rooms`), written in the layout of mmseg's ``NYUDataset``
(:mod:`.nyu`) and in no other format::

    <out_dir>/
      meta.json
      nyu/
        images/train/bedroom_0001.jpg ...        RGB images (JPEG)
        images/test/office_0001.jpg ...
        annotations/train/bedroom_0001.png ...   uint16 depth in mm
        annotations/test/office_0001.png ...

A config reads it with ``data_root='data/synthetic_depth/nyu'`` and
``data_prefix=dict(img_path='images/train',
depth_map_path='annotations/train')`` (``test`` for the held-out split),
and ``LoadDepthAnnotation(depth_rescale_factor=1e-3)`` for metres.

ADE labels follow the ADE20K convention used with ``reduce_zero_label=True``:
value ``0`` is "other" (ignored; this generator never writes it) and
value ``k`` (``1 <= k <= len(SEG_CLASSES)``) is ``SEG_CLASSES[k - 1]``
(``FINE_SEG_CLASSES[k - 1]`` for the fine scenes).

Every image is rendered from its own random generator seeded by
``(seed, split, index)``, so the output is byte-identical for equal
parameters and image ``i`` of a split does not depend on the number of
images generated. Only numpy, OpenCV and the standard library are used:
the package itself imports none of torch, mmdet or mmseg (``stats.py``,
not imported by it, imports torch for the boundary IoU when asked to).

The parts, each depending only on those above it:

====================  ===================================================
``metainfo.py``       classes, palettes, ``metainfo`` dicts, category ids
                      of both kinds, :class:`ClassSet`
``textures.py``       the stuff background: region layout and textures
``shapes.py``         the things: polygons, placement, painting
``fine_textures.py``  the fine background: fine borders, fence, wires
``fine_shapes.py``    the fine things: small shapes, rings, crosses
``scenes.py``         :class:`Scene`, :func:`render_scene`,
                      :func:`render_fine_scene`, :data:`SCENE_KINDS`
``rooms.py``          the depth data's rooms: :func:`render_room`, a
                      ray-caster giving an image and its z-depth
``masks.py``          boxes, COCO polygons, panoptic id colours of masks
``files.py``          deterministic image / label / JSON writers
``coco.py``           COCO images and instances JSON
``panoptic.py``       COCO panoptic PNGs and JSON
``ade.py``            ADE20K-style images and label maps
``nyu.py``            NYU Depth V2-style images and millimetre PNGs
``layout.py``         output paths and the ``meta.json`` up-to-date check
``generate.py``       argument checks and :func:`generate_synthetic_dataset`
``cli.py``            :func:`build_parser` and :func:`main`
``stats.py``          boundary, thin-region and upsampling-oracle measures
                      of label maps (not imported here)
====================  ===================================================

Run ``python -m mmdysample.datasets.synthetic --help`` (or
``tools/misc/generate_synthetic_data.py``) for the command line interface.
"""
# The names outside __all__ are re-exported as the one-module generator
# had them.
from .cli import build_parser, main
from .generate import (  # noqa: F401
    DEFAULT_IMG_SIZE, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, DEFAULT_OUT_DIR,
    DEFAULT_OUT_DIRS, DEPTH_SCENES, KIND_DEFAULTS, MAX_IMAGES_PER_SPLIT,
    MAX_IMG_SIDE, MIN_IMG_SIDE, VALID_TASKS, ImgSize, KindDefaults,
    generate_synthetic_dataset)
from .layout import VAL_ID_OFFSET  # noqa: F401
from .masks import mask_to_polygons
from .metainfo import (ADE_METAINFO, COCO_METAINFO, DEFAULT_CLASSES,
                       FINE_ADE_METAINFO, FINE_CLASSES, FINE_COCO_METAINFO,
                       FINE_PANOPTIC_CLASSES, FINE_PANOPTIC_METAINFO,
                       FINE_PANOPTIC_PALETTE, FINE_SEG_CLASSES,
                       FINE_SEG_PALETTE, FINE_STUFF_CLASSES,
                       FINE_STUFF_PALETTE, FINE_THING_CLASSES,
                       FINE_THING_PALETTE, GENERATOR_VERSION,
                       PANOPTIC_CLASSES, PANOPTIC_METAINFO, PANOPTIC_PALETTE,
                       SEG_CLASSES, SEG_PALETTE, STUFF_CLASSES, STUFF_PALETTE,
                       THING_CLASSES, THING_PALETTE, ClassSet)
from .rooms import MAX_DEPTH, DepthScene, render_room
from .scenes import (SCENE_KINDS, Scene, SceneKind,  # noqa: F401
                     render_fine_scene, render_scene)

__all__ = [
    'THING_CLASSES', 'STUFF_CLASSES', 'SEG_CLASSES', 'PANOPTIC_CLASSES',
    'THING_PALETTE', 'STUFF_PALETTE', 'SEG_PALETTE', 'PANOPTIC_PALETTE',
    'COCO_METAINFO', 'PANOPTIC_METAINFO', 'ADE_METAINFO', 'VALID_TASKS',
    'GENERATOR_VERSION', 'DEFAULT_OUT_DIR', 'generate_synthetic_dataset',
    'render_scene', 'mask_to_polygons', 'build_parser', 'main',
    'FINE_THING_CLASSES', 'FINE_STUFF_CLASSES', 'FINE_SEG_CLASSES',
    'FINE_PANOPTIC_CLASSES', 'FINE_THING_PALETTE', 'FINE_STUFF_PALETTE',
    'FINE_SEG_PALETTE', 'FINE_PANOPTIC_PALETTE', 'FINE_COCO_METAINFO',
    'FINE_PANOPTIC_METAINFO', 'FINE_ADE_METAINFO', 'ClassSet',
    'DEFAULT_CLASSES', 'FINE_CLASSES', 'SCENE_KINDS', 'render_fine_scene',
    'DEFAULT_OUT_DIRS', 'DEPTH_SCENES', 'KIND_DEFAULTS', 'DepthScene',
    'MAX_DEPTH', 'render_room'
]
