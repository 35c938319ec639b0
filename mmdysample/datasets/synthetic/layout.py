# Copyright (c) mmdysample contributors. All rights reserved.
"""The on-disk layout of the output and its ``meta.json``.

Every path the generator writes is named here, keyed by a short name
(``coco_img_train``, ``panoptic_val``, ``nyu_ann_val``, ...);
``meta.json`` records the generation parameters, so that an output that
already satisfies them is reused instead of written again.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

# Recorded in meta.json: only an output with this name is reused, or
# overwritten without force.
_GENERATOR_NAME = 'mmdysample.datasets.synthetic'

#: COCO image ids of the validation split start after this offset so that
#: train and val ids never collide.
VAL_ID_OFFSET = 1_000_000

_SPLITS = (
    # name, seed code, coco folder, ade folder, ade file prefix, id offset
    ('train', 0, 'train2017', 'training', 'ADE_train', 0),
    ('val', 1, 'val2017', 'validation', 'ADE_val', VAL_ID_OFFSET),
)
#: The NYU Depth V2 folder of every split: its held-out split is ``test``.
_NYU_DIRS = {'train': 'train', 'val': 'test'}


def _output_paths(out_dir: str) -> Dict[str, str]:
    """Return every path the generator writes, keyed by a short name."""
    coco = osp.join(out_dir, 'coco')
    ade = osp.join(out_dir, 'ade')
    nyu = osp.join(out_dir, 'nyu')
    ann = osp.join(coco, 'annotations')
    paths = {'meta': osp.join(out_dir, 'meta.json'), 'coco_root': coco,
             'ade_root': ade, 'nyu_root': nyu}
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
        paths[f'nyu_img_{split}'] = osp.join(nyu, 'images', _NYU_DIRS[split])
        paths[f'nyu_ann_{split}'] = osp.join(nyu, 'annotations',
                                             _NYU_DIRS[split])
    return paths


def _owned_paths(paths: Dict[str, str]) -> List[str]:
    """Paths that are removed before (re)generating."""
    keys = []
    for split, *_ in _SPLITS:
        keys += [
            f'coco_img_{split}', f'instances_{split}', f'panoptic_{split}',
            f'panoptic_png_{split}', f'ade_img_{split}', f'ade_ann_{split}',
            f'nyu_img_{split}', f'nyu_ann_{split}'
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
        if 'nyu' in tasks:
            files += [paths[f'nyu_img_{split}'], paths[f'nyu_ann_{split}']]
    return files


def _is_up_to_date(meta: Optional[dict], params: dict,
                   paths: Dict[str, str]) -> bool:
    """Whether an existing output already satisfies ``params``."""
    if not meta or meta.get('generator') != _GENERATOR_NAME:
        return False
    old = meta.get('params', {})
    # Every parameter but the kind and the tasks (a subset of those
    # written is up to date); the depth data adds its renderer's version.
    for key in params.keys() - {'scenes', 'tasks'}:
        if old.get(key) != params[key]:
            return False
    # Outputs written before there were kinds of scene hold default scenes.
    if old.get('scenes', 'default') != params['scenes']:
        return False
    if not set(params['tasks']) <= set(old.get('tasks', ())):
        return False
    return all(osp.exists(p) for p in _expected_files(paths, params['tasks']))


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
        if 'nyu' in tasks:
            keys += [f'nyu_img_{split}', f'nyu_ann_{split}']
    if 'coco' in tasks or 'panoptic' in tasks:
        keys.append('coco_root')
    if 'ade' in tasks:
        keys.append('ade_root')
    if 'nyu' in tasks:
        keys.append('nyu_root')
    return {k: paths[k] for k in dict.fromkeys(keys)}
