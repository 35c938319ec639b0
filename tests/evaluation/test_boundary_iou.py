# Copyright (c) mmdysample contributors. All rights reserved.
"""Boundary IoU bands and areas against a slow, obviously-correct reference.

The reference loops over pixels: a pixel of class ``c`` is in the band of
``c`` when some pixel within Chebyshev distance ``d`` is outside the image
or not labelled ``c``. Ignore pixels are background of every class in both
maps (see :mod:`mmdysample.evaluation.boundary_iou`).
"""
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmdysample.evaluation import (boundary_dilation,
                                   boundary_intersect_and_union, boundary_iou,
                                   boundary_pixels, check_dilation_ratio)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IGNORE = 255


def reference_band(labels, c, d):
    """Band of class ``c`` in a list-of-lists label map, pixel by pixel."""
    height, width = len(labels), len(labels[0])
    band = [[False] * width for _ in range(height)]
    for y in range(height):
        for x in range(width):
            if labels[y][x] != c:
                continue
            band[y][x] = any(not (0 <= y + dy < height and 0 <= x + dx < width)
                             or labels[y + dy][x + dx] != c
                             for dy in range(-d, d + 1)
                             for dx in range(-d, d + 1))
    return band


def reference_areas(pred, label, classes, ignore_index, dilation_ratio):
    """{c: (intersect, union, pred area, label area)} for ``classes``."""
    height, width = label.shape
    d = max(1, round(dilation_ratio * math.sqrt(height**2 + width**2)))
    gt = label.tolist()
    # ignore pixels are no class in the prediction either
    pr = [[p if g != ignore_index else None for p, g in zip(prow, grow)]
          for prow, grow in zip(pred.tolist(), gt)]
    areas = {}
    for c in classes:
        gt_band, pred_band = reference_band(gt, c, d), reference_band(pr, c, d)
        inter = union = n_pred = n_gt = 0
        for y in range(height):
            for x in range(width):
                if gt[y][x] == ignore_index:
                    continue
                g, p = gt_band[y][x], pred_band[y][x]
                inter += g and p
                union += g or p
                n_pred += p
                n_gt += g
        areas[c] = (inter, union, n_pred, n_gt)
    return areas


def blocky_map(rng, shape, labels, num_blocks):
    """Rectangles of random labels painted over a random background."""
    height, width = shape
    out = np.full(shape, rng.choice(labels), np.int64)
    for _ in range(num_blocks):
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(1, height + 1), rng.integers(1, width + 1)
        out[y:y + h, x:x + w] = rng.choice(labels)
    return out


def random_case(seed, num_classes):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 19, size=2))
    # a few classes spread over the whole range, so that every code dtype
    # (uint8 / uint16 / float32) sees labels near its top
    labels = np.unique(
        np.concatenate([[0, num_classes - 1],
                        rng.integers(0, num_classes, 3)]))
    labels = labels[labels != IGNORE]
    label = blocky_map(rng, shape, labels, 6)
    if seed % 3 == 0:  # pure noise: almost every pixel is boundary
        pred = rng.choice(labels, size=shape)
    else:
        pred = blocky_map(rng, shape, labels, 6)
    # ignore pixels, and values of no class in both maps
    label[rng.random(shape) < 0.1] = IGNORE
    if seed % 2:
        label[rng.random(shape) < 0.05] = num_classes + 7
        pred[rng.random(shape) < 0.05] = num_classes + 3
    ratio = float(rng.choice([0.02, 0.1, 0.2]))
    return pred, label, ratio


