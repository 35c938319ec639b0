# Copyright (c) mmdysample contributors. All rights reserved.
"""Deterministic generator of a small synthetic dataset in real formats.

The generator renders simple outdoor-like scenes: the background is split
into two or three *stuff* regions (``sky`` on top behind a wavy horizon,
``ground`` and optionally a band of ``water``), each filled with its own
texture, and two to six *thing* instances (``circle``, ``rectangle``,
``triangle``, ``star``) are painted on top. Later shapes occlude earlier
ones and every annotation describes the visible pixels only.

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

ADE labels follow the ADE20K convention used with ``reduce_zero_label=True``:
value ``0`` is "other" (ignored; this generator never writes it) and
value ``k`` (``1 <= k <= len(SEG_CLASSES)``) is ``SEG_CLASSES[k - 1]``.

Every image is rendered from its own random generator seeded by
``(seed, split, index)``, so the output is byte-identical for equal
parameters and image ``i`` of a split does not depend on the number of
images generated. Only numpy, OpenCV and the standard library are used;
importing this module does not import torch, mmdet or mmseg.

Run ``python -m mmdysample.datasets.synthetic --help`` (or
``tools/misc/generate_synthetic_data.py``) for the command line interface.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'THING_CLASSES', 'STUFF_CLASSES', 'SEG_CLASSES', 'PANOPTIC_CLASSES',
    'THING_PALETTE', 'STUFF_PALETTE', 'SEG_PALETTE', 'PANOPTIC_PALETTE',
    'COCO_METAINFO', 'PANOPTIC_METAINFO', 'ADE_METAINFO', 'VALID_TASKS',
    'GENERATOR_VERSION', 'DEFAULT_OUT_DIR', 'generate_synthetic_dataset',
    'render_scene', 'mask_to_polygons', 'build_parser', 'main'
]

#: Bumped whenever the rendered content or the file formats change, so
#: that an existing output directory is regenerated instead of reused.
GENERATOR_VERSION = 2
_GENERATOR_NAME = 'mmdysample.datasets.synthetic'

DEFAULT_OUT_DIR = osp.join('data', 'synthetic')
DEFAULT_NUM_TRAIN = 400
DEFAULT_NUM_VAL = 50
DEFAULT_IMG_SIZE = 192
MIN_IMG_SIDE = 32
MAX_IMG_SIDE = 4096
MAX_IMAGES_PER_SPLIT = 100_000
#: COCO image ids of the validation split start after this offset so that
#: train and val ids never collide.
VAL_ID_OFFSET = 1_000_000

VALID_TASKS = ('coco', 'panoptic', 'ade')

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

_SPLITS = (
    # name, seed code, coco folder, ade folder, ade file prefix, id offset
    ('train', 0, 'train2017', 'training', 'ADE_train', 0),
    ('val', 1, 'val2017', 'validation', 'ADE_val', VAL_ID_OFFSET),
)

# Rendering constants.
_MIN_THING_SIZE = 12.0  # pixels, extent of the smallest shape
_MAX_THING_FRACTION = 0.45  # largest extent as a fraction of min(H, W)
_SIZE_SKEW = 0.75  # < 1 favours larger shapes (median ~38 px at 192 px)
_MIN_VISIBLE_AREA = 30  # pixels; smaller visible parts are dropped
_MIN_VISIBLE_FRACTION = 0.4  # of the unoccluded area
_PLACEMENT_TRIES = 25
_COLOUR_SWAP_PROB = 0.1  # chance that a thing borrows another colour
_SUBPIXEL_SHIFT = 4  # cv2 fractional bits used when rasterising shapes
_JPEG_QUALITY = 95

ImgSize = Union[int, Sequence[int]]


class Scene:
    """One rendered image with its dense annotations.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        stuff_map (np.ndarray): ``(H, W)`` int array with the index into
            :data:`STUFF_CLASSES` of the stuff behind every pixel.
        instance_map (np.ndarray): ``(H, W)`` int array, ``-1`` where no
            thing is visible, otherwise the index into :attr:`labels`.
        labels (list[int]): Index into :data:`THING_CLASSES` of every
            visible instance, in drawing order.
    """

    def __init__(self, image: np.ndarray, stuff_map: np.ndarray,
                 instance_map: np.ndarray, labels: List[int]) -> None:
        self.image = image
        self.stuff_map = stuff_map
        self.instance_map = instance_map
        self.labels = labels

    def semantic_map(self) -> np.ndarray:
        """Return ADE-style labels (``1..len(SEG_CLASSES)``) as uint8."""
        sem = self.stuff_map.astype(np.uint8) + 1
        for idx, label in enumerate(self.labels):
            sem[self.instance_map == idx] = len(STUFF_CLASSES) + label + 1
        return sem


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  cells: int) -> np.ndarray:
    """Return smooth noise in ``[0, 1]`` made by upsampling a coarse grid."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    return np.clip(
        cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC),
        0.0, 1.0)


