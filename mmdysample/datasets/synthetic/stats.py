# Copyright (c) mmdysample contributors. All rights reserved.
"""How much a semantic segmentation set asks of an upsampler.

Measured on ADE20K-style label maps (value ``k >= 1`` is class ``k - 1``,
``0`` is unlabelled), e.g. those of the built-in data:

* **boundary pixels**: the fraction of labelled pixels within ``d`` px of a
  class boundary, i.e. whose ``(2d+1) x (2d+1)`` window holds another value
  (the image border is no boundary);
* **thin regions**: a region is a connected (8-neighbour) part of one
  class; its width is ``2 * max(distance transform) - 1`` px (the largest
  inscribed disc, exact for bars of odd width, one pixel short for even
  widths). The fraction of regions, and of labelled pixels in regions,
  narrower than an output stride ``s``;
* **classes**: how many appear per image and in the whole set;
* **upsampling oracle**: the label map's one-hot is downsampled to stride
  ``s`` by area averaging (the best a stride-``s`` prediction can hold per
  cell), upsampled back with nearest or bilinear interpolation (OpenCV,
  half-pixel centres, as ``F.interpolate(..., align_corners=False)``) and
  its argmax scored against the full-resolution labels: mIoU as mmseg's
  ``IoUMetric`` (intersections and unions summed over the set) and the
  boundary IoU of :mod:`mmdysample.evaluation.boundary_iou`. Where a
  bilinear map of stride-``s`` averages already places every boundary
  within a pixel, the bilinear oracle is near 100 and a learned upsampler
  has little to win.

:func:`label_map_stats` measures label maps in memory; :func:`dataset_stats`
reads a generated dataset (or any ADE-style folder) and
:func:`format_stats_table` prints several side by side
(``tools/analysis_tools/synthetic_data_stats.py``). numpy and OpenCV only;
the boundary IoU imports torch when asked for.
"""
import json
import os
import os.path as osp
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import cv2
import numpy as np

__all__ = [
    'ORACLE_MODES', 'near_boundary', 'region_widths', 'oracle_prediction',
    'label_map_stats', 'dataset_stats', 'format_stats_table'
]

#: The interpolations of the oracle, by name.
ORACLE_MODES = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR}
_ADE_SPLITS = ('training', 'validation')


def _check_label_map(label: np.ndarray) -> np.ndarray:
    if not isinstance(label, np.ndarray) or label.ndim != 2 or \
            not label.size or not np.issubdtype(label.dtype, np.integer):
        raise ValueError('label maps must be non-empty (H, W) integer '
                         f'arrays, got {type(label).__name__} '
                         f'{getattr(label, "shape", None)} '
                         f'{getattr(label, "dtype", None)}')
    if label.min() < 0:
        raise ValueError(f'label maps must be >= 0, got {label.min()}')
    return label


def _check_positive_ints(name: str, values: object) -> List[int]:
    if isinstance(values, (int, np.integer)):
        values = (values, )
    if not isinstance(values, (tuple, list)) or not values or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer))
            or v < 1 for v in values):
        raise ValueError(
            f'{name} must be positive integers, got {values!r}')
    return [int(v) for v in values]


def near_boundary(label: np.ndarray, distance: int) -> np.ndarray:
    """Pixels within ``distance`` px (Chebyshev) of another value.

    Args:
        label (np.ndarray): ``(H, W)`` integer labels.
        distance (int): ``d >= 1``.

    Returns:
        np.ndarray: ``(H, W)`` bool, True where the ``(2d+1) x (2d+1)``
        window centred on the pixel holds another value; the image border
        is replicated, so it makes no boundary.

    Example:
        >>> label = np.ones((3, 6), np.uint8)
        >>> label[:, 3:] = 2
        >>> near_boundary(label, 1).astype(int)
        array([[0, 0, 1, 1, 0, 0],
               [0, 0, 1, 1, 0, 0],
               [0, 0, 1, 1, 0, 0]])
    """
    size = 2 * _check_positive_ints('distance', distance)[0] + 1
    label = _check_label_map(label)
    codes = label.astype(np.uint16 if label.max() < 2**16 else np.float32)
    gradient = cv2.morphologyEx(codes, cv2.MORPH_GRADIENT,
                                np.ones((size, size), np.uint8),
                                borderType=cv2.BORDER_REPLICATE)
    return gradient != 0