@pytest.mark.parametrize('num_classes', [6, 300, 70000])
@pytest.mark.parametrize('seed', range(8))
def test_matches_reference_on_random_maps(seed, num_classes):
    pred, label, ratio = random_case(seed, num_classes)
    result = boundary_intersect_and_union(
        torch.from_numpy(pred), torch.from_numpy(label), num_classes, IGNORE,
        ratio)
    for area in result:
        assert area.shape == (num_classes, ) and area.dtype == torch.int64
    present = sorted({*np.unique(pred), *np.unique(label)} - {IGNORE}
                     - {num_classes + 3, num_classes + 7})
    expected = reference_areas(pred, label, present, IGNORE, ratio)
    got = torch.stack(result, dim=1)  # (num_classes, 4)
    for c in present:
        assert tuple(got[c].tolist()) == expected[c], c
        inter, union = expected[c][:2]
        if union:
            assert abs(got[c, 0] / got[c, 1] - inter / union) < 1e-6
    absent = torch.ones(num_classes, dtype=torch.bool)
    absent[present] = False
    assert not got[absent].any()
    assert any(expected[c][0] for c in present)  # the case is not trivial


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('dilation', [1, 2, 4])
def test_boundary_pixels_match_reference(seed, dilation):
    rng = np.random.default_rng(seed)
    labels = blocky_map(rng, (9, 14), np.arange(1, 5), 5).astype(np.uint8)
    got = boundary_pixels(labels, dilation)
    assert got.dtype == np.bool_ and got.shape == labels.shape
    expected = np.zeros(labels.shape, bool)
    for c in range(1, 5):
        expected |= np.array(reference_band(labels.tolist(), c, dilation))
    np.testing.assert_array_equal(got, expected)


def test_dilation_follows_the_image_diagonal():
    assert boundary_dilation(512, 683) == 17  # 0.02 * 853.6
    assert boundary_dilation(512, 683, 0.01) == 9  # 8.54
    assert boundary_dilation(3, 4, 0.5) == 2  # round(2.5) halves to even
    assert boundary_dilation(3, 4, 0.01) == 1  # at least one pixel


def test_perfect_prediction_has_band_equal_to_union():
    rng = np.random.default_rng(0)
    label = blocky_map(rng, (40, 50), np.arange(4), 8)
    label[:5, :7] = IGNORE
    inter, union, pred_area, label_area = boundary_intersect_and_union(
        label.copy(), label, 4)
    assert union.sum() > 0
    assert torch.equal(inter, union)
    assert torch.equal(pred_area, label_area)


def test_one_pixel_shift_is_below_perfect():
    label = np.zeros((30, 40), np.int64)
    label[:, 20:] = 1
    pred = np.zeros_like(label)
    pred[:, 21:] = 1
    inter, union, _, _ = boundary_intersect_and_union(pred, label, 2)
    assert (union > 0).all()
    assert (inter < union).all()
    # d = 1: the band is 2 pixels wide along the edge, so most of it stays
    assert (inter.double() / union > 0.5).all()


def test_absent_class_has_empty_union():
    label = np.zeros((20, 20), np.int64)
    label[5:15, 5:15] = 2
    inter, union, pred_area, label_area = boundary_intersect_and_union(
        label, label, 3)
    assert union[1] == inter[1] == pred_area[1] == label_area[1] == 0
    assert (union[[0, 2]] > 0).all()


def test_prediction_at_ignore_pixels_changes_nothing():
    rng = np.random.default_rng(1)
    label = blocky_map(rng, (32, 48), np.arange(5), 10)
    pred = blocky_map(rng, (32, 48), np.arange(5), 10)
    ignore = np.zeros(label.shape, bool)
    ignore[8:20, 10:30] = True  # a hole inside labelled regions
    ignore |= rng.random(label.shape) < 0.05
    label[ignore] = IGNORE
    base = boundary_intersect_and_union(pred, label, 5, IGNORE, 0.05)
    assert base[1].sum() > 0
    for fill in (0, 3, 'noise'):
        changed = pred.copy()
        changed[ignore] = rng.integers(0, 5, ignore.sum()) if (
            fill == 'noise') else fill
        for a, b in zip(
                boundary_intersect_and_union(changed, label, 5, IGNORE, 0.05),
                base):
            assert torch.equal(a, b), fill


def test_ignore_pixels_are_in_no_band():
    label = np.zeros((20, 20), np.int64)
    label[:, 10:] = IGNORE
    inter, union, pred_area, label_area = boundary_intersect_and_union(
        label, label, 1, IGNORE)
    # class 0 fills the labelled half; its band (d = 1) is the ring along
    # the image border and the column next to the ignore area
    assert label_area.tolist() == [20 * 10 - 18 * 8]
    assert torch.equal(inter, union) and torch.equal(pred_area, label_area)


