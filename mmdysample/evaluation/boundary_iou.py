# Copyright (c) mmdysample contributors. All rights reserved.
"""Boundary IoU of semantic label maps: the bands and their areas.

Boundary IoU: Cheng, Girshick, Dollar, Berg, Kirillov. "Boundary IoU:
Improving Object-Centric Image Segmentation Evaluation", CVPR 2021.
https://arxiv.org/abs/2103.16562. DySample (ICCV 2023, Table 4) reports it
as bIoU next to mIoU; its own evaluation script is not public.

Definition, per image and class ``c``: the boundary band of the binary mask
``label == c`` is the mask minus its erosion by a 3x3 square applied ``d``
times, pixels outside the image counting as background, with ``d =
max(1, round(dilation_ratio * sqrt(H**2 + W**2)))``. ``d`` erosions by a 3x3
square are one erosion by a ``(2d+1) x (2d+1)`` square, so a pixel of the
mask is in its band exactly when some pixel within Chebyshev distance ``d``
lies outside the mask or outside the image. The intersection and union of
the ground-truth and predicted bands of each class are summed over the
dataset; bIoU is their ratio, averaged over the classes with a non-zero
union.

Ignore pixels (``label == ignore_index``) are background of every class in
both maps: they are taken out of the ground-truth masks (they never equal a
class) and out of the predicted masks *before* the bands are computed. So
they are in no band, and what is predicted at them changes nothing: a
prediction that is right on every labelled pixel scores 100, and a class
region that borders an unlabelled area has the same band in both maps
there. (Taking them out of the predicted bands only *after* the bands are
computed would make the prediction at ignore pixels move the predicted band
of their labelled neighbours.)

How it is computed: every pixel belongs to exactly one class of a map, so
the band of class ``c`` is the set of pixels labelled ``c`` whose
``(2d+1) x (2d+1)`` window is not one label inside the image. One grey-level
morphological gradient (window maximum minus window minimum, borders padded
with a value below every label) of the whole label map finds them for all
classes at once, whatever the number of classes; per-class areas are then
masked histograms (``cv2.calcHist``). The gradient is OpenCV's
``morphologyEx`` (separable for a square kernel, SIMD): about 2 ms for a
512x683 map on one CPU core, see ``tools/analysis_tools/benchmark_biou.py``
and docs/user_guides/metrics.md.
"""
import math
import numbers
from typing import Any, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = [
    'DEFAULT_DILATION_RATIO', 'boundary_dilation',
    'boundary_intersect_and_union', 'boundary_pixels', 'check_dilation_ratio'
]

#: Band width as a fraction of the image diagonal (Cheng et al.'s default).
DEFAULT_DILATION_RATIO = 0.02

LabelMap = Union[np.ndarray, Tensor]

# Codes of the label map handed to OpenCV: 0 pads the border, 1 marks ignore
# pixels, 2 + c class c, 2 + num_classes any other value. The smallest dtype
# that holds them is used (OpenCV's morphology is fastest on uint8); float32
# represents integers exactly up to 2**24.
_CODE_DTYPES = ((np.uint8, 2**8 - 1), (np.uint16, 2**16 - 1),
                (np.float32, 2**24))
#: Most pixels counted by one ``cv2.calcHist`` call (float32 counts).
_HIST_EXACT_PIXELS = 2**24 - 1


def check_dilation_ratio(dilation_ratio: Any) -> float:
    """Return ``dilation_ratio`` as a float, or raise naming it.

    Args:
        dilation_ratio (float): The band width as a fraction of the image
            diagonal; a finite number > 0.

    Returns:
        float: ``dilation_ratio``.
    """
    if isinstance(dilation_ratio, bool) or not isinstance(
            dilation_ratio, numbers.Real):
        raise TypeError('dilation_ratio must be a number, got '
                        f'{dilation_ratio!r} of type '
                        f'{type(dilation_ratio).__name__}')
    if not (math.isfinite(dilation_ratio) and dilation_ratio > 0):
        raise ValueError('dilation_ratio must be a finite number > 0, got '
                         f'{dilation_ratio!r}')
    return float(dilation_ratio)