def region_widths(label: np.ndarray,
                  ignore_index: int = 0) -> Dict[str, np.ndarray]:
    """Class, width and area of every connected region of a label map.

    Args:
        label (np.ndarray): ``(H, W)`` integer labels.
        ignore_index (int): The unlabelled value; its pixels form no
            region. Defaults to 0.

    Returns:
        dict[str, np.ndarray]: ``value``, ``width`` (px, ``2 * max(distance
        transform) - 1``; the image border counts as outside) and ``area``
        (px) of every region, one entry each.

    Example:
        >>> label = np.ones((9, 12), np.uint8)
        >>> label[2:7, 2:5] = 2  # a bar 3 px wide
        >>> label[:, 8] = 3      # a line 1 px wide
        >>> {k: v.tolist() for k, v in region_widths(label).items()}
        {'value': [1, 1, 2, 3], 'width': [3.0, 3.0, 3.0, 1.0], \
'area': [57, 27, 15, 9]}
    """
    label = _check_label_map(label)
    values, widths, areas = [], [], []
    for value in np.unique(label):
        if value == ignore_index:
            continue
        mask = np.pad((label == value).astype(np.uint8), 1)
        count, parts = cv2.connectedComponents(mask, connectivity=8)
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        inside = parts > 0
        peak = np.zeros(count, np.float64)
        np.maximum.at(peak, parts[inside], dist[inside])
        values += [int(value)] * (count - 1)
        widths.append(2 * peak[1:] - 1)
        areas.append(np.bincount(parts[inside], minlength=count)[1:])
    return dict(
        value=np.asarray(values, np.int64),
        width=np.concatenate(widths) if widths else np.zeros(0),
        area=np.concatenate(areas) if areas else np.zeros(0, np.int64))


