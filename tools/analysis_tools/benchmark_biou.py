# Copyright (c) mmdysample contributors. All rights reserved.
"""Cost of the boundary IoU metric per image, and for ADE20K val.

Times :func:`mmdysample.evaluation.boundary_intersect_and_union` (what
``BoundaryIoUMetric.process`` runs per image) on ADE20K-like label maps:
512x683, 150 classes, 10-30 of them present per image in blocky regions,
about a tenth of the pixels ignored, and a prediction that is the label map
coarsened to 1/8 resolution (errors along every boundary) with a few wrong
blocks. Threads are limited (``--threads``, default 1) for torch and OpenCV.
Prints the median and mean time per image and the extrapolation to
``--dataset-size`` images (ADE20K val: 2,000).

``--compare`` also times other ways of finding the band pixels of one label
map (the step that dominates), after checking that each finds the same
pixels: a separable torch max-pool of the whole label map, and per-class
band masks from OpenCV erosion or a torch max-pool of one-hot masks.

    python tools/analysis_tools/benchmark_biou.py
    python tools/analysis_tools/benchmark_biou.py --compare
    python tools/analysis_tools/benchmark_biou.py --quick  # tiny: tests
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
from mmdysample import evaluation  # noqa: E402

IGNORE = 255


def ade_like_pair(rng, shape, num_classes):
    """``(pred, label)`` int64 tensors of shape ``shape``, as mmseg gives."""
    height, width = shape
    classes = rng.choice(num_classes, rng.integers(10, 31), replace=False)
    label = np.full(shape, classes[0], np.int64)
    for c in list(classes[1:]) * 2 + [IGNORE] * 3:
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(height // 16, height // 2, size=2)
        label[y:y + h, x:x + 2 * w] = c
    coarse = label[4::8, 4::8]
    pred = np.kron(coarse, np.ones((8, 8), np.int64))[:height, :width]
    pred = np.pad(pred, ((0, height - pred.shape[0]),
                         (0, width - pred.shape[1])), mode='edge')
    pred[pred == IGNORE] = classes[0]
    for _ in range(3):
        y, x = rng.integers(0, height), rng.integers(0, width)
        pred[y:y + 40, x:x + 60] = rng.choice(classes)
    return torch.from_numpy(pred), torch.from_numpy(label)


def label_codes(label):
    """The label map as :func:`boundary_pixels` takes it (uint8, >= 1)."""
    return np.where(label == IGNORE, 1, label + 2).astype(np.uint8)


def torch_maxpool_bands(label, dilation):
    """Band pixels from a separable torch max-pool of the label map."""
    x = torch.from_numpy(label).double()[None, None]
    size = 2 * dilation + 1
    padded = F.pad(x, (dilation, ) * 4, value=-1.)

    def window_max(t):
        return F.max_pool2d(F.max_pool2d(t, (1, size), 1), (size, 1), 1)

    return ((window_max(padded) != x) | (-window_max(-padded) != x))[0, 0]


def cv2_per_class_bands(label, dilation):
    """Band pixels as the union of per-class ``mask - erode(mask)``."""
    size = 2 * dilation + 1
    kernel = np.ones((size, size), np.uint8)
    bands = np.zeros(label.shape, bool)
    for c in np.unique(label):
        mask = (label == c).astype(np.uint8)
        eroded = cv2.erode(
            mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        bands |= mask > eroded
    return torch.from_numpy(bands)


def torch_one_hot_bands(label, dilation):
    """Band pixels from one max-pool of all present classes' masks."""
    x = torch.from_numpy(label)
    masks = x[None] == torch.from_numpy(np.unique(label))[:, None, None]
    size = 2 * dilation + 1
    outside = F.pad((~masks).float()[:, None], (dilation, ) * 4, value=1.)
    near = F.max_pool2d(
        F.max_pool2d(outside, (1, size), 1), (size, 1), 1)[:, 0] > 0
    return (masks & near).any(0)


ALTERNATIVES = dict(
    torch_maxpool=torch_maxpool_bands,
    cv2_per_class=cv2_per_class_bands,
    torch_one_hot=torch_one_hot_bands)


def median_ms(fn, args_list, repeats):
    samples = []
    for args in args_list:
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*args)
            samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), statistics.fmean(samples)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time the boundary IoU metric per image',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 683],
                        metavar=('H', 'W'), help='label map size')
    parser.add_argument('--num-classes', type=int, default=150)
    parser.add_argument('--images', type=int, default=20,
                        help='distinct label maps timed')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed calls per map (after one warm-up)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch and OpenCV threads')
    parser.add_argument('--dilation-ratio', type=float, default=0.02)
    parser.add_argument('--dataset-size', type=int, default=2000,
                        help='images to extrapolate to (ADE20K val)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--compare', action='store_true',
                        help='also time other ways to find the bands')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes (for tests)')
    args = parser.parse_args(argv)
    if args.quick:
        args.shape, args.images, args.repeats = [64, 85], 2, 1
    for name in ('images', 'repeats', 'threads', 'dataset_size'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if min(args.shape) < 16:
        parser.error(f'--shape must be at least 16 x 16, got {args.shape}')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(args.seed)
    shape = tuple(args.shape)
    pairs = [
        ade_like_pair(rng, shape, args.num_classes)
        for _ in range(args.images)
    ]
    present = [len(set(np.unique(label)) - {IGNORE}) for _, label in pairs]
    dilation = evaluation.boundary_dilation(*shape, args.dilation_ratio)
    print(f'{args.images} label maps of {shape[0]}x{shape[1]}, '
          f'{args.num_classes} classes ({min(present)}-{max(present)} '
          f'present, mean {statistics.fmean(present):.1f}), '
          f'band width d = {dilation}, {args.threads} thread(s)')

    calls = [(pred, label, args.num_classes, IGNORE, args.dilation_ratio)
             for pred, label in pairs]
    evaluation.boundary_intersect_and_union(*calls[0])  # warm-up
    median, mean = median_ms(evaluation.boundary_intersect_and_union, calls,
                             args.repeats)
    total = mean * args.dataset_size / 1e3
    print(f'boundary_intersect_and_union: {median:.2f} ms per image '
          f'(median; mean {mean:.2f} ms) -> {total:.1f} s for '
          f'{args.dataset_size} images')

    if args.compare:
        labels = [label.numpy() for _, label in pairs]
        rows = [('boundary_pixels (cv2 gradient, package)',
                 lambda label: evaluation.boundary_pixels(
                     label_codes(label), dilation))]
        rows += [(name, lambda label, fn=fn: fn(label, dilation))
                 for name, fn in ALTERNATIVES.items()]
        reference = [
            evaluation.boundary_pixels(label_codes(x), dilation)
            for x in labels
        ]
        for name, fn in rows:
            for label, expected in zip(labels, reference):
                got = np.asarray(fn(label))
                if not np.array_equal(got, expected):
                    raise RuntimeError(f'{name} finds other band pixels')
            median, _ = median_ms(fn, [(x, ) for x in labels], 1)
            print(f'  bands of one label map, {name}: {median:.2f} ms')


if __name__ == '__main__':
    main()