def boundary_dilation(height: int,
                      width: int,
                      dilation_ratio: float = DEFAULT_DILATION_RATIO) -> int:
    """The band width ``d`` in pixels of a ``height x width`` image.

    ``d = max(1, round(dilation_ratio * sqrt(height**2 + width**2)))``, with
    Python's ``round`` (halves to even), as in Cheng et al.'s code.

    Args:
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        dilation_ratio (float): Band width as a fraction of the image
            diagonal. Defaults to 0.02.

    Returns:
        int: ``d >= 1``.

    Example:
        >>> boundary_dilation(512, 683)  # 0.02 * 853.6 = 17.07
        17
        >>> boundary_dilation(20, 20)
        1
    """
    dilation_ratio = check_dilation_ratio(dilation_ratio)
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def boundary_pixels(label_map: np.ndarray, dilation: int) -> np.ndarray:
    """Pixels whose window is not one label inside the image.

    For every class ``c``, ``(label_map == c) & boundary_pixels(label_map,
    d)`` is the boundary band of the mask ``label_map == c``: the mask minus
    its erosion by a ``(2d+1) x (2d+1)`` square, outside the image counting
    as background.

    Args:
        label_map (np.ndarray): Labels, shape ``(H, W)``, of an unsigned
            integer dtype of OpenCV's (uint8, uint16) or float32 holding
            integers, every value >= 1 (0 is the border's).
        dilation (int): ``d >= 1``: the band reaches ``d`` pixels into each
            region (Chebyshev distance).

    Returns:
        np.ndarray: bool, shape ``(H, W)``: True where the ``(2d+1) x
        (2d+1)`` window centred on the pixel holds another label or leaves
        the image.

    Example:
        >>> labels = np.ones((4, 6), np.uint8)
        >>> labels[:, 3:] = 2
        >>> boundary_pixels(labels, 1).astype(int)
        array([[1, 1, 1, 1, 1, 1],
               [1, 0, 1, 1, 0, 1],
               [1, 0, 1, 1, 0, 1],
               [1, 1, 1, 1, 1, 1]])
    """
    if isinstance(dilation, bool) or not isinstance(dilation,
                                                    numbers.Integral):
        raise TypeError(f'dilation must be an integer, got {dilation!r}')
    if dilation < 1:
        raise ValueError(f'dilation must be >= 1, got {dilation}')
    size = 2 * int(dilation) + 1
    kernel = np.ones((size, size), np.uint8)
    # max - min over the window; the constant 0 border is below every label,
    # so windows that leave the image have a non-zero gradient.
    gradient = cv2.morphologyEx(
        label_map,
        cv2.MORPH_GRADIENT,
        kernel,
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0)
    return gradient != 0


def _label_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    elif not isinstance(value, np.ndarray):
        raise TypeError(f'{name} must be a Tensor or np.ndarray, got '
                        f'{type(value).__name__}')
    if value.ndim != 2:
        raise ValueError(f'{name} must have shape (H, W), got '
                         f'{tuple(value.shape)}')
    if value.size == 0:
        raise ValueError(f'{name} must not be empty, got shape '
                         f'{tuple(value.shape)}')
    if not (np.issubdtype(value.dtype, np.integer)
            or value.dtype == np.bool_):
        raise TypeError(f'{name} must hold integer labels, got dtype '
                        f'{value.dtype}')
    return value


