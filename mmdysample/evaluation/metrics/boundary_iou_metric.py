# Copyright (c) mmdysample contributors. All rights reserved.
"""mmseg's ``IoUMetric`` counterpart for boundary IoU (bIoU)."""
import logging
import numbers
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable
from torch import Tensor

from ..boundary_iou import (DEFAULT_DILATION_RATIO,
                            boundary_intersect_and_union, check_dilation_ratio)


def _label_map(data_sample: dict, key: str) -> Tensor:
    """``data_sample[key]['data']`` of shape ``(1, H, W)`` as ``(H, W)``."""
    data = data_sample[key]['data']
    return data[0] if data.ndim == 3 and data.shape[0] == 1 else data


@METRICS.register_module()
class BoundaryIoUMetric(BaseMetric):
    """Boundary IoU (bIoU) of semantic segmentation, in percent.

    Cheng et al., `Boundary IoU <https://arxiv.org/abs/2103.16562>`_, CVPR
    2021, as reported next to mIoU by DySample (ICCV 2023, Table 4). Per
    image and class, the boundary band of a mask is the mask minus its
    erosion by a ``(2d+1) x (2d+1)`` square, ``d = max(1, round(
    dilation_ratio * image diagonal))``, outside the image counting as
    background; ignore pixels are background of every class in both the
    ground truth and the prediction, so they are in no band and the
    prediction at them never counts (details in
    :mod:`mmdysample.evaluation.boundary_iou`). The intersection and union
    of the ground-truth and predicted bands are summed per class over the
    dataset; ``bIoU`` is the mean of their ratio over the classes with a
    non-zero union. A per-class table is logged, as ``IoUMetric`` does;
    classes with an empty union show ``nan`` and do not count.

    Conventions are ``IoUMetric``'s: predictions are read from
    ``pred_sem_seg.data`` and labels from ``gt_sem_seg.data`` (``(1, H, W)``
    or ``(H, W)``), class names from ``dataset_meta['classes']``, and
    ``results`` holds one tuple of per-class band areas per image, so that
    mmengine's ``collect_results`` gathers (and, for samples padded onto the
    last ranks, drops) them exactly under distributed evaluation. Use it
    beside ``IoUMetric``::

        val_evaluator = [
            dict(type='IoUMetric', iou_metrics=['mIoU']),
            dict(type='BoundaryIoUMetric')
        ]

    Args:
        ignore_index (int): Ground-truth label of unlabelled pixels.
            Defaults to 255.
        dilation_ratio (float): Band width as a fraction of the image
            diagonal; a finite number > 0. Defaults to 0.02.
        collect_device (str): Device used to collect results from the ranks
            in distributed evaluation, ``'cpu'`` or ``'gpu'``. Defaults to
            ``'cpu'``.
        prefix (str, optional): Prefix of the metric names, to tell apart
            homonymous metrics of different evaluators. Defaults to None.

    Example:
        >>> import torch
        >>> metric = BoundaryIoUMetric(prefix='val')
        >>> metric.dataset_meta = dict(classes=('sky', 'road', 'car'))
        >>> label = torch.zeros(1, 32, 48, dtype=torch.long)
        >>> label[:, 16:] = 1
        >>> pred = torch.zeros(1, 32, 48, dtype=torch.long)
        >>> pred[:, 17:] = 1  # the edge one row lower
        >>> metric.process({}, [dict(pred_sem_seg=dict(data=pred),
        ...                          gt_sem_seg=dict(data=label))])
        >>> intersect, union, pred_area, label_area = metric.results[0]
        >>> intersect.tolist(), union.tolist()  # 'car' is in no band
        ([78, 76, 0], [172, 170, 0])

        ``metric.evaluate(size)`` sums these over the images, logs the
        per-class table and returns ``{'val/bIoU': 45.03}`` here: the mean
        of 78 / 172 and 76 / 170; 'car' does not count. (The band is d = 1
        pixel wide in a 32x48 image, so a one-pixel shift costs half.)
    """

    def __init__(self,
                 ignore_index: int = 255,
                 dilation_ratio: float = DEFAULT_DILATION_RATIO,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(ignore_index, bool) or not isinstance(
                ignore_index, numbers.Integral):
            raise TypeError('ignore_index must be an integer, got '
                            f'{ignore_index!r}')
        self.ignore_index = int(ignore_index)
        self.dilation_ratio = check_dilation_ratio(dilation_ratio)

    @property
    def class_names(self) -> Tuple[str, ...]:
        """``dataset_meta['classes']``, set by the Evaluator."""
        if not self.dataset_meta or 'classes' not in self.dataset_meta:
            raise ValueError(
                'BoundaryIoUMetric needs dataset_meta with the class names '
                "('classes'), which the Evaluator sets from the dataset; got "
                f'dataset_meta={self.dataset_meta!r}')
        return tuple(self.dataset_meta['classes'])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Append each image's per-class band areas to ``self.results``.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): The model's outputs, each with
                ``pred_sem_seg.data`` and ``gt_sem_seg.data``.
        """
        num_classes = len(self.class_names)
        for data_sample in data_samples:
            self.results.append(
                boundary_intersect_and_union(
                    _label_map(data_sample, 'pred_sem_seg'),
                    _label_map(data_sample, 'gt_sem_seg'), num_classes,
                    self.ignore_index, self.dilation_ratio))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """bIoU over the whole dataset from the per-image band areas.

        Args:
            results (list): ``(intersect, union, pred_area, label_area)``
                per image, each a tensor of shape ``(num_classes,)``.

        Returns:
            dict[str, float]: ``{'bIoU': ...}`` in percent, rounded to two
            decimals; ``nan`` when no class has a non-zero union.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        class_names = self.class_names
        intersect = np.zeros(len(class_names))
        union = np.zeros(len(class_names))
        for result in results:
            intersect += result[0].numpy()
            union += result[1].numpy()
        counted = union > 0
        per_class = np.full(len(class_names), np.nan)
        per_class[counted] = intersect[counted] / union[counted] * 100
        if counted.any():
            biou = float(np.round(per_class[counted].mean(), 2))
        else:
            biou = float('nan')
            print_log(
                'BoundaryIoUMetric: no class has a boundary band in the '
                'ground truth or the prediction; bIoU is nan',
                logger=logger,
                level=logging.WARNING)

        table = PrettyTable()
        table.add_column('Class', list(class_names))
        table.add_column('bIoU', list(np.round(per_class, 2)))
        print_log('per class results (boundary IoU):', logger)
        print_log('\n' + table.get_string(), logger=logger)
        return dict(bIoU=biou)
