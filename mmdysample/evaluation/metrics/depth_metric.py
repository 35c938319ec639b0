# Copyright (c) mmdysample contributors. All rights reserved.
"""mmseg's ``DepthMetric`` with its inputs checked (Table 9's metrics)."""
import logging
import math
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation.metrics import DepthMetric
from mmseg.registry import METRICS
from prettytable import PrettyTable
from torch import Tensor

#: The ground-truth size the Eigen crop ``[45:471, 41:601]`` is defined for.
NYU_CROP_SHAPE = (480, 640)

#: Predictions below this depth (metres) are raised to it before the
#: logarithms: DepthFormer's head never predicts less (``relu + 1e-3``).
DEFAULT_MIN_PRED_DEPTH = 1e-3


def _depth_map(data_sample: dict, key: str) -> Tensor:
    """``data_sample[key]['data']``, ``(1, H, W)`` or ``(H, W)``, as
    ``(H, W)``."""
    data = data_sample[key]['data']
    return data[0] if data.ndim == 3 and data.shape[0] == 1 else data


@METRICS.register_module()
class CheckedDepthMetric(DepthMetric):
    """Depth metrics of mmseg's ``DepthMetric`` that never give NaN silently.

    The metrics are mmseg's (and the Monocular-Depth-Estimation-Toolbox's,
    DySample's Table 9): ``d1``, ``d2``, ``d3`` (share of pixels with
    ``max(gt / pred, pred / gt)`` below 1.25, 1.25^2, 1.25^3), ``abs_rel``,
    ``sq_rel``, ``rmse``, ``rmse_log``, ``log10`` and ``silog``, computed per
    image over the pixels with ``min_depth_eval < gt < max_depth_eval`` (and
    inside the Eigen crop with ``crop_type='nyu_crop'``), then averaged over
    the images; keys without a prefix, as mmseg writes them. What mmseg
    1.2.2's class gets wrong, and what this one does instead:

    - ``depth_metrics=[...]`` raises a ``TypeError`` there
      (``isinstance(x, [tuple, list])``); here a list or tuple of names
      selects the metrics and an unknown name is a ``ValueError``.
    - A prediction ``<= 0`` reaches ``log`` there (``-inf`` / NaN metrics).
      Here predictions below ``min_pred_depth`` are raised to it first, and
      how many pixels were raised is logged.
    - An image without a pixel to evaluate gives NaN there, which poisons
      the mean. Here it is left out of the mean and named in a warning; a
      dataset where no image has one is a ``ValueError``.
    - The Eigen crop indexes fixed rows and columns that only fit 480 x 640
      ground truth; another size is a ``ValueError`` here, not a crop of
      the wrong region.
    - A prediction whose size is not the ground truth's is a ``ValueError``
      naming the image, not a broadcasting error.

    Args:
        depth_metrics (str | Sequence[str], optional): Metrics to report;
            None for all of :attr:`METRICS`. Defaults to None.
        min_depth_eval (float): Ground truth at or below this depth (metres)
            is not evaluated. Defaults to 0.0.
        max_depth_eval (float): Ground truth at or above this depth is not
            evaluated. Defaults to infinity.
        crop_type (str, optional): None or ``'nyu_crop'`` (the Eigen crop
            of 480 x 640 NYU ground truth). Defaults to None.
        min_pred_depth (float): The smallest prediction the metrics see,
            > 0. Defaults to 1e-3.
        **kwargs: The other arguments of mmseg's ``DepthMetric``
            (``depth_scale_factor``, ``collect_device``, ``output_dir``,
            ``format_only``, ``prefix``).

    Example:
        >>> import torch
        >>> metric = CheckedDepthMetric(depth_metrics=['d1', 'rmse'],
        ...                             prefix='depth')
        >>> gt = torch.tensor([[[1.0, 2.0], [4.0, 0.0]]])
        >>> pred = torch.tensor([[[1.0, 2.0], [0.0, -1.0]]])
        >>> metric.process({}, [dict(gt_depth_map=dict(data=gt),
        ...                          pred_depth_map=dict(data=pred))])
        >>> gt_px, pred_px, _, raised = metric.results[0]
        >>> gt_px.tolist(), pred_px.tolist(), raised
        ([1.0, 2.0, 4.0], [1.0, 2.0, 0.001...], 1)
    """

    def __init__(self,
                 depth_metrics: Optional[Union[str, Sequence[str]]] = None,
                 min_depth_eval: float = 0.0,
                 max_depth_eval: float = float('inf'),
                 crop_type: Optional[str] = None,
                 min_pred_depth: float = DEFAULT_MIN_PRED_DEPTH,
                 **kwargs) -> None:
        metrics = self._check_metrics(depth_metrics)
        if crop_type not in (None, 'nyu_crop'):
            raise ValueError("crop_type must be None or 'nyu_crop', got "
                             f'{crop_type!r}')
        for name, value in (('min_depth_eval', min_depth_eval),
                            ('max_depth_eval', max_depth_eval)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f'{name} must be a number >= 0, got '
                                 f'{value!r}')
        if not min_depth_eval < max_depth_eval:
            raise ValueError(
                f'min_depth_eval ({min_depth_eval!r}) must be below '
                f'max_depth_eval ({max_depth_eval!r})')
        if isinstance(min_pred_depth, bool) or not isinstance(
                min_pred_depth, (int, float)) or not (0 < min_pred_depth <
                                                      math.inf):
            raise ValueError('min_pred_depth must be a finite number > 0, '
                             f'got {min_pred_depth!r}')
        super().__init__(
            depth_metrics=None,
            min_depth_eval=min_depth_eval,
            max_depth_eval=max_depth_eval,
            crop_type=crop_type,
            **kwargs)
        self.metrics = metrics
        self.min_pred_depth = float(min_pred_depth)

    @classmethod
    def _check_metrics(
            cls, depth_metrics: Optional[Union[str,
                                               Sequence[str]]]) -> tuple:
        if depth_metrics is None:
            return tuple(cls.METRICS)
        if isinstance(depth_metrics, str):
            depth_metrics = [depth_metrics]
        if not isinstance(depth_metrics, (list, tuple)) or not depth_metrics:
            raise TypeError('depth_metrics must be None, a metric name or a '
                            f'non-empty list of them, got {depth_metrics!r}')
        unknown = [m for m in depth_metrics if m not in cls.METRICS]
        if unknown:
            raise ValueError(f'depth_metrics has unknown metrics {unknown}; '
                             f'valid: {list(cls.METRICS)}')
        return tuple(depth_metrics)

    def _get_eval_mask(self, gt_depth: Tensor) -> Tensor:
        if self.crop_type == 'nyu_crop' and tuple(
                gt_depth.shape) != NYU_CROP_SHAPE:
            raise ValueError(
                "crop_type='nyu_crop' (the Eigen crop [45:471, 41:601]) needs "
                f'{NYU_CROP_SHAPE[0]} x {NYU_CROP_SHAPE[1]} ground truth, got '
                f'{tuple(gt_depth.shape)}; use crop_type=None for other '
                'sizes')
        return super()._get_eval_mask(gt_depth)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep the evaluated pixels of each image: ``(gt, pred, name)``
        (empty tensors for an image without any, so that each sample keeps
        one entry under distributed collection)."""
        if self.format_only:
            super().process(data_batch, data_samples)
            return
        for data_sample in data_samples:
            name = data_sample.get('img_path', '<no img_path>')
            pred = _depth_map(data_sample, 'pred_depth_map')
            gt = _depth_map(data_sample, 'gt_depth_map').to(pred)
            if pred.shape != gt.shape:
                raise ValueError(
                    f'pred_depth_map of {name} has size '
                    f'{tuple(pred.shape)}, gt_depth_map {tuple(gt.shape)}: '
                    'the model must predict at the ground truth size')
            mask = self._get_eval_mask(gt)
            low = pred[mask] < self.min_pred_depth
            self.results.append(
                (gt[mask], pred[mask].clamp(min=self.min_pred_depth), name,
                 int(low.sum())))
            if self.output_dir is not None:
                super().process(data_batch, [data_sample])

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """The mean of each metric over the images with pixels to evaluate.

        Raises:
            ValueError: No image has a pixel to evaluate.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if self.format_only:
            return super().compute_metrics(results)
        values = defaultdict(list)
        empty, raised = [], 0
        for gt, pred, name, low in results:
            raised += low
            if gt.numel() == 0:
                empty.append(name)
                continue
            for key, value in self._calc_all_metrics(gt, pred).items():
                values[key].append(value)
        if empty:
            print_log(
                f'{len(empty)} of {len(results)} images have no ground truth '
                f'in ({self.min_depth_eval}, {self.max_depth_eval}) and are '
                f'left out of the depth metrics: {empty[:5]}'
                f"{' ...' if len(empty) > 5 else ''}",
                logger=logger,
                level=logging.WARNING)
        if raised:
            print_log(
                f'{raised} predicted pixels were below min_pred_depth='
                f'{self.min_pred_depth} and were raised to it before the '
                'metrics', logger=logger, level=logging.WARNING)
        if not values:
            raise ValueError(
                f'none of the {len(results)} images has ground truth in '
                f'({self.min_depth_eval}, {self.max_depth_eval}) (check '
                'min_depth_eval / max_depth_eval and the depth scale)')
        metrics = OrderedDict(
            (key, sum(values[key]) / len(values[key])) for key in self.metrics)
        table = PrettyTable()
        for key, value in metrics.items():
            table.add_column(key, [round(value, 5)])
        print_log('results:', logger)
        print_log('\n' + table.get_string(), logger=logger)
        return metrics