def _jitter_colour(rng: np.random.Generator, base: Sequence[float],
                   amount: float) -> np.ndarray:
    """Return ``base`` with every channel shifted by up to ``amount``."""
    colour = np.asarray(base, np.float32) + rng.uniform(-amount, amount, 3)
    return np.clip(colour, 0, 255).astype(np.float32)


def _wavy_line(rng: np.random.Generator, xs: np.ndarray, level: float,
               amplitude: float, width: int) -> np.ndarray:
    """Return the y coordinate of a wavy boundary for every column."""
    period = width * rng.uniform(0.4, 1.2)
    phase = rng.uniform(0, 2 * np.pi)
    ripple = rng.uniform(0, 0.3) * amplitude
    return (level + amplitude * np.sin(2 * np.pi * xs / period + phase) +
            ripple * np.sin(6 * np.pi * xs / period + 2 * phase))


def _sky_texture(rng: np.random.Generator, yy: np.ndarray,
                 xx: np.ndarray) -> np.ndarray:
    """Vertical blue gradient with soft white clouds."""
    height, width = yy.shape
    top = _jitter_colour(rng, (85, 145, 230), 20)
    bottom = _jitter_colour(rng, (185, 215, 245), 15)
    t = (yy / max(height - 1, 1))[..., None]
    tex = top * (1 - t) + bottom * t
    clouds = _smooth_noise(rng, height, width, int(rng.integers(3, 7)))
    cover = np.clip((clouds - rng.uniform(0.45, 0.7)) * 3.0, 0, 1)[..., None]
    tex = tex * (1 - 0.5 * cover) + 245.0 * 0.5 * cover
    return tex + rng.normal(0, 3, tex.shape)


