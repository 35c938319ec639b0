# Copyright (c) mmdysample contributors. All rights reserved.
"""Clear errors for depth data in the NYU Depth V2 layout.

mmseg's ``NYUDataset`` lists ``data_prefix['img_path']`` for images and
expects a depth PNG of the same stem under
``data_prefix['depth_map_path']``. A folder laid out otherwise fails
obscurely there: a missing image folder is a bare ``FileNotFoundError``
from ``os.scandir``, an empty one "no samples", an image name without a
digit a bare ``StopIteration`` (the ``category_id`` is the text before the
first digit), a ``data_prefix`` without ``depth_map_path`` a ``KeyError``
in the pipeline, and a missing depth map an error when the sampler first
reaches it. :func:`check_nyu_layout` turns each into an error that names
the layout expected and what was found; :func:`~.checks.CheckedDataset`
runs it before the dataset lists its files.

Depth maps are decoded only when the pipeline reads them:
:class:`CheckDepthMap`, inserted after ``LoadDepthAnnotation``, rejects a
map without a valid pixel and one in millimetres read as metres (mmseg's
``LoadDepthAnnotation`` defaults to ``depth_rescale_factor=1.0``; NYU's
PNGs need ``1e-3``).
"""
import os
import os.path as osp
import sys
from collections import Counter
from typing import Any, Dict, List

import numpy as np
from mmengine.registry import TRANSFORMS

__all__ = ['is_nyu_dataset', 'check_nyu_layout', 'CheckDepthMap']