def oracle_prediction(label: np.ndarray, num_classes: int, stride: int,
                      mode: str) -> np.ndarray:
    """The labels an ideal stride-``stride`` prediction upsamples to.

    Args:
        label (np.ndarray): ``(H, W)`` labels, ``1..num_classes`` (others
            are no class: all-zero one-hot).
        num_classes (int): Number of classes.
        stride (int): Output stride of the prediction.
        mode (str): ``'nearest'`` or ``'bilinear'``.

    Returns:
        np.ndarray: ``(H, W)`` int64 labels ``1..num_classes``: the argmax
        of the area-averaged one-hot, upsampled back with ``mode``.

    Example:
        >>> label = np.ones((8, 8), np.uint8)
        >>> label[:, 5:] = 2  # the boundary is not on the stride-4 grid
        >>> oracle_prediction(label, 2, 4, 'nearest')[0].tolist()
        [1, 1, 1, 1, 2, 2, 2, 2]
        >>> oracle_prediction(label, 2, 4, 'bilinear')[0].tolist()
        [1, 1, 1, 1, 1, 2, 2, 2]
        >>> label[:, 6:] = 1  # a line 1 px wide is lost by both
        >>> oracle_prediction(label, 2, 4, 'bilinear')[0].tolist()
        [1, 1, 1, 1, 1, 1, 1, 1]
    """
    if mode not in ORACLE_MODES:
        raise ValueError(f'mode must be one of {tuple(ORACLE_MODES)}, got '
                         f'{mode!r}')
    stride = _check_positive_ints('stride', stride)[0]
    label = _check_label_map(label)
    height, width = label.shape
    if num_classes == 1:  # one class: nothing to decide
        return np.ones((height, width), np.int64)
    onehot = (label[..., None] == np.arange(1, num_classes + 1)).astype(
        np.float32)
    small = (max(1, -(-width // stride)), max(1, -(-height // stride)))
    coarse = cv2.resize(onehot, small, interpolation=cv2.INTER_AREA)
    up = cv2.resize(coarse, (width, height),
                    interpolation=ORACLE_MODES[mode])
    return up.argmax(axis=-1).astype(np.int64) + 1


class _OracleScore:
    """Sums of intersections and unions, plain and of boundary bands."""

    def __init__(self, num_classes: int, boundary_iou: bool) -> None:
        self.num_classes = num_classes
        self.inter = np.zeros(num_classes, np.int64)
        self.union = np.zeros(num_classes, np.int64)
        self.boundary = None
        if boundary_iou:
            self.boundary = (np.zeros(num_classes, np.int64),
                             np.zeros(num_classes, np.int64))

    def add(self, pred: np.ndarray, label: np.ndarray,
            ignore_index: int) -> None:
        valid = label != ignore_index
        gt, pr = label[valid] - 1, pred[valid] - 1
        k = self.num_classes
        in_gt = (gt >= 0) & (gt < k)
        hit = np.bincount(gt[in_gt & (gt == pr)], minlength=k)[:k]
        area_gt = np.bincount(gt[in_gt], minlength=k)[:k]
        area_pr = np.bincount(pr, minlength=k)[:k]
        self.inter += hit
        self.union += area_gt + area_pr - hit
        if self.boundary is not None:
            # mmdysample.evaluation pulls in torch: only when asked for
            from mmdysample.evaluation.boundary_iou import \
                boundary_intersect_and_union
            gt_map = label.astype(np.int64) - 1
            gt_map[~valid] = 255
            inter, union, _, _ = boundary_intersect_and_union(
                pred - 1, gt_map, k, ignore_index=255)
            self.boundary[0][:] += inter.numpy()
            self.boundary[1][:] += union.numpy()

    def result(self) -> dict:
        def mean_iou(inter, union):
            iou = inter / np.maximum(union, 1)
            return 100 * float(iou[union > 0].mean()), 100 * iou

        miou, ious = mean_iou(self.inter, self.union)
        out = dict(mIoU=miou, IoU=[float(v) for v in ious])
        if self.boundary is not None:
            out['bIoU'] = mean_iou(*self.boundary)[0]
        return out


def label_map_stats(label_maps: Iterable[np.ndarray],
                    num_classes: int,
                    strides: Sequence[int] = (4, 8),
                    distances: Sequence[int] = (1, 2),
                    ignore_index: int = 0,
                    boundary_iou: bool = True) -> dict:
    """Measure a set of label maps; see the module docstring.

    Args:
        label_maps (Iterable[np.ndarray]): ``(H, W)`` integer label maps,
            ``1..num_classes``, ``ignore_index`` unlabelled.
        num_classes (int): Number of classes.
        strides (Sequence[int]): Output strides of the thin-region counts
            and the oracle. Defaults to (4, 8).
        distances (Sequence[int]): Distances in px of the boundary counts.
            Defaults to (1, 2).
        ignore_index (int): The unlabelled value. Defaults to 0.
        boundary_iou (bool): Also score the oracle with the boundary IoU
            (imports torch). Defaults to True.

    Returns:
        dict: ``images``, ``num_classes``, ``classes_present`` (classes seen
        in any map), ``classes_per_image`` (mean), ``boundary`` (rows of
        ``distance``, ``fraction``), ``regions`` (their number), ``thin``
        (rows of ``stride``, ``regions`` and ``pixels``: the fractions of
        regions and of labelled pixels in regions narrower than the stride)
        and ``oracle`` (rows of ``stride``, ``mode``, ``mIoU``, ``IoU`` per
        class and, with ``boundary_iou``, ``bIoU``); fractions in [0, 1],
        IoUs in percent.

    Example:
        >>> label = np.ones((16, 16), np.uint8)
        >>> label[:, 8:] = 2
        >>> stats = label_map_stats([label], 2, boundary_iou=False)
        >>> stats['boundary'][0], stats['oracle'][0]['mIoU']
        ({'distance': 1, 'fraction': 0.125}, 100.0)
    """
    if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(
            f'num_classes must be a positive integer, got {num_classes!r}')
    strides = _check_positive_ints('strides', strides)
    distances = _check_positive_ints('distances', distances)
    scores = {(s, m): _OracleScore(num_classes, boundary_iou)
              for s in strides for m in ORACLE_MODES}
    near = np.zeros(len(distances), np.int64)
    thin_regions = np.zeros(len(strides), np.int64)
    thin_pixels = np.zeros(len(strides), np.int64)
    labelled = regions = images = 0
    per_image, present = [], set()
    for label in label_maps:
        label = _check_label_map(label)
        valid = label != ignore_index
        labelled += int(valid.sum())
        images += 1
        values = set(np.unique(label[valid]).tolist())
        per_image.append(len(values))
        present |= values
        for i, d in enumerate(distances):
            near[i] += int((near_boundary(label, d) & valid).sum())
        parts = region_widths(label, ignore_index)
        regions += len(parts['width'])
        for i, s in enumerate(strides):
            thin = parts['width'] < s
            thin_regions[i] += int(thin.sum())
            thin_pixels[i] += int(parts['area'][thin].sum())
        for (s, mode), score in scores.items():
            score.add(oracle_prediction(label, num_classes, s, mode), label,
                      ignore_index)
    if not images:
        raise ValueError('label_maps must hold at least one label map')
    return dict(
        images=images,
        num_classes=int(num_classes),
        classes_present=len(present),
        classes_per_image=float(np.mean(per_image)),
        boundary=[
            dict(distance=d, fraction=float(n / max(labelled, 1)))
            for d, n in zip(distances, near)
        ],
        regions=regions,
        thin=[
            dict(stride=s, regions=float(r / max(regions, 1)),
                 pixels=float(p / max(labelled, 1)))
            for s, r, p in zip(strides, thin_regions, thin_pixels)
        ],
        oracle=[
            dict(stride=s, mode=mode, **score.result())
            for (s, mode), score in scores.items()
        ])


def _ade_annotation_dir(data_root: str, split: str) -> str:
    """The label folder of ``split`` under a dataset or an ``ade`` root."""
    for root in (osp.join(data_root, 'ade'), data_root):
        path = osp.join(root, 'annotations', split)
        if osp.isdir(path):
            return path
    raise ValueError(f'data_root {data_root!r} has no ade/annotations/'
                     f'{split} or annotations/{split} folder')


def _read_label(path: str) -> np.ndarray:
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise ValueError(f'{path} is not a single-channel label image')
    return label


def dataset_stats(data_root: str,
                  splits: Sequence[str] = _ADE_SPLITS,
                  num_classes: Optional[int] = None,
                  **kwargs) -> dict:
    """Measure the ADE label maps of a dataset folder.

    Args:
        data_root (str): A generated dataset (with ``meta.json`` and
            ``ade/``) or any ADE20K-style root (with ``annotations/``).
        splits (Sequence[str]): Label folders to read. Defaults to
            ``('training', 'validation')``.
        num_classes (int, optional): Number of classes; by default that of
            the scene kind in ``meta.json``, else the largest label value.
        **kwargs: Passed to :func:`label_map_stats`.

    Returns:
        dict: :func:`label_map_stats`'s result, plus ``data_root``,
        ``splits``, ``scenes`` (the kind in ``meta.json``, or None) and
        ``classes`` (the class names, or None).
    """
    if isinstance(splits, str):
        splits = (splits, )
    paths = []
    for split in splits:
        folder = _ade_annotation_dir(data_root, split)
        paths += sorted(
            osp.join(folder, name) for name in os.listdir(folder)
            if name.endswith('.png'))
    if not paths:
        raise ValueError(f'no label maps (.png) in {data_root!r} for '
                         f'splits {tuple(splits)}')
    scenes = classes = None
    meta_path = osp.join(data_root, 'meta.json')
    if osp.isfile(meta_path):
        from .scenes import SCENE_KINDS
        with open(meta_path, encoding='utf-8') as f:
            scenes = json.load(f).get('params', {}).get('scenes', 'default')
        kind = SCENE_KINDS[scenes].classes
        classes = list(kind.stuff + kind.things)
    if num_classes is None:
        num_classes = (len(classes) if classes else max(
            int(_read_label(p).max()) for p in paths))
    stats = label_map_stats((_read_label(p) for p in paths), num_classes,
                            **kwargs)
    return dict(data_root=data_root, splits=list(splits), scenes=scenes,
                classes=classes, **stats)


def format_stats_table(stats: Mapping[str, dict]) -> str:
    """A Markdown table of several :func:`label_map_stats` results.

    Args:
        stats (Mapping[str, dict]): Column name -> result.

    Returns:
        str: One row per measure, one column per result.
    """
    names = list(stats)
    if not names:
        raise ValueError('stats must hold at least one result')
    first = stats[names[0]]

    def pct(value):
        return f'{100 * value:.1f} %'

    rows = [('images', [str(s['images']) for s in stats.values()]),
            ('classes (in the set / per image)', [
                f'{s["classes_present"]} / {s["classes_per_image"]:.1f}'
                for s in stats.values()
            ])]
    for i, row in enumerate(first['boundary']):
        rows.append((f'pixels within {row["distance"]} px of a boundary',
                     [pct(s['boundary'][i]['fraction'])
                      for s in stats.values()]))
    for i, row in enumerate(first['thin']):
        rows.append((f'regions narrower than {row["stride"]} px', [
            f'{pct(s["thin"][i]["regions"])} of {s["regions"]}'
            for s in stats.values()
        ]))
        rows.append((f'pixels in regions narrower than {row["stride"]} px',
                     [pct(s['thin'][i]['pixels']) for s in stats.values()]))
    for i, row in enumerate(first['oracle']):
        for key in ('mIoU', 'bIoU'):
            if key in row:
                rows.append(
                    (f'oracle {key}, stride {row["stride"]}, {row["mode"]}',
                     [f'{s["oracle"][i][key]:.2f}' for s in stats.values()]))
    lines = ['| measure | ' + ' | '.join(names) + ' |',
             '| --- |' + ' --- |' * len(names)]
    lines += [f'| {label} | ' + ' | '.join(cells) + ' |'
              for label, cells in rows]
    return '\n'.join(lines)