def _ground_texture(rng: np.random.Generator, yy: np.ndarray,
                    xx: np.ndarray) -> np.ndarray:
    """Grass / dirt / gravel colour with one of several patterns."""
    height, width = yy.shape
    families = ((95, 140, 60), (140, 105, 70), (120, 120, 105))
    base = _jitter_colour(rng, families[rng.integers(len(families))], 15)
    kind = int(rng.integers(4))
    if kind == 0:  # oblique stripes
        theta = rng.uniform(0, np.pi)
        wavelength = rng.uniform(6, 16)
        coord = xx * np.cos(theta) + yy * np.sin(theta)
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * coord / wavelength)
    elif kind == 1:  # checker board
        cell = int(rng.integers(6, 17))
        pattern = ((xx // cell + yy // cell) % 2).astype(np.float32)
    elif kind == 2:  # blotches
        pattern = _smooth_noise(rng, height, width, int(rng.integers(6, 14)))
    else:  # grid of lines
        cell = int(rng.integers(8, 20))
        pattern = (((xx % cell) < 2) | ((yy % cell) < 2)).astype(np.float32)
    amplitude = rng.uniform(14, 26)
    tint = rng.uniform(0.7, 1.0, 3).astype(np.float32)
    shade = 1.0 - 0.15 * (yy / max(height - 1, 1))
    tex = (base + amplitude * (pattern[..., None] - 0.5) * tint)
    tex = tex * shade[..., None]
    return tex + rng.normal(0, 5, tex.shape)


def _water_texture(rng: np.random.Generator, yy: np.ndarray,
                   xx: np.ndarray) -> np.ndarray:
    """Dark blue-teal with horizontal wavy ripples."""
    base = _jitter_colour(rng, (40, 90, 150), 15)
    wavelength = rng.uniform(4, 9)
    wobble = rng.uniform(20, 60)
    ripples = np.sin(2 * np.pi * yy / wavelength +
                     1.5 * np.sin(2 * np.pi * xx / wobble))
    tex = base + rng.uniform(12, 22) * ripples[..., None] * np.array(
        [0.6, 0.9, 1.0], np.float32)
    return tex + rng.normal(0, 4, tex.shape)


_STUFF_TEXTURES: Tuple[Callable, ...] = (_sky_texture, _ground_texture,
                                         _water_texture)


def _stuff_layout(rng: np.random.Generator, yy: np.ndarray,
                  xx: np.ndarray) -> np.ndarray:
    """Return the stuff index of every pixel (sky / ground / water)."""
    height, width = yy.shape
    xs = np.arange(width, dtype=np.float32)
    horizon = _wavy_line(rng, xs, height * rng.uniform(0.25, 0.5),
                         height * rng.uniform(0.02, 0.07), width)
    stuff = np.full((height, width), STUFF_CLASSES.index('ground'), np.int64)
    layout = rng.random()
    if layout < 0.3:  # water directly below the horizon, ground in front
        shore = _wavy_line(rng, xs, height * rng.uniform(0.6, 0.75),
                           height * rng.uniform(0.01, 0.04), width)
        stuff[yy < shore[None, :]] = STUFF_CLASSES.index('water')
    elif layout < 0.6:  # ground then water in the foreground
        shore = _wavy_line(rng, xs, height * rng.uniform(0.65, 0.85),
                           height * rng.uniform(0.01, 0.04), width)
        stuff[yy >= shore[None, :]] = STUFF_CLASSES.index('water')
    stuff[yy < horizon[None, :]] = STUFF_CLASSES.index('sky')
    return stuff


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


def render_scene(rng: np.random.Generator, height: int,
                 width: int) -> Scene:
    """Render one synthetic scene.

    Args:
        rng (np.random.Generator): Source of randomness; the scene is a
            pure function of its state.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        Scene: The RGB image and its stuff / instance maps.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    stuff_map = _stuff_layout(rng, yy, xx)
    image = np.zeros((height, width, 3), np.float32)
    for idx, texture in enumerate(_STUFF_TEXTURES):
        # Every texture consumes randomness even when the region is empty,
        # which keeps later draws independent of the layout.
        tex = texture(rng, yy, xx)
        region = stuff_map == idx
        image[region] = tex[region]

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

    instance_map = np.full((height, width), -1, np.int64)
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

    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Scene(image, stuff_map, instance_map, labels)


# ---------------------------------------------------------------------------
# Annotation helpers
# ---------------------------------------------------------------------------


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


def _write_rgb(path: str, rgb: np.ndarray) -> None:
    """Write an RGB image with OpenCV (JPEG or PNG from the extension)."""
    params: List[int] = []
    if path.endswith('.jpg'):
        params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f'failed to write {path}')


def _write_gray(path: str, img: np.ndarray) -> None:
    """Write a single channel uint8 PNG."""
    if not cv2.imwrite(path, img):
        raise OSError(f'failed to write {path}')


def _dump_json(path: str, obj: dict, indent: Optional[int] = None) -> None:
    """Write JSON deterministically."""
    separators = (',', ':') if indent is None else (',', ': ')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=indent, separators=separators)
        f.write('\n')


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------


def _check_count(name: str, value: object) -> int:
    """Validate an image count argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or value <= 0:
        raise ValueError(
            f'{name} must be a positive integer, got {value!r}')
    if value > MAX_IMAGES_PER_SPLIT:
        raise ValueError(f'{name} must be at most {MAX_IMAGES_PER_SPLIT}, '
                         f'got {value!r}')
    return int(value)


def _check_img_size(img_size: object) -> Tuple[int, int]:
    """Validate ``img_size`` and return it as ``(height, width)``."""
    if isinstance(img_size, (int, np.integer)) and not isinstance(
            img_size, bool):
        sides: Tuple = (img_size, img_size)
    elif isinstance(img_size, (tuple, list)) and len(img_size) == 2:
        sides = tuple(img_size)
    else:
        raise ValueError('img_size must be an integer or a (height, width) '
                         f'pair, got {img_size!r}')
    for side in sides:
        if isinstance(side, bool) or not isinstance(
                side, (int, np.integer)) or not (MIN_IMG_SIDE <= side <=
                                                 MAX_IMG_SIDE):
            raise ValueError(
                f'img_size sides must be integers in [{MIN_IMG_SIDE}, '
                f'{MAX_IMG_SIDE}], got {img_size!r}')
    return int(sides[0]), int(sides[1])


def _check_tasks(tasks: object) -> Tuple[str, ...]:
    """Validate ``tasks`` and return them in canonical order."""
    if isinstance(tasks, str):
        tasks = (tasks, )
    if not isinstance(tasks, (tuple, list, set, frozenset)) or not tasks:
        raise ValueError('tasks must be a non-empty sequence of task names '
                         f'from {VALID_TASKS}, got {tasks!r}')
    unknown = [t for t in tasks if t not in VALID_TASKS]
    if unknown:
        raise ValueError(f'tasks contains unknown task(s) {unknown!r}; '
                         f'valid tasks are {VALID_TASKS}')
    return tuple(t for t in VALID_TASKS if t in tasks)


def _check_seed(seed: object) -> int:
    """Validate the random seed."""
    if isinstance(seed, bool) or not isinstance(seed,
                                                (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    return int(seed)


# ---------------------------------------------------------------------------
# Output bookkeeping
# ---------------------------------------------------------------------------


def _output_paths(out_dir: str) -> Dict[str, str]:
    """Return every path the generator writes, keyed by a short name."""
    coco = osp.join(out_dir, 'coco')
    ade = osp.join(out_dir, 'ade')
    ann = osp.join(coco, 'annotations')
    paths = {'meta': osp.join(out_dir, 'meta.json'), 'coco_root': coco,
             'ade_root': ade}
    for split, _, coco_dir, ade_dir, _, _ in _SPLITS:
        paths[f'coco_img_{split}'] = osp.join(coco, coco_dir)
        paths[f'instances_{split}'] = osp.join(
            ann, f'instances_{coco_dir}.json')
        paths[f'panoptic_{split}'] = osp.join(ann,
                                              f'panoptic_{coco_dir}.json')
        paths[f'panoptic_png_{split}'] = osp.join(ann,
                                                  f'panoptic_{coco_dir}')
        paths[f'ade_img_{split}'] = osp.join(ade, 'images', ade_dir)
        paths[f'ade_ann_{split}'] = osp.join(ade, 'annotations', ade_dir)
    return paths


def _owned_paths(paths: Dict[str, str]) -> List[str]:
    """Paths that are removed before (re)generating."""
    keys = []
    for split, *_ in _SPLITS:
        keys += [
            f'coco_img_{split}', f'instances_{split}', f'panoptic_{split}',
            f'panoptic_png_{split}', f'ade_img_{split}', f'ade_ann_{split}'
        ]
    return [paths[k] for k in keys]


def _read_meta(path: str) -> Optional[dict]:
    """Return the parsed ``meta.json`` or None when missing / invalid."""
    try:
        with open(path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _expected_files(paths: Dict[str, str], tasks: Sequence[str]) -> List[str]:
    """Top-level outputs that must exist for ``tasks`` to be complete."""
    files = []
    for split, *_ in _SPLITS:
        if 'coco' in tasks:
            files += [paths[f'coco_img_{split}'], paths[f'instances_{split}']]
        if 'panoptic' in tasks:
            files += [
                paths[f'coco_img_{split}'], paths[f'panoptic_{split}'],
                paths[f'panoptic_png_{split}']
            ]
        if 'ade' in tasks:
            files += [paths[f'ade_img_{split}'], paths[f'ade_ann_{split}']]
    return files


def _is_up_to_date(meta: Optional[dict], params: dict,
                   paths: Dict[str, str]) -> bool:
    """Whether an existing output already satisfies ``params``."""
    if not meta or meta.get('generator') != _GENERATOR_NAME:
        return False
    old = meta.get('params', {})
    for key in ('version', 'num_train', 'num_val', 'img_size', 'seed'):
        if old.get(key) != params[key]:
            return False
    if not set(params['tasks']) <= set(old.get('tasks', ())):
        return False
    return all(osp.exists(p) for p in _expected_files(paths, params['tasks']))


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def _coco_categories() -> List[dict]:
    return [
        dict(id=cat_id, name=name, supercategory='shape')
        for cat_id, name in zip(_THING_CAT_IDS, THING_CLASSES)
    ]


def _panoptic_categories() -> List[dict]:
    cats = []
    for cat_id, name, colour in zip(_THING_CAT_IDS, THING_CLASSES,
                                    THING_PALETTE):
        cats.append(
            dict(id=cat_id, name=name, supercategory='shape', isthing=1,
                 color=list(colour)))
    for cat_id, name, colour in zip(_STUFF_CAT_IDS, STUFF_CLASSES,
                                    STUFF_PALETTE):
        cats.append(
            dict(id=cat_id, name=name, supercategory='scene', isthing=0,
                 color=list(colour)))
    return cats


def _info(split: str) -> dict:
    return dict(
        description=f'mmdysample synthetic shapes ({split})',
        version=str(GENERATOR_VERSION),
        year=2024,
        contributor='mmdysample',
        date_created='')


def generate_synthetic_dataset(
        out_dir: str = DEFAULT_OUT_DIR,
        num_train: int = DEFAULT_NUM_TRAIN,
        num_val: int = DEFAULT_NUM_VAL,
        img_size: ImgSize = DEFAULT_IMG_SIZE,
        seed: int = 0,
        tasks: Sequence[str] = VALID_TASKS,
        force: bool = False,
        verbose: bool = False) -> dict:
    """Generate (or reuse) the synthetic dataset.

    If ``out_dir/meta.json`` records the same parameters and generator
    version and the requested outputs exist, nothing is written and the
    result has ``skipped=True``. Otherwise the generator-owned folders and
    files listed in the module docstring are removed and written anew,
    and ``meta.json`` is written last.

    Args:
        out_dir (str): Root of the output. Defaults to ``data/synthetic``.
        num_train (int): Number of training images. Defaults to 400.
        num_val (int): Number of validation images. Defaults to 50.
        img_size (int | tuple[int, int]): Side of square images, or
            ``(height, width)``. Defaults to 192.
        seed (int): Non-negative base seed. Defaults to 0.
        tasks (Sequence[str]): Any of ``'coco'`` (instances JSON),
            ``'panoptic'`` (panoptic JSON + PNGs) and ``'ade'`` (semantic
            labels). COCO images are written for both ``'coco'`` and
            ``'panoptic'``. Defaults to all three.
        force (bool): Regenerate even when the output is up to date, and
            overwrite generator paths in an ``out_dir`` that has no
            ``meta.json``. Defaults to False.
        verbose (bool): Print progress to stdout. Defaults to False.

    Returns:
        dict: ``out_dir``, ``skipped`` (bool), ``params`` (the normalised
        parameters), ``counts`` (per split: ``images``, ``instances``,
        ``segments``), ``paths`` (the files and folders of the requested
        tasks) and ``elapsed_s``.

    Raises:
        ValueError: If an argument is invalid; the message names it.
        FileExistsError: If ``out_dir`` holds generator paths that were not
            written by this generator and ``force`` is False.
    """
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise ValueError(
            f'out_dir must be a non-empty path, got {out_dir!r}')
    out_dir = os.fspath(out_dir)
    params = dict(
        version=GENERATOR_VERSION,
        num_train=_check_count('num_train', num_train),
        num_val=_check_count('num_val', num_val),
        img_size=list(_check_img_size(img_size)),
        seed=_check_seed(seed),
        tasks=list(_check_tasks(tasks)))
    if not isinstance(force, bool):
        raise ValueError(f'force must be a bool, got {force!r}')

    def log(msg: str) -> None:
        if verbose:
            print(msg, flush=True)

    start = time.perf_counter()
    paths = _output_paths(out_dir)
    meta = _read_meta(paths['meta'])
    task_paths = _task_paths(paths, params['tasks'])
    if not force and _is_up_to_date(meta, params, paths):
        log(f'Synthetic dataset in {out_dir} is up to date '
            f'(same parameters, version {GENERATOR_VERSION}); skipping. '
            'Use force=True / --force to regenerate.')
        return dict(
            out_dir=out_dir,
            skipped=True,
            params=params,
            counts=meta.get('counts', {}),
            paths=task_paths,
            elapsed_s=time.perf_counter() - start)

    owned = _owned_paths(paths)
    ours = meta is not None and meta.get('generator') == _GENERATOR_NAME
    if not ours and not force:
        clashes = [
            p for p in owned
            if osp.isfile(p) or (osp.isdir(p) and os.listdir(p))
        ]
        if clashes:
            raise FileExistsError(
                f'{out_dir} already contains {clashes[0]} but no meta.json '
                'written by this generator; refusing to overwrite it. Pass '
                'force=True (--force) or choose another out_dir.')
    # Invalidate first so an interrupted run is never taken as complete.
    if osp.exists(paths['meta']):
        os.remove(paths['meta'])
    for path in owned:
        if osp.isdir(path):
            shutil.rmtree(path)
        elif osp.exists(path):
            os.remove(path)

    height, width = params['img_size']
    tasks = params['tasks']
    write_coco_img = 'coco' in tasks or 'panoptic' in tasks
    counts: Dict[str, dict] = {}
    log(f'Generating synthetic dataset in {out_dir}: '
        f'{params["num_train"]} train / {params["num_val"]} val images of '
        f'{height}x{width}, seed {params["seed"]}, tasks {tasks}')
    for split, code, coco_dir, _, ade_prefix, id_offset in _SPLITS:
        num = params[f'num_{split}']
        for key in (f'coco_img_{split}', f'panoptic_png_{split}',
                    f'ade_img_{split}', f'ade_ann_{split}'):
            needed = ((key.startswith('coco_img') and write_coco_img)
                      or (key.startswith('panoptic') and 'panoptic' in tasks)
                      or (key.startswith('ade') and 'ade' in tasks))
            if needed:
                os.makedirs(paths[key], exist_ok=True)
        if write_coco_img:
            os.makedirs(osp.dirname(paths[f'instances_{split}']),
                        exist_ok=True)
        images, instances, pan_anns = [], [], []
        next_ann_id = 1
        next_segment_id = 1
        report_every = max(1, num // 5)
        for index in range(num):
            rng = np.random.default_rng([params['seed'], code, index])
            scene = render_scene(rng, height, width)
            image_id = id_offset + index + 1
            stem = f'{image_id:012d}'
            if write_coco_img:
                _write_rgb(
                    osp.join(paths[f'coco_img_{split}'], f'{stem}.jpg'),
                    scene.image)
                images.append(
                    dict(id=image_id, file_name=f'{stem}.jpg',
                         height=height, width=width))
            if 'coco' in tasks:
                for idx, label in enumerate(scene.labels):
                    mask = scene.instance_map == idx
                    instances.append(
                        dict(id=next_ann_id, image_id=image_id,
                             category_id=_THING_CAT_IDS[label],
                             segmentation=mask_to_polygons(mask),
                             area=int(mask.sum()), bbox=_tight_bbox(mask),
                             iscrowd=0))
                    next_ann_id += 1
            if 'panoptic' in tasks:
                segment_map = np.zeros((height, width), np.int64)
                segments = []
                for idx, label in enumerate(scene.labels):
                    mask = scene.instance_map == idx
                    segments.append((mask, _THING_CAT_IDS[label]))
                for stuff_idx, cat_id in enumerate(_STUFF_CAT_IDS):
                    mask = (scene.stuff_map == stuff_idx) & (
                        scene.instance_map < 0)
                    if mask.any():
                        segments.append((mask, cat_id))
                segments_info = []
                for mask, cat_id in segments:
                    segment_map[mask] = next_segment_id
                    segments_info.append(
                        dict(id=next_segment_id, category_id=cat_id,
                             iscrowd=0, bbox=_tight_bbox(mask),
                             area=int(mask.sum())))
                    next_segment_id += 1
                _write_rgb(
                    osp.join(paths[f'panoptic_png_{split}'], f'{stem}.png'),
                    _id2rgb(segment_map))
                pan_anns.append(
                    dict(image_id=image_id, file_name=f'{stem}.png',
                         segments_info=segments_info))
            if 'ade' in tasks:
                ade_stem = f'{ade_prefix}_{index + 1:08d}'
                _write_rgb(
                    osp.join(paths[f'ade_img_{split}'], f'{ade_stem}.jpg'),
                    scene.image)
                _write_gray(
                    osp.join(paths[f'ade_ann_{split}'], f'{ade_stem}.png'),
                    scene.semantic_map())
            if (index + 1) % report_every == 0 or index + 1 == num:
                log(f'  [{split}] {index + 1}/{num} images')
        if 'coco' in tasks:
            _dump_json(
                paths[f'instances_{split}'],
                dict(info=_info(split), licenses=[], images=images,
                     annotations=instances, categories=_coco_categories()))
        if 'panoptic' in tasks:
            _dump_json(
                paths[f'panoptic_{split}'],
                dict(info=_info(split), licenses=[], images=images,
                     annotations=pan_anns,
                     categories=_panoptic_categories()))
        counts[split] = dict(
            images=num,
            instances=len(instances) if 'coco' in tasks else None,
            segments=next_segment_id - 1 if 'panoptic' in tasks else None)

    _dump_json(
        paths['meta'],
        dict(generator=_GENERATOR_NAME, params=params,
             counts=counts),
        indent=2)
    elapsed = time.perf_counter() - start
    log(f'Done in {elapsed:.1f} s.')
    return dict(
        out_dir=out_dir,
        skipped=False,
        params=params,
        counts=counts,
        paths=task_paths,
        elapsed_s=elapsed)


def _task_paths(paths: Dict[str, str], tasks: Sequence[str]) -> dict:
    """The subset of :func:`_output_paths` relevant to ``tasks``."""
    keys = ['meta']
    for split, *_ in _SPLITS:
        if 'coco' in tasks:
            keys += [f'coco_img_{split}', f'instances_{split}']
        if 'panoptic' in tasks:
            keys += [
                f'coco_img_{split}', f'panoptic_{split}',
                f'panoptic_png_{split}'
            ]
        if 'ade' in tasks:
            keys += [f'ade_img_{split}', f'ade_ann_{split}']
    if 'coco' in tasks or 'panoptic' in tasks:
        keys.append('coco_root')
    if 'ade' in tasks:
        keys.append('ade_root')
    return {k: paths[k] for k in dict.fromkeys(keys)}


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """Return the argument parser of the command line interface.

    Args:
        prog (str, optional): Program name shown in ``--help``.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description='Generate the mmdysample synthetic shapes dataset '
        '(COCO instances, COCO panoptic and ADE20K-style semantic '
        'segmentation).')
    parser.add_argument(
        '--out', default=DEFAULT_OUT_DIR,
        help=f'output root (default: {DEFAULT_OUT_DIR})')
    parser.add_argument(
        '--num-train', type=int, default=DEFAULT_NUM_TRAIN,
        help=f'training images (default: {DEFAULT_NUM_TRAIN})')
    parser.add_argument(
        '--num-val', type=int, default=DEFAULT_NUM_VAL,
        help=f'validation images (default: {DEFAULT_NUM_VAL})')
    parser.add_argument(
        '--img-size', type=int, nargs='+', default=[DEFAULT_IMG_SIZE],
        metavar='S',
        help='image side, or HEIGHT WIDTH '
        f'(default: {DEFAULT_IMG_SIZE})')
    parser.add_argument(
        '--seed', type=int, default=0, help='base random seed (default: 0)')
    parser.add_argument(
        '--tasks', nargs='+', default=list(VALID_TASKS),
        choices=VALID_TASKS, help='formats to write (default: all)')
    parser.add_argument(
        '--force', action='store_true',
        help='regenerate even if the output is up to date')
    parser.add_argument(
        '--quiet', action='store_true', help='only print the summary')
    return parser


def main(argv: Optional[Sequence[str]] = None,
         prog: Optional[str] = None) -> int:
    """Command line entry point.

    Args:
        argv (Sequence[str], optional): Arguments without the program
            name; ``sys.argv[1:]`` when None.
        prog (str, optional): Program name shown in ``--help``.

    Returns:
        int: Process exit status (0 on success, 2 on invalid arguments).
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if len(args.img_size) > 2:
        parser.error('--img-size takes one value (square) or two values '
                     f'(HEIGHT WIDTH), got {args.img_size}')
    img_size = (args.img_size[0] if len(args.img_size) == 1 else tuple(
        args.img_size))
    try:
        result = generate_synthetic_dataset(
            out_dir=args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            img_size=img_size,
            seed=args.seed,
            tasks=args.tasks,
            force=args.force,
            verbose=not args.quiet)
    except (ValueError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    status = ('already up to date (skipped)'
              if result['skipped'] else 'generated')
    height, width = result['params']['img_size']
    print(f'Synthetic dataset {status}: {result["out_dir"]}')
    print(f'  image size {height}x{width}, seed {result["params"]["seed"]}, '
          f'tasks {", ".join(result["params"]["tasks"])}')
    for split, count in result['counts'].items():
        parts = [f'{count["images"]} images']
        if count.get('instances') is not None:
            parts.append(f'{count["instances"]} instances')
        if count.get('segments') is not None:
            parts.append(f'{count["segments"]} panoptic segments')
        print(f'  {split}: ' + ', '.join(parts))
    for key, path in result['paths'].items():
        print(f'  {key}: {path}')
    print(f'  time: {result["elapsed_s"]:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main(prog='python -m mmdysample.datasets.synthetic'))
