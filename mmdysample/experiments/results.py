# Copyright (c) mmdysample contributors. All rights reserved.
"""From the runs' records to one summary per upsampler.

Per upsampler and metric: the mean over its finished seeds, the sample
standard deviation (``n - 1`` in the denominator) and the standard error of
the mean (``std / sqrt(n)``). Against the baseline (the first upsampler
named) two differences: the **unpaired** one of :func:`difference`, the
difference of the means with the standard error ``sqrt(se_a**2 +
se_b**2)`` of two independent means (Welch), and the **paired** one of
:func:`~.statistics.compare`, over the seeds both have, with its Student's
t test, detectable difference and the seeds one point would need. The
verdict of the tables is the paired test's; ``beyond_2se`` (|diff| > 2
unpaired SE) stays in ``results.json`` for readers of older files.
"""
import math
import numbers
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from .statistics import compare, sweep_statistics

#: The default main metric: the first of these the evaluator reports, the
#: task's own. Panoptic PQ (mmdet's ``CocoPanopticMetric``); mask AP before
#: box AP, since an instance config reports both and the paper's instance
#: table (Table 7) ranks by mask AP; box AP; semantic mIoU (mmseg's
#: ``IoUMetric``); depth RMSE (mmseg's ``DepthMetric``, lower is better).
DEFAULT_MAIN_METRICS = ('coco_panoptic/PQ', 'coco/segm_mAP', 'coco/bbox_mAP',
                        'mIoU', 'rmse')


def numeric_metrics(metrics: Dict) -> Dict[str, float]:
    """The numbers of an evaluator's result, as Python floats (mmseg
    returns numpy scalars); anything else (text, tables) is left out.

    Example:
        >>> numeric_metrics({'mIoU': np.float32(14.34), 'note': 'x'})
        {'mIoU': 14.34}
    """
    out = {}
    for key, value in metrics.items():
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, np.floating):
            # the shortest text of a float32 (14.34, not 14.3400001...)
            out[str(key)] = float(str(value))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


