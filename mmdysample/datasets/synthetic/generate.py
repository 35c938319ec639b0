# Copyright (c) mmdysample contributors. All rights reserved.
"""The generator: argument checks, then every split in every format.

:func:`generate_synthetic_dataset` validates its arguments, reuses an
up-to-date output (:mod:`.layout`), and otherwise renders every image of a
split once (:mod:`.scenes`) and hands the scene to the writer of each
requested format (:mod:`.coco`, :mod:`.panoptic`, :mod:`.ade`). The depth
data (``scenes='depth'``) renders rooms (:mod:`.rooms`) and writes them in
the NYU Depth V2 layout (:mod:`.nyu`).
"""
import os
import os.path as osp
import shutil
import time
from typing import (Callable, Dict, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from .ade import ade_stem, write_ade_pair
from .coco import coco_instances, write_coco_image, write_coco_json
from .files import _dump_json
from .layout import (_GENERATOR_NAME, _SPLITS, _is_up_to_date, _output_paths,
                     _owned_paths, _read_meta, _task_paths)
from .metainfo import GENERATOR_VERSION
from .nyu import nyu_stem, write_nyu_pair
from .panoptic import write_panoptic_json, write_panoptic_png
from .rooms import ROOMS_VERSION, render_room
from .scenes import SCENE_KINDS

__all__ = [
    'VALID_TASKS', 'DEFAULT_OUT_DIR', 'DEFAULT_OUT_DIRS', 'DEPTH_SCENES',
    'KIND_DEFAULTS', 'KindDefaults', 'generate_synthetic_dataset'
]

DEFAULT_OUT_DIR = osp.join('data', 'synthetic')
DEFAULT_NUM_TRAIN = 400
DEFAULT_NUM_VAL = 50
DEFAULT_IMG_SIZE = 192
MIN_IMG_SIDE = 32
MAX_IMG_SIDE = 4096
MAX_IMAGES_PER_SPLIT = 100_000

#: The formats of the segmentation scenes (:data:`~.scenes.SCENE_KINDS`).
SEG_TASKS = ('coco', 'panoptic', 'ade')
#: The ``scenes`` value of the depth data: rooms with metric depth, whose
#: one format is ``'nyu'``.
DEPTH_SCENES = 'depth'
VALID_TASKS = SEG_TASKS + ('nyu', )

ImgSize = Union[int, Sequence[int]]


class KindDefaults(NamedTuple):
    """What a ``scenes`` value writes when an argument is left out.

    Attributes:
        out_dir (str): Output root.
        num_train (int): Training images.
        num_val (int): Held-out images (NYU's ``test`` split for depth).
        img_size (int | tuple[int, int]): Side, or ``(height, width)``.
        tasks (tuple[str]): Every format the kind can be written in.
    """
    out_dir: str
    num_train: int
    num_val: int
    img_size: ImgSize
    tasks: Tuple[str, ...]


#: The defaults of every value ``scenes`` takes: the segmentation kinds,
#: then the depth data (sized for a CPU: 120 images of NYU's 3:4 aspect in
#: a few seconds).
KIND_DEFAULTS: Dict[str, KindDefaults] = {
    'default':
    KindDefaults(DEFAULT_OUT_DIR, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL,
                 DEFAULT_IMG_SIZE, SEG_TASKS),
    'fine':
    KindDefaults(
        osp.join('data', 'synthetic_fine'), DEFAULT_NUM_TRAIN,
        DEFAULT_NUM_VAL, DEFAULT_IMG_SIZE, SEG_TASKS),
    DEPTH_SCENES:
    KindDefaults(
        osp.join('data', 'synthetic_depth'), 96, 24, (192, 256), ('nyu', )),
}
#: Where each kind of segmentation scene is written when no ``out_dir`` is
#: given (the depth data's is ``KIND_DEFAULTS['depth'].out_dir``).
DEFAULT_OUT_DIRS = {name: KIND_DEFAULTS[name].out_dir for name in SCENE_KINDS}


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


def _check_scenes(scenes: object) -> str:
    """Validate the kind of scene."""
    if not isinstance(scenes, str) or scenes not in KIND_DEFAULTS:
        raise ValueError(
            f'scenes must be a kind of segmentation scene, one of '
            f'{tuple(SCENE_KINDS)}, or {DEPTH_SCENES!r}, got {scenes!r}')
    return scenes


def _check_tasks(tasks: object, scenes: str) -> Tuple[str, ...]:
    """Validate ``tasks`` for ``scenes``; return them in canonical order."""
    allowed = KIND_DEFAULTS[scenes].tasks
    if tasks is None:
        return allowed
    if isinstance(tasks, str):
        tasks = (tasks, )
    if not isinstance(tasks, (tuple, list, set, frozenset)) or not tasks:
        raise ValueError('tasks must be a non-empty sequence of task names '
                         f'from {VALID_TASKS}, got {tasks!r}')
    unknown = [t for t in tasks if t not in VALID_TASKS]
    if unknown:
        raise ValueError(f'tasks contains unknown task(s) {unknown!r}; '
                         f'valid tasks are {VALID_TASKS}')
    foreign = [t for t in tasks if t not in allowed]
    if foreign:
        raise ValueError(f'tasks {foreign!r} cannot be written for '
                         f'scenes={scenes!r}, whose tasks are {allowed}')
    return tuple(t for t in VALID_TASKS if t in tasks)


def _check_seed(seed: object) -> int:
    """Validate the random seed."""
    if isinstance(seed, bool) or not isinstance(seed,
                                                (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    return int(seed)


def _write_split(paths: Dict[str, str], split: Tuple, params: dict,
                 log: Callable[[str], None]) -> dict:
    """Render every image of one split and write it in every task's format.

    Args:
        paths (dict[str, str]): The output paths (:func:`_output_paths`).
        split (tuple): One row of :data:`_SPLITS`.
        params (dict): The normalised generation parameters.
        log (Callable[[str], None]): Progress printer.

    Returns:
        dict: ``images``, ``instances`` (None without ``'coco'``) and
        ``segments`` (None without ``'panoptic'``) of the split.
    """
    name, code, _, _, ade_prefix, id_offset = split
    height, width = params['img_size']
    kind = SCENE_KINDS[params['scenes']]
    tasks = params['tasks']
    num = params[f'num_{name}']
    write_coco_img = 'coco' in tasks or 'panoptic' in tasks
    for key in (f'coco_img_{name}', f'panoptic_png_{name}', f'ade_img_{name}',
                f'ade_ann_{name}'):
        needed = ((key.startswith('coco_img') and write_coco_img)
                  or (key.startswith('panoptic') and 'panoptic' in tasks)
                  or (key.startswith('ade') and 'ade' in tasks))
        if needed:
            os.makedirs(paths[key], exist_ok=True)
    if write_coco_img:
        os.makedirs(osp.dirname(paths[f'instances_{name}']), exist_ok=True)
    images, instances, pan_anns = [], [], []
    num_segments = 0
    report_every = max(1, num // 5)
    for index in range(num):
        rng = np.random.default_rng([params['seed'], code, index])
        scene = kind.render(rng, height, width)
        image_id = id_offset + index + 1
        if write_coco_img:
            images.append(
                write_coco_image(scene, paths[f'coco_img_{name}'], image_id))
        if 'coco' in tasks:
            instances += coco_instances(scene, image_id, len(instances) + 1)
        if 'panoptic' in tasks:
            pan_anns.append(
                write_panoptic_png(scene, paths[f'panoptic_png_{name}'],
                                   image_id, num_segments + 1))
            num_segments += len(pan_anns[-1]['segments_info'])
        if 'ade' in tasks:
            write_ade_pair(scene, paths[f'ade_img_{name}'],
                           paths[f'ade_ann_{name}'],
                           ade_stem(ade_prefix, index + 1))
        if (index + 1) % report_every == 0 or index + 1 == num:
            log(f'  [{name}] {index + 1}/{num} images')
    if 'coco' in tasks:
        write_coco_json(paths[f'instances_{name}'], name, images, instances,
                        kind.classes)
    if 'panoptic' in tasks:
        write_panoptic_json(paths[f'panoptic_{name}'], name, images, pan_anns,
                            kind.classes)
    return dict(
        images=num,
        instances=len(instances) if 'coco' in tasks else None,
        segments=num_segments if 'panoptic' in tasks else None)


def _write_depth_split(paths: Dict[str, str], split: Tuple, params: dict,
                       log: Callable[[str], None]) -> dict:
    """Render every room of one split and write it in the NYU layout.

    Args:
        paths (dict[str, str]): The output paths (:func:`_output_paths`).
        split (tuple): One row of :data:`_SPLITS`.
        params (dict): The normalised generation parameters.
        log (Callable[[str], None]): Progress printer.

    Returns:
        dict: ``images``, the number of images of the split.
    """
    name, code = split[:2]
    height, width = params['img_size']
    num = params[f'num_{name}']
    img_dir, ann_dir = paths[f'nyu_img_{name}'], paths[f'nyu_ann_{name}']
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    report_every = max(1, num // 5)
    for index in range(num):
        rng = np.random.default_rng([params['seed'], code, index])
        room = render_room(rng, height, width)
        write_nyu_pair(room, img_dir, ann_dir,
                       nyu_stem(room.category, index + 1))
        if (index + 1) % report_every == 0 or index + 1 == num:
            log(f'  [{name}] {index + 1}/{num} images')
    return dict(images=num)


def generate_synthetic_dataset(
        out_dir: Optional[str] = None,
        num_train: Optional[int] = None,
        num_val: Optional[int] = None,
        img_size: Optional[ImgSize] = None,
        seed: int = 0,
        tasks: Optional[Sequence[str]] = None,
        force: bool = False,
        verbose: bool = False,
        scenes: str = 'default') -> dict:
    """Generate (or reuse) the synthetic dataset.

    If ``out_dir/meta.json`` records the same parameters and generator
    version and the requested outputs exist, nothing is written and the
    result has ``skipped=True``. Otherwise the generator-owned folders and
    files listed in the :mod:`mmdysample.datasets.synthetic` docstring
    are removed and written anew, and ``meta.json`` is written last.

    The arguments left out (None) take the defaults of ``scenes``
    (:data:`KIND_DEFAULTS`).

    Args:
        out_dir (str, optional): Root of the output. Defaults to
            ``data/synthetic`` for the default scenes,
            ``data/synthetic_fine`` for the fine ones and
            ``data/synthetic_depth`` for depth.
        num_train (int, optional): Number of training images. Defaults to
            400 (96 for depth).
        num_val (int, optional): Number of validation images, the ``test``
            split of the NYU layout for depth. Defaults to 50 (24 for
            depth).
        img_size (int | tuple[int, int], optional): Side of square images,
            or ``(height, width)``. Defaults to 192 (``(192, 256)``, NYU's
            aspect, for depth).
        seed (int): Non-negative base seed. Defaults to 0.
        tasks (Sequence[str], optional): For the segmentation scenes any of
            ``'coco'`` (instances JSON), ``'panoptic'`` (panoptic JSON +
            PNGs) and ``'ade'`` (semantic labels); COCO images are written
            for both ``'coco'`` and ``'panoptic'``. For depth ``'nyu'``
            (:mod:`.nyu`). Defaults to all of the kind's.
        force (bool): Regenerate even when the output is up to date, and
            overwrite generator paths in an ``out_dir`` that has no
            ``meta.json``. Defaults to False.
        verbose (bool): Print progress to stdout. Defaults to False.
        scenes (str): The kind of scene: a key of
            :data:`~.scenes.SCENE_KINDS`, ``'default'`` (large convex
            shapes, the data of the ``_synthetic`` configs) or ``'fine'``
            (thin structures, small things and fine borders, where the
            upsampler matters), or ``'depth'`` (rooms with metric depth,
            :mod:`.rooms`). ``meta.json`` records it; an output of
            another kind is regenerated. Defaults to ``'default'``.

    Returns:
        dict: ``out_dir``, ``skipped`` (bool), ``params`` (the normalised
        parameters), ``counts`` (per split: ``images``, ``instances``,
        ``segments``; ``images`` only for depth), ``paths`` (the files and
        folders of the requested tasks) and ``elapsed_s``.

    Raises:
        ValueError: If an argument is invalid; the message names it.
        FileExistsError: If ``out_dir`` holds generator paths that were not
            written by this generator and ``force`` is False.
    """
    defaults = KIND_DEFAULTS[_check_scenes(scenes)]
    if out_dir is None:
        out_dir = defaults.out_dir
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise ValueError(
            f'out_dir must be a non-empty path, got {out_dir!r}')
    out_dir = os.fspath(out_dir)
    params = dict(
        version=GENERATOR_VERSION,
        num_train=_check_count(
            'num_train', defaults.num_train if num_train is None else
            num_train),
        num_val=_check_count(
            'num_val', defaults.num_val if num_val is None else num_val),
        img_size=list(
            _check_img_size(
                defaults.img_size if img_size is None else img_size)),
        seed=_check_seed(seed),
        scenes=scenes,
        tasks=list(_check_tasks(tasks, scenes)))
    if scenes == DEPTH_SCENES:
        params['rooms_version'] = ROOMS_VERSION
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
    log(f'Generating synthetic dataset in {out_dir}: '
        f'{params["num_train"]} train / {params["num_val"]} val images of '
        f'{height}x{width}, seed {params["seed"]}, {scenes} scenes, '
        f'tasks {params["tasks"]}')
    write = _write_depth_split if scenes == DEPTH_SCENES else _write_split
    counts = {split[0]: write(paths, split, params, log) for split in _SPLITS}
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