def boundary_intersect_and_union(
    pred_label: LabelMap,
    label: LabelMap,
    num_classes: int,
    ignore_index: int = 255,
    dilation_ratio: float = DEFAULT_DILATION_RATIO
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-class areas of the boundary bands of one image.

    The boundary counterpart of mmseg's ``IoUMetric.intersect_and_union``;
    see the module docstring for the definition. Values of ``label`` outside
    ``[0, num_classes)`` other than ``ignore_index``, and of ``pred_label``
    outside ``[0, num_classes)``, are labelled pixels of no class.

    Args:
        pred_label (Tensor | np.ndarray): Predicted labels, shape ``(H, W)``,
            integer dtype.
        label (Tensor | np.ndarray): Ground-truth labels, shape ``(H, W)``,
            integer dtype.
        num_classes (int): Number of classes.
        ignore_index (int): Ground-truth label of unlabelled pixels.
            Defaults to 255.
        dilation_ratio (float): Band width as a fraction of the image
            diagonal. Defaults to 0.02.

    Returns:
        tuple[Tensor]: Four int64 tensors of shape ``(num_classes,)``: the
        intersection and the union of the predicted and ground-truth bands,
        the predicted band's area and the ground-truth band's area.

    Example:
        >>> label = torch.zeros(8, 8, dtype=torch.long)
        >>> label[:, 4:] = 1
        >>> pred = torch.zeros(8, 8, dtype=torch.long)
        >>> pred[:, 5:] = 1  # the edge one pixel to the right
        >>> inter, union, _, _ = boundary_intersect_and_union(
        ...     pred, label, num_classes=2, dilation_ratio=0.1)  # d = 1
        >>> inter.tolist(), union.tolist()
        ([14, 12], [28, 26])
    """
    pred_label = _label_array('pred_label', pred_label)
    label = _label_array('label', label)
    if pred_label.shape != label.shape:
        raise ValueError(f'pred_label and label must have the same shape, '
                         f'got {pred_label.shape} and {label.shape}')
    if isinstance(num_classes, bool) or not isinstance(
            num_classes, numbers.Integral):
        raise TypeError(f'num_classes must be an integer, got '
                        f'{num_classes!r}')
    if not 1 <= num_classes < _CODE_DTYPES[-1][1] - 2:
        raise ValueError(f'num_classes must be in [1, '
                         f'{_CODE_DTYPES[-1][1] - 2}), got {num_classes}')
    if isinstance(ignore_index, bool) or not isinstance(
            ignore_index, numbers.Integral):
        raise TypeError(f'ignore_index must be an integer, got '
                        f'{ignore_index!r}')
    num_classes = int(num_classes)
    dilation = boundary_dilation(*label.shape, dilation_ratio)
    dtype = next(dtype for dtype, top in _CODE_DTYPES
                 if num_classes + 2 <= top)

    valid = label != ignore_index
    codes, bands = [], []
    for labels in (pred_label, label):
        labels = labels.astype(np.int64, copy=False)
        in_range = (labels >= 0) & (labels < num_classes)
        code = np.where(in_range, labels + 2, num_classes + 2)
        code[~valid] = 1
        code = code.astype(dtype)
        codes.append(code)
        # also ignore / no-class pixels: their codes' bins are not read
        bands.append(boundary_pixels(code, dilation))
    (pred_code, gt_code), (pred_band, gt_band) = codes, bands

    area_pred = _class_areas(pred_code, pred_band, num_classes)
    area_label = _class_areas(gt_code, gt_band, num_classes)
    area_intersect = _class_areas(
        gt_code, gt_band & pred_band & (pred_code == gt_code), num_classes)
    area_union = area_pred + area_label - area_intersect
    return area_intersect, area_union, area_pred, area_label


def _class_areas(code: np.ndarray, where: np.ndarray,
                 num_classes: int) -> Tensor:
    """Pixels of each class code (``2 + c``) where ``where`` is True."""
    # OpenCV's masked histogram is faster than np.bincount of a
    # boolean selection; it counts in float32, exact below 2**24 per bin.
    bins = num_classes + 3
    rows = max(1, _HIST_EXACT_PIXELS // code.shape[1])
    where = where.view(np.uint8)
    total = np.zeros(bins, np.int64)
    for top in range(0, code.shape[0], rows):
        total += cv2.calcHist([code[top:top + rows]], [0],
                              where[top:top + rows], [bins],
                              [0, bins]).ravel().astype(np.int64)
    return torch.from_numpy(total[2:num_classes + 2])