def mean_std_se(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """``n``, ``mean``, sample ``std`` and standard error ``se``.

    Example:
        >>> mean_std_se([1.0, 2.0, 3.0])
        {'n': 3, 'mean': 2.0, 'std': 1.0, 'se': 0.5773502691896258}
        >>> mean_std_se([4.0])
        {'n': 1, 'mean': 4.0, 'std': None, 'se': None}
    """
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return dict(n=0, mean=None, std=None, se=None)
    mean = math.fsum(values) / n
    if n == 1:
        return dict(n=1, mean=mean, std=None, se=None)
    var = math.fsum((v - mean)**2 for v in values) / (n - 1)
    std = math.sqrt(var)
    return dict(n=n, mean=mean, std=std, se=std / math.sqrt(n))


def difference(stats: Dict, base: Dict) -> Dict:
    """The unpaired difference: ``diff`` (mean minus the baseline's), its
    ``se`` (Welch) and ``beyond_2se`` (|diff| > 2 se; None without two
    seeds on each side; kept for readers of older results, the tables
    judge by the paired test of :func:`~.statistics.compare`).

    Example:
        >>> difference(mean_std_se([3.0, 4.0]), mean_std_se([1.0, 2.0]))
        {'diff': 2.0, 'se': 0.7071067811865476, 'beyond_2se': True}
    """
    if stats['mean'] is None or base['mean'] is None:
        return dict(diff=None, se=None, beyond_2se=None)
    diff = stats['mean'] - base['mean']
    if stats['se'] is None or base['se'] is None:
        return dict(diff=diff, se=None, beyond_2se=None)
    se = math.sqrt(stats['se']**2 + base['se']**2)
    return dict(diff=diff, se=se, beyond_2se=abs(diff) > 2 * se)


def choose_main_metric(available: Iterable[str],
                       requested: Optional[str] = None) -> str:
    """``requested``, or the first of :data:`DEFAULT_MAIN_METRICS` there is.

    Raises:
        ValueError: ``requested`` is not among ``available``, or no default
            is; the message lists the available keys.
    """
    available = list(available)
    if requested is not None:
        if requested not in available:
            raise ValueError(
                f'--metric {requested!r} is not among the metrics the '
                f'evaluator reports: {available}')
        return requested
    for key in DEFAULT_MAIN_METRICS:
        if key in available:
            return key
    raise ValueError(
        f'none of the default main metrics {list(DEFAULT_MAIN_METRICS)} is '
        f'reported; pass --metric, one of {available}')


def _mean(values: List[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return math.fsum(values) / len(values) if values else None


def _minus(value, base):
    if value is None or base is None:
        return None
    return value - base


def summarize(records: Sequence[Dict], upsamplers: Sequence[str],
              complexity: Dict[str, Dict]) -> List[Dict]:
    """One summary per upsampler, in the order named.

    Args:
        records (list[dict]): Run records (``upsampler``, ``status`` 'ok' /
            'failed', ``metrics``, ``train_time_s``, ``latency``).
        upsamplers (list[str]): The names; the first is the baseline.
        complexity (dict): Per name, ``params`` and ``flops`` (or None).

    Returns:
        list[dict]: ``upsampler``, ``seeds`` / ``failed`` (seeds of the
        finished / failed runs), ``metrics`` (per key :func:`mean_std_se`
        plus ``values`` and ``by_seed``), ``vs_baseline`` (per key
        :func:`difference` and :func:`~.statistics.compare` in one dict:
        ``diff``, ``se``, ``beyond_2se``, ``lower_is_better``, ``paired``,
        ``significant``, ``verdict``, ``detectable``, ``detectable_from``,
        ``spread``, ``seeds_for_one_point``), ``params`` /
        ``delta_params``, ``flops`` / ``delta_flops``, ``latency_ms`` and
        ``train_time_s`` (means over the seeds).
    """
    base_name = upsamplers[0]
    grouped = {name: [] for name in upsamplers}
    for record in records:
        grouped.setdefault(record['upsampler'], []).append(record)
    summaries = []
    for name in upsamplers:
        ok = [r for r in grouped[name] if r['status'] == 'ok']
        keys = []
        for r in ok:
            keys += [k for k in r['metrics'] if k not in keys]
        metrics = {}
        for key in keys:
            values = [r['metrics'][key] for r in ok if key in r['metrics']]
            metrics[key] = dict(
                mean_std_se(values),
                values=values,
                by_seed={
                    r['seed']: r['metrics'][key]
                    for r in ok if key in r['metrics']
                })
        cost = complexity.get(name) or {}
        base_cost = complexity.get(base_name) or {}
        summaries.append(
            dict(
                upsampler=name,
                seeds=[r['seed'] for r in ok],
                failed=[r['seed'] for r in grouped[name]
                        if r['status'] != 'ok'],
                metrics=metrics,
                params=cost.get('params'),
                delta_params=_minus(cost.get('params'),
                                    base_cost.get('params')),
                flops=cost.get('flops'),
                delta_flops=_minus(cost.get('flops'),
                                   base_cost.get('flops')),
                latency_ms=_mean([(r.get('latency') or {}).get(
                    'ms_per_image') for r in ok]),
                train_time_s=_mean([r.get('train_time_s') for r in ok])))
    base = summaries[0]['metrics']
    for summary in summaries:
        summary['vs_baseline'] = {
            key: dict(
                difference(stats, base[key]),
                **compare(key, stats['by_seed'], base[key]['by_seed']))
            for key, stats in summary['metrics'].items() if key in base
        }
    return summaries


def sweep_summary(summaries: Sequence[Dict], key: Optional[str]) -> Dict:
    """:func:`~.statistics.sweep_statistics` of ``key`` over
    :func:`summarize`'s output (the first summary is the baseline's)."""
    base = summaries[0]['metrics'].get(key, {}) if key else {}
    return sweep_statistics(
        key, [s['vs_baseline'].get(key) for s in summaries[1:]],
        base.get('by_seed', {}))
