# Copyright (c) mmdysample contributors. All rights reserved.
"""The two training transforms of DepthFormer's NYU recipe that mmseg 1.2.2
lacks.

The Monocular-Depth-Estimation-Toolbox (DepthFormer's home, mmseg 0.x)
trains on NYU Depth V2 with ``NYUCrop`` (the fixed crop of the valid
region of the Kinect frames) and ``ColorAug`` (gamma, brightness and
per-channel colour); mmseg 1.2.2 has neither. Both are re-written here as
mmcv 2.x ``BaseTransform``\\ s registered in mmseg's ``TRANSFORMS``, and
act on ``img`` and on every key of ``seg_fields`` (where
``LoadDepthAnnotation`` puts ``gt_depth_map``).
"""
from typing import Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

#: The frame size of NYU Depth V2 (Kinect v1), ``(height, width)``.
NYU_FRAME = (480, 640)
#: Rows and columns ``NYUCrop`` keeps: ``[45:472, 43:608]`` (427 x 565).
NYU_TRAIN_CROP = ((45, 472), (43, 608))


@TRANSFORMS.register_module()
class NYUCrop(BaseTransform):
    """Crop a 480 x 640 NYU frame to the region with valid depth.

    The toolbox's training crop ``[45:472, 43:608]`` (427 x 565), which
    drops the white border of the registered RGB frames and the depth
    pixels the Kinect does not cover. The same crop applies to ``img`` and
    every ``seg_fields`` map.

    Required keys: ``img``; optional: ``seg_fields`` and their maps.
    Modified keys: ``img``, ``img_shape``, the ``seg_fields`` maps.

    Raises:
        ValueError: The image is not 480 x 640; the message names its file.

    Example:
        >>> import numpy as np
        >>> out = NYUCrop()(dict(img=np.zeros((480, 640, 3), np.uint8),
        ...                     gt_depth_map=np.ones((480, 640), np.float32),
        ...                     seg_fields=['gt_depth_map']))
        >>> out['img'].shape, out['gt_depth_map'].shape, out['img_shape']
        ((427, 565, 3), (427, 565), (427, 565))
    """

    def transform(self, results: dict) -> dict:
        (top, bottom), (left, right) = NYU_TRAIN_CROP
        shape = tuple(results['img'].shape[:2])
        if shape != NYU_FRAME:
            raise ValueError(
                f'NYUCrop crops [{top}:{bottom}, {left}:{right}] of '
                f'{NYU_FRAME[0]} x {NYU_FRAME[1]} NYU frames, got an image of '
                f"{shape} ({results.get('img_path', 'no img_path')}); leave "
                'it out of pipelines for other data')
        results['img'] = results['img'][top:bottom, left:right]
        for key in results.get('seg_fields', []):
            results[key] = results[key][top:bottom, left:right]
        results['img_shape'] = results['img'].shape[:2]
        return results


def _range(name: str, value: Sequence[float]) -> Tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and v > 0
                       for v in value)):
        raise ValueError(f'{name} must be two numbers > 0, got {value!r}')
    return float(min(value)), float(max(value))


@TRANSFORMS.register_module()
class ColorAug(BaseTransform):
    """The toolbox's colour augmentation of depth estimation, with
    probability ``prob``.

    On the image's 0-255 values, as the toolbox computes it: raise to a
    power ``gamma``, multiply by ``brightness``, multiply each channel by
    its own ``color`` factor (each drawn uniformly from its range), clip to
    ``[0, 255]``. The result is float32 (the data preprocessor normalises
    it). The depth map is not touched.

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        prob (float): Probability of augmenting an image, in [0, 1].
        gamma_range (Sequence[float]): Defaults to (0.9, 1.1).
        brightness_range (Sequence[float]): Defaults to (0.9, 1.1).
        color_range (Sequence[float]): Defaults to (0.9, 1.1).

    Example:
        >>> import numpy as np
        >>> img = np.full((2, 2, 3), 100, np.uint8)
        >>> out = ColorAug(prob=1.0, gamma_range=(1, 1),
        ...                brightness_range=(2, 2), color_range=(1, 1))(
        ...                    dict(img=img))
        >>> out['img'][0, 0].tolist()
        [200.0, 200.0, 200.0]
    """

    def __init__(self,
                 prob: float,
                 gamma_range: Sequence[float] = (0.9, 1.1),
                 brightness_range: Sequence[float] = (0.9, 1.1),
                 color_range: Sequence[float] = (0.9, 1.1)) -> None:
        if isinstance(prob, bool) or not isinstance(
                prob, (int, float)) or not 0 <= prob <= 1:
            raise ValueError(f'prob must be a number in [0, 1], got {prob!r}')
        self.prob = float(prob)
        self.gamma_range = _range('gamma_range', gamma_range)
        self.brightness_range = _range('brightness_range', brightness_range)
        self.color_range = _range('color_range', color_range)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        image = results['img'].astype(np.float32)
        gamma = np.random.uniform(*self.gamma_range)
        brightness = np.random.uniform(*self.brightness_range)
        colors = np.random.uniform(*self.color_range, size=image.shape[2])
        image = image**gamma * brightness * colors.astype(np.float32)
        results['img'] = np.clip(image, 0, 255).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, '
                f'gamma_range={self.gamma_range}, '
                f'brightness_range={self.brightness_range}, '
                f'color_range={self.color_range})')
