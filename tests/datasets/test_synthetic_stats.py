# Copyright (c) mmdysample contributors. All rights reserved.
"""The label-map measures of mmdysample.datasets.synthetic.stats and
tools/analysis_tools/synthetic_data_stats.py."""
import json
import os.path as osp
import runpy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdysample.datasets.synthetic import (FINE_SEG_CLASSES,
                                           generate_synthetic_dataset)
from mmdysample.datasets.synthetic.stats import (dataset_stats,
                                                 format_stats_table,
                                                 label_map_stats,
                                                 near_boundary,
                                                 oracle_prediction,
                                                 region_widths)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools',
                'synthetic_data_stats.py')


def blocky_labels(seed, shape=(32, 48), num_classes=5):
    """Random rectangles of classes ``1..num_classes``, off any grid."""
    rng = np.random.default_rng(seed)
    label = np.ones(shape, np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        h, w = rng.integers(1, shape[0] // 2, 2)
        label[y:y + h, x:x + w] = rng.integers(1, num_classes + 1)
    return label


def test_near_boundary_matches_a_window_loop():
    label = blocky_labels(0)
    height, width = label.shape
    for d in (1, 2):
        want = np.zeros_like(label, bool)
        for y in range(height):
            for x in range(width):
                window = label[max(0, y - d):y + d + 1,
                               max(0, x - d):x + d + 1]
                want[y, x] = (window != label[y, x]).any()
        np.testing.assert_array_equal(near_boundary(label, d), want)
    # one class: the image border is no boundary
    assert not near_boundary(np.ones((5, 5), np.uint8), 2).any()


def test_region_widths_of_bars():
    label = np.ones((20, 60), np.uint8)
    x = 2
    for width in range(1, 8):
        label[3:17, x:x + width] = 2 + width % 2  # neighbours differ
        x += width + 2
    parts = region_widths(label)
    bars = parts['value'] > 1
    # by value, then left to right: widths 2, 4, 6, then 1, 3, 5, 7;
    # exact for odd widths, one pixel short for even ones
    assert parts['value'][bars].tolist() == [2] * 3 + [3] * 4
    assert parts['width'][bars].tolist() == [1, 3, 5, 1, 3, 5, 7]
    assert parts['area'][bars].tolist() == [
        14 * w for w in (2, 4, 6, 1, 3, 5, 7)]
    # the background is one region around them
    assert parts['value'].tolist().count(1) == 1
    # 8-connected: two pixels touching at a corner are one region
    corner = np.ones((4, 4), np.uint8)
    corner[1, 1] = corner[2, 2] = 2
    assert region_widths(corner)['value'].tolist() == [1, 2]
    assert region_widths(np.zeros((3, 3), np.uint8))['width'].size == 0


@pytest.mark.parametrize('stride', [2, 4, 8])
@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_oracle_matches_torch_reference(stride, mode):
    """Area average = average pooling, then F.interpolate, then argmax."""
    num_classes = 5
    for seed in range(3):
        label = blocky_labels(seed, num_classes=num_classes)
        onehot = F.one_hot(torch.from_numpy(label).long() - 1, num_classes)
        coarse = F.avg_pool2d(
            onehot.permute(2, 0, 1)[None].double(), stride)
        kwargs = dict(align_corners=False) if mode == 'bilinear' else {}
        up = F.interpolate(coarse, size=label.shape, mode=mode, **kwargs)[0]
        want = up.argmax(0).numpy() + 1
        got = oracle_prediction(label, num_classes, stride, mode)
        top2 = up.topk(2, dim=0).values
        tie = (top2[0] - top2[1]).numpy() < 1e-5
        # the same labels, except where two classes tie (rounding decides)
        assert ((got == want) | tie).all()
        assert tie.mean() < 0.2
        if mode == 'nearest':
            np.testing.assert_array_equal(got, want)


def test_label_map_stats_by_hand():
    # straight boundaries on the stride-8 grid: every oracle is exact
    stripes = np.ones((32, 32), np.uint8)
    stripes[:, 8:16] = stripes[:, 24:] = 2
    stats = label_map_stats([stripes, stripes], 2)
    assert stats['images'] == 2 and stats['regions'] == 8
    for row in stats['oracle']:
        assert row['mIoU'] == row['bIoU'] == 100.0
        assert row['IoU'] == [100.0, 100.0]
    # a rectangle on the grid: nearest is exact, bilinear rounds its corners
    box = np.ones((32, 32), np.uint8)
    box[8:24, 16:] = 2
    for row in label_map_stats([box], 2)['oracle']:
        if row['mode'] == 'nearest':
            assert row['mIoU'] == row['bIoU'] == 100.0
        else:
            assert 95 < row['mIoU'] < 100 and row['bIoU'] < 100
    # a vertical line 1 px wide: lost by every oracle
    line = np.ones((16, 32), np.uint8)
    line[:, 10] = 2
    stats = label_map_stats([line], 3, strides=[4], distances=[1, 2])
    assert stats['num_classes'] == 3 and stats['classes_present'] == 2
    assert stats['classes_per_image'] == 2.0
    assert stats['boundary'] == [dict(distance=1, fraction=3 / 32),
                                 dict(distance=2, fraction=5 / 32)]
    # regions: the line and the background on each side of it
    assert stats['regions'] == 3
    assert stats['thin'] == [dict(stride=4, regions=1 / 3, pixels=1 / 32)]
    for row in stats['oracle']:
        assert row['IoU'][0] == pytest.approx(100 * 31 / 32)
        assert row['IoU'][1] == 0.0
        # class 3 is in neither map: not averaged
        assert row['mIoU'] == pytest.approx(100 * 31 / 64)
    assert 'bIoU' not in label_map_stats([line], 2,
                                         boundary_iou=False)['oracle'][0]


def test_ignored_pixels_are_not_counted():
    label = np.ones((16, 16), np.uint8)
    label[:, 8:] = 0  # unlabelled half
    stats = label_map_stats([label], 1, boundary_iou=False)
    assert stats['classes_present'] == 1 and stats['regions'] == 1
    # the pixels next to the unlabelled half are next to another value
    assert stats['boundary'][0]['fraction'] == pytest.approx(1 / 8)
    assert all(row['mIoU'] == 100.0 for row in stats['oracle'])


@pytest.mark.parametrize('call, name', [
    (lambda: label_map_stats([np.ones((4, 4), np.uint8)], 0), 'num_classes'),
    (lambda: label_map_stats([np.ones((4, 4), np.uint8)], 2, strides=[0]),
     'strides'),
    (lambda: label_map_stats([np.ones((4, 4), np.uint8)], 2,
                             distances=[]), 'distances'),
    (lambda: label_map_stats([], 2), 'label_maps'),
    (lambda: label_map_stats([np.ones((4, 4), np.float32)], 2), 'label'),
    (lambda: label_map_stats([np.ones(4, np.uint8)], 2), 'label'),
    (lambda: oracle_prediction(np.ones((4, 4), np.uint8), 2, 4, 'cubic'),
     'mode'),
    (lambda: format_stats_table({}), 'stats'),
])
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.fixture(scope='module')
def two_kinds(tmp_path_factory):
    roots = {}
    for scenes in ('default', 'fine'):
        roots[scenes] = str(tmp_path_factory.mktemp(scenes))
        generate_synthetic_dataset(roots[scenes], 2, 1, 64, scenes=scenes,
                                   tasks=['ade'])
    return roots


def test_dataset_stats_reads_the_kind(two_kinds):
    stats = dataset_stats(two_kinds['fine'], boundary_iou=False)
    assert stats['scenes'] == 'fine' and stats['images'] == 3
    assert stats['classes'] == list(FINE_SEG_CLASSES)
    assert stats['num_classes'] == len(FINE_SEG_CLASSES)
    val = dataset_stats(two_kinds['fine'], splits='validation',
                        boundary_iou=False)
    assert val['images'] == 1 and val['splits'] == ['validation']
    # an ADE root without meta.json: as many classes as the largest label
    plain = dataset_stats(osp.join(two_kinds['default'], 'ade'),
                          boundary_iou=False)
    assert plain['scenes'] is None and plain['classes'] is None
    assert 1 <= plain['num_classes'] <= 7 and plain['images'] == 3
    with pytest.raises(ValueError, match='annotations/testing'):
        dataset_stats(two_kinds['fine'], splits=['testing'])


def test_tool_prints_the_table_and_writes_json(two_kinds, tmp_path,
                                               capsys):
    main = runpy.run_path(TOOL)['main']
    out = str(tmp_path / 'stats' / 'stats.json')
    assert main([two_kinds['default'], two_kinds['fine'], '--strides', '4',
                 '--no-biou', '--out', out]) == 0
    table = capsys.readouterr().out
    default = osp.basename(two_kinds['default']) + ' (default)'
    fine = osp.basename(two_kinds['fine']) + ' (fine)'
    assert f'| measure | {default} | {fine} |' in table
    assert '| oracle mIoU, stride 4, bilinear |' in table
    assert 'stride 8' not in table and 'bIoU' not in table
    with open(out, encoding='utf-8') as f:
        results = json.load(f)
    assert list(results) == [default, fine]
    assert results[fine]['classes'] == list(FINE_SEG_CLASSES)
    assert main([str(tmp_path / 'missing')]) == 2
    assert 'no ade/annotations' in capsys.readouterr().err
