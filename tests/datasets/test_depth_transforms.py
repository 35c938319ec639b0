# Copyright (c) mmdysample contributors. All rights reserved.
"""NYUCrop and ColorAug: DepthFormer's NYU training transforms."""
import numpy as np
import pytest
from mmseg.registry import TRANSFORMS

import mmdysample  # noqa: F401
from mmdysample.datasets.depth_transforms import ColorAug, NYUCrop


def frame(h=480, w=640):
    rows, cols = np.mgrid[:h, :w]
    depth = (rows * 1000 + cols).astype(np.float32)
    img = np.stack([rows % 256, cols % 256, (rows + cols) % 256],
                   axis=2).astype(np.uint8)
    return dict(img=img, gt_depth_map=depth, seg_fields=['gt_depth_map'],
                img_path='kitchen_0001.jpg')


def test_nyu_crop_keeps_the_toolbox_region_of_image_and_depth():
    out = TRANSFORMS.build(dict(type='NYUCrop'))(frame())
    assert out['img'].shape == (427, 565, 3)
    assert out['img_shape'] == (427, 565)
    # the first kept pixel is row 45, column 43; the last 471, 607
    assert out['gt_depth_map'][0, 0] == 45 * 1000 + 43
    assert out['gt_depth_map'][-1, -1] == 471 * 1000 + 607
    assert out['img'][0, 0].tolist() == [45, 43, 88]


def test_nyu_crop_refuses_frames_of_another_size():
    with pytest.raises(ValueError, match=r'480 x 640 NYU frames, got an '
                       r'image of \(192, 256\) \(kitchen_0001.jpg\)'):
        NYUCrop()(frame(192, 256))


def test_color_aug_follows_the_toolbox_formula():
    np.random.seed(3)
    draws = np.random.rand(), np.random.uniform(0.9, 1.1), \
        np.random.uniform(0.8, 1.2), np.random.uniform(0.7, 1.3, size=3)
    _, gamma, brightness, colors = draws
    np.random.seed(3)
    data = frame(4, 5)
    out = ColorAug(prob=1.0, gamma_range=(0.9, 1.1),
                   brightness_range=(0.8, 1.2),
                   color_range=(0.7, 1.3))(dict(data))
    expected = np.clip(
        data['img'].astype(np.float32)**gamma * brightness * colors, 0, 255)
    np.testing.assert_allclose(out['img'], expected, rtol=1e-5)
    assert out['img'].dtype == np.float32
    assert out['gt_depth_map'] is data['gt_depth_map']


def test_color_aug_with_prob_0_changes_nothing():
    data = frame(4, 5)
    out = ColorAug(prob=0.0)(dict(data))
    assert out['img'] is data['img']


@pytest.mark.parametrize('kwargs, match', [
    (dict(prob=1.5), r'prob must be a number in \[0, 1\], got 1.5'),
    (dict(prob=0.5, gamma_range=(0.9, )), 'gamma_range must be two'),
    (dict(prob=0.5, color_range=(-1, 1)), 'color_range must be two'),
])
def test_color_aug_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColorAug(**kwargs)