def is_nyu_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` is mmseg's ``NYUDataset`` or a subclass.

    Reads ``sys.modules`` instead of importing mmseg: a dataset of a class
    from a module that is not imported cannot exist.
    """
    module = sys.modules.get('mmseg.datasets.nyu')
    return module is not None and isinstance(dataset, module.NYUDataset)


def _expected(dataset) -> str:
    """The layout ``dataset`` reads, in one sentence."""
    return (f'{type(dataset).__name__} reads '
            f'<data_root>/images/<split>/*{dataset.img_suffix} and '
            f'<data_root>/annotations/<split>/*{dataset.seg_map_suffix} of '
            "the same stem (data_prefix=dict(img_path='images/<split>', "
            "depth_map_path='annotations/<split>')); given "
            f'data_root={dataset.data_root!r}, '
            f'data_prefix={dict(dataset.data_prefix)!r}')


def _listed(names: List[str], max_listed: int) -> str:
    more = len(names) - max_listed
    return ', '.join(names[:max_listed]) + (f' and {more} more'
                                            if more > 0 else '')


def _holds(path: str, max_listed: int) -> str:
    """What the nearest existing folder at or above ``path`` holds."""
    folder = osp.normpath(path)
    while not osp.isdir(folder):
        parent = osp.dirname(folder) or '.'
        if parent == folder:
            return f'no folder above {path!r} exists'
        folder = parent
    names = sorted(
        name + '/' if osp.isdir(osp.join(folder, name)) else name
        for name in os.listdir(folder))
    return f'{folder!r} holds ' + (_listed(names, max_listed)
                                   if names else 'nothing')


def _files(folder: str) -> List[str]:
    """Every file under ``folder``, relative to it, sorted."""
    found = []
    for root, _, names in os.walk(folder):
        found += [osp.relpath(osp.join(root, n), folder) for n in names]
    return sorted(found)


def _suffixes(files: List[str]) -> str:
    counts = Counter(osp.splitext(f)[1] or '(none)' for f in files)
    return ', '.join(f'{n} {suffix!r}' for suffix, n in counts.most_common())


def check_nyu_layout(dataset: Any, max_listed: int = 5) -> None:
    """Raise if an ``NYUDataset``'s folders are not laid out as it reads
    them (local files only; call before ``full_init``).

    Args:
        dataset: An mmseg ``NYUDataset`` (or subclass) built with
            ``lazy_init=True``: its ``data_prefix`` joined to
            ``data_root``, its samples not listed yet.
        max_listed (int): How many names a message lists. Defaults to 5.

    Raises:
        FileNotFoundError: The image or depth map folder does not exist, or
            images have no depth map of the same stem; the message names
            the layout expected, the paths and what the folder holds.
        ValueError: No image under the image folder, image names without
            a digit, or no ``depth_map_path`` in ``data_prefix`` although
            the pipeline loads depth maps.
    """
    img_dir = dataset.data_prefix.get('img_path')
    ann_dir = dataset.data_prefix.get('depth_map_path')
    img_suffix, ann_suffix = dataset.img_suffix, dataset.seg_map_suffix
    if not isinstance(img_dir, str):
        return  # mmseg's own error is as clear as ours would be
    if not osp.isdir(img_dir):
        raise FileNotFoundError(
            f'{_expected(dataset)}: the image folder {img_dir!r} does not '
            f'exist; {_holds(img_dir, max_listed)}')
    files = _files(img_dir)
    images = [f for f in files if f.endswith(img_suffix)]
    if not images:
        found = (f'it holds {_suffixes(files)} files'
                 if files else 'it is empty')
        raise ValueError(f'{_expected(dataset)}: no *{img_suffix} file '
                         f'under {img_dir!r}; {found}')
    no_digit = [f for f in images
                if not any(c.isdigit() for c in osp.basename(f))]
    if no_digit:
        raise ValueError(
            f'{_expected(dataset)}: {len(no_digit)} of the {len(images)} '
            'image names have no digit, and the category_id of a sample is '
            'the text of its name before the first digit (bedroom_0001): '
            + _listed(no_digit, max_listed))
    if not isinstance(ann_dir, str):
        transforms = getattr(dataset.pipeline, 'transforms', [])
        if any(type(t).__name__ == 'LoadDepthAnnotation'
               for t in transforms):
            raise ValueError(
                f'{_expected(dataset)}: data_prefix has no depth_map_path, '
                'but the pipeline loads depth maps (LoadDepthAnnotation)')
        return
    if not osp.isdir(ann_dir):
        raise FileNotFoundError(
            f'{_expected(dataset)}: the depth map folder {ann_dir!r} does '
            f'not exist; {_holds(ann_dir, max_listed)}')
    missing = [
        osp.join(ann_dir, f[:-len(img_suffix)] + ann_suffix) for f in images
        if not osp.isfile(
            osp.join(ann_dir, f[:-len(img_suffix)] + ann_suffix))
    ]
    if missing:
        raise FileNotFoundError(
            f'{_expected(dataset)}: {len(missing)} of the {len(images)} '
            f'images under {img_dir!r} have no depth map: '
            f'{_listed(missing, max_listed)}; '
            f'{_holds(ann_dir, max_listed)}')


@TRANSFORMS.register_module()
class CheckDepthMap:
    """Reject a depth map without a valid pixel or beyond ``max_depth``.

    Put after ``LoadDepthAnnotation``; :func:`~.checks.CheckedDataset`
    inserts it there. A map with no pixel above 0 gives the SiLog loss a
    NaN gradient; values beyond ``max_depth`` metres are the millimetres
    of a PNG read without ``depth_rescale_factor=1e-3``.

    Required keys: ``gt_depth_map``. Optional: ``depth_map_path``,
    ``depth_rescale_factor`` (both only for the message).

    Args:
        max_depth (float): The largest plausible depth in metres. Defaults
            to 1000.

    Example:
        >>> check = CheckDepthMap()
        >>> ok = check({'gt_depth_map': np.array([[0.0, 2.5]])})
        >>> check({'gt_depth_map': np.array([[0.0, 2500.0]]),
        ...        'depth_map_path': 'a.png', 'depth_rescale_factor': 1.0})
        Traceback (most recent call last):
        ...
        ValueError: depth map 'a.png' reaches 2500.0 beyond max_depth=1000.0 \
metres with depth_rescale_factor=1.0: millimetres read as metres? NYU's PNGs \
need LoadDepthAnnotation(depth_rescale_factor=1e-3)
    """

    def __init__(self, max_depth: float = 1000.0) -> None:
        if isinstance(max_depth, bool) or not isinstance(
                max_depth, (int, float)) or not max_depth > 0:
            raise ValueError(
                f'max_depth must be a positive number, got {max_depth!r}')
        self.max_depth = float(max_depth)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        depth = np.asarray(results['gt_depth_map'])
        path = results.get('depth_map_path')
        valid = depth[np.isfinite(depth) & (depth > 0)]
        if valid.size == 0:
            raise ValueError(f'depth map {path!r} has no valid pixel (none '
                             'above 0)')
        if valid.max() > self.max_depth:
            raise ValueError(
                f'depth map {path!r} reaches {float(valid.max())} beyond '
                f'max_depth={self.max_depth} metres with '
                'depth_rescale_factor='
                f'{results.get("depth_rescale_factor")}: millimetres read '
                "as metres? NYU's PNGs need "
                'LoadDepthAnnotation(depth_rescale_factor=1e-3)')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(max_depth={self.max_depth})'