def test_custom_ignore_index():
    label = np.zeros((16, 16), np.int64)
    label[:, 8:] = 1
    pred = np.zeros_like(label)
    pred[:, 9:] = 1
    as_ignore = label.copy()
    as_ignore[:4] = -1
    with_255 = as_ignore.copy()
    with_255[:4] = IGNORE
    a = boundary_intersect_and_union(pred, as_ignore, 2, ignore_index=-1)
    b = boundary_intersect_and_union(pred, with_255, 2, ignore_index=IGNORE)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_accepts_numpy_and_tensors_of_integer_dtypes():
    label = np.zeros((10, 12), np.uint8)
    label[:, 6:] = 1
    expected = boundary_intersect_and_union(label, label, 2)
    for pred, gt in [(torch.from_numpy(label).long(), torch.from_numpy(
            label)), (label.astype(np.int32), label.astype(np.int16))]:
        for a, b in zip(boundary_intersect_and_union(pred, gt, 2), expected):
            assert torch.equal(a, b)


@pytest.mark.parametrize('ratio', [0, -0.1, float('nan'), float('inf')])
def test_dilation_ratio_out_of_range(ratio):
    with pytest.raises(ValueError, match='dilation_ratio'):
        check_dilation_ratio(ratio)
    with pytest.raises(ValueError, match='dilation_ratio'):
        boundary_intersect_and_union(
            np.zeros((4, 4), int), np.zeros((4, 4), int), 2,
            dilation_ratio=ratio)


@pytest.mark.parametrize('ratio', ['0.02', None, True])
def test_dilation_ratio_not_a_number(ratio):
    with pytest.raises(TypeError, match='dilation_ratio'):
        check_dilation_ratio(ratio)


def test_bad_label_maps():
    good = np.zeros((4, 5), np.int64)
    with pytest.raises(ValueError, match=r'same shape.*\(4, 5\).*\(5, 4\)'):
        boundary_intersect_and_union(good, good.T.copy(), 2)
    with pytest.raises(ValueError, match=r'label must have shape \(H, W\)'):
        boundary_intersect_and_union(good, good[None], 2)
    with pytest.raises(ValueError, match=r'label must not be empty.*\(0, 5\)'):
        boundary_intersect_and_union(good[:0], good[:0], 2)
    with pytest.raises(TypeError, match='pred_label must hold integer'):
        boundary_intersect_and_union(good.astype(np.float32), good, 2)
    with pytest.raises(TypeError, match='label must be a Tensor or'):
        boundary_intersect_and_union(good, good.tolist(), 2)
    with pytest.raises(ValueError, match='num_classes must be in'):
        boundary_intersect_and_union(good, good, 0)
    with pytest.raises(TypeError, match='num_classes must be an integer'):
        boundary_intersect_and_union(good, good, 2.0)
    with pytest.raises(TypeError, match='ignore_index must be an integer'):
        boundary_intersect_and_union(good, good, 2, ignore_index=None)
    with pytest.raises(ValueError, match='dilation must be >= 1, got 0'):
        boundary_pixels(good.astype(np.uint8), 0)


def test_histogram_chunks_add_up(monkeypatch):
    """Images of more than 2**24 pixels are counted in row chunks."""
    pred, label, ratio = random_case(1, 6)
    whole = boundary_intersect_and_union(pred, label, 6, IGNORE, ratio)
    monkeypatch.setattr(boundary_iou, '_HIST_EXACT_PIXELS',
                        2 * label.shape[1] + 1)  # chunks of two rows
    chunked = boundary_intersect_and_union(pred, label, 6, IGNORE, ratio)
    for a, b in zip(chunked, whole):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_importable_without_mmseg():
    code = ('import sys; sys.modules["mmseg"] = None\n'
            'import mmdysample.evaluation as evaluation\n'
            'assert "BoundaryIoUMetric" not in evaluation.__all__\n'
            'assert not hasattr(evaluation, "BoundaryIoUMetric")\n'
            'print(evaluation.boundary_dilation(512, 683))\n')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ['17']
