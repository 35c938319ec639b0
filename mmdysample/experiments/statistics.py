# Copyright (c) mmdysample contributors. All rights reserved.
"""Paired comparisons over seeds, and what a sweep can detect.

A sweep trains every upsampler with the same seeds, and a seed fixes the
data order and the initialisation of every part of the model but the
upsampler (see ``docs/user_guides/compare_upsamplers.md``), so the runs
of one seed form a pair. Per seed the difference ``d_s = x_s - base_s``;
over the ``n`` seeds both have, the **paired difference** is the mean of
the ``d_s``, its standard error ``sd(d) / sqrt(n)``. It is **significant**
(95 %, two-sided) when ``|mean| > t * se`` with ``t`` Student's quantile
``t_{0.975, n-1}`` (12.71 for two seeds, 4.30 for three, 2.78 for five):
not a fixed two standard errors, which with three seeds is far below 95 %.
Pairing is valid whether or not the two runs of a seed are correlated
(the pairs are independent across seeds); it gains power when they are.

The **smallest detectable difference** is ``t * se``: a difference of that
size is just significant. Where fewer than two seeds pair up, the
baseline's spread stands in: ``t_{0.975, n_b-1} * sd_b * sqrt(1/n + 1/n_b)``
(two independent means of that spread). The **seeds a difference would
need** are the smallest ``n`` with ``t_{0.975, n-1} * sd / sqrt(n) <=
difference`` at the measured spread ``sd`` of a per-seed difference.

Metrics where **lower is better** (:data:`LOWER_IS_BETTER`) turn the sign
of "better": differences stay ``value - baseline``, the verdict says
better or worse. **One point** of a metric is in its own units
(:func:`point`): mmseg's IoU and accuracies and mmdet's PQ are percentages
(1 point = 1.0), COCO's AP is a fraction and mmseg's depth metrics are
fractions or metres (1 point = 0.01).
"""
import math
from collections import Counter
from typing import Dict, Mapping, Optional, Sequence

#: Confidence of the two-sided tests.
CONFIDENCE = 0.95
#: Metrics where lower is better, matched on the last ``/`` part of a key
#: (``rmse`` and ``depth/rmse`` alike): mmseg's ``DepthMetric`` errors and
#: the sweep's latency.
LOWER_IS_BETTER = frozenset({
    'abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'silog', 'latency_ms'
})
#: Key prefixes of metrics reported as a fraction of 1 (mmdet's CocoMetric,
#: LVISMetric): one point is 0.01.
FRACTION_PREFIXES = ('coco/', 'lvis/')
#: mmseg's DepthMetric keys: fractions (``d1``, ``abs_rel``) or metres
#: (``rmse``); one point is 0.01.
DEPTH_METRICS = frozenset({
    'd1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'silog'
})


def _name(key: str) -> str:
    return key.rsplit('/', 1)[-1]


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of ``key`` is the better one.

    Example:
        >>> lower_is_better('rmse'), lower_is_better('depth/silog')
        (True, True)
        >>> lower_is_better('mIoU'), lower_is_better('coco/bbox_mAP')
        (False, False)
    """
    return _name(key) in LOWER_IS_BETTER


def point(key: str) -> float:
    """One point of ``key`` in its own units.

    Example:
        >>> point('mIoU'), point('coco_panoptic/PQ')
        (1.0, 1.0)
        >>> point('coco/segm_mAP'), point('rmse')
        (0.01, 0.01)
    """
    if key.startswith(FRACTION_PREFIXES) or _name(key) in DEPTH_METRICS:
        return 0.01
    return 1.0


def t_threshold(df: int, confidence: float = CONFIDENCE) -> float:
    """Student's two-sided quantile ``t_{(1 + confidence) / 2, df}``.

    Example:
        >>> [round(t_threshold(df), 3) for df in (1, 2, 4)]
        [12.706, 4.303, 2.776]

    Raises:
        ValueError: ``df`` is not a positive integer, or ``confidence`` is
            not in (0, 1).
    """
    if (not isinstance(df, int) or isinstance(df, bool)) or df < 1:
        raise ValueError(f'df must be a positive integer, got {df!r}')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence!r}')
    from scipy.stats import t  # only the statistics need scipy
    return float(t.ppf((1 + confidence) / 2, df))


def seeds_needed(sd: float,
                 difference: float,
                 confidence: float = CONFIDENCE) -> int:
    """The fewest paired seeds that detect ``difference`` at spread ``sd``.

    The smallest ``n >= 2`` with ``t_{n-1} * sd / sqrt(n) <= difference``,
    ``sd`` the standard deviation of a per-seed difference. The search
    starts where the normal quantile would put it (``t`` is larger) and
    counts up.

    Example:
        >>> seeds_needed(1.0, 1.0), seeds_needed(4.0, 1.0)
        (7, 64)

    Raises:
        ValueError: ``sd`` is negative or ``difference`` not positive (or
            either not finite).
    """
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f'sd must be a finite number >= 0, got {sd!r}')
    if not (math.isfinite(difference) and difference > 0):
        raise ValueError(
            f'difference must be a finite number > 0, got {difference!r}')
    from scipy.stats import norm
    z = float(norm.ppf((1 + confidence) / 2))
    n = max(2, math.ceil((z * sd / difference)**2))
    while t_threshold(n - 1, confidence) * sd / math.sqrt(n) > difference:
        n += 1
    return n


def _mean_sd(values: Sequence[float]):
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean)**2 for v in values) / (n - 1))


def paired_difference(values: Mapping[int, float],
                      base: Mapping[int, float],
                      confidence: float = CONFIDENCE) -> Dict:
    """The difference to the baseline over the seeds both have.

    Args:
        values (dict[int, float]): Per seed, the upsampler's value.
        base (dict[int, float]): Per seed, the baseline's value.
        confidence (float): Of the two-sided test. Defaults to 0.95.

    Returns:
        dict: ``seeds`` (common, sorted), ``n``, ``diff`` (mean of the
        per-seed differences ``value - base``; None without a common
        seed), ``sd`` (their sample standard deviation), ``se``
        (``sd / sqrt(n)``), ``df`` (``n - 1``), ``threshold`` (Student's
        ``t`` at ``df``), ``t`` (``diff / se``; None where ``se`` is 0),
        ``significant`` (``|diff| > threshold * se``) and ``detectable``
        (``threshold * se``); those after ``diff`` are None with fewer than
        two common seeds.

    Example:
        >>> p = paired_difference({0: 3.0, 1: 5.0, 2: 4.0},
        ...                       {0: 1.0, 1: 2.0, 2: 3.0})
        >>> p['diff'], p['sd'], round(p['threshold'], 2), p['significant']
        (2.0, 1.0, 4.3, False)
    """
    seeds = sorted(set(values) & set(base))
    out = dict(
        seeds=seeds,
        n=len(seeds),
        diff=None,
        sd=None,
        se=None,
        df=None,
        threshold=None,
        t=None,
        significant=None,
        detectable=None)
    if not seeds:
        return out
    diffs = [values[s] - base[s] for s in seeds]
    mean, sd = _mean_sd(diffs)
    out['diff'] = mean
    if sd is None:
        return out
    n = len(seeds)
    se = sd / math.sqrt(n)
    threshold = t_threshold(n - 1, confidence)
    out.update(
        sd=sd,
        se=se,
        df=n - 1,
        threshold=threshold,
        t=mean / se if se > 0 else None,
        significant=abs(mean) > threshold * se,
        detectable=threshold * se)
    return out


def baseline_detectable(base_sd: Optional[float],
                        base_n: int,
                        n: int,
                        confidence: float = CONFIDENCE) -> Optional[float]:
    """The detectable difference of ``n`` seeds against ``base_n`` from the
    baseline's spread alone (None without two baseline seeds or ``n``).

    Example:
        >>> round(baseline_detectable(1.0, 3, 1), 3)  # 4.303 * sqrt(4 / 3)
        4.968
    """
    if base_sd is None or base_n < 2 or n < 1:
        return None
    return (t_threshold(base_n - 1, confidence) * base_sd *
            math.sqrt(1 / n + 1 / base_n))


def verdict(key: str, significant: Optional[bool],
            diff: Optional[float]) -> Optional[str]:
    """``'better'`` / ``'worse'`` where significant (the side from
    :func:`lower_is_better`), ``'within noise'`` where not, None (no test).

    Example:
        >>> verdict('mIoU', True, 2.0), verdict('rmse', True, 2.0)
        ('better', 'worse')
        >>> verdict('rmse', False, -1.0), verdict('mIoU', None, 2.0)
        ('within noise', None)
    """
    if significant is None or diff is None:
        return None
    if not significant:
        return 'within noise'
    return 'better' if (diff < 0) == lower_is_better(key) else 'worse'


def compare(key: str,
            values: Mapping[int, float],
            base: Mapping[int, float],
            confidence: float = CONFIDENCE) -> Dict:
    """Everything the tables say of one metric against the baseline.

    Returns:
        dict: ``lower_is_better``, ``paired`` (:func:`paired_difference`),
        ``significant`` (the paired test), ``verdict`` (:func:`verdict`),
        ``detectable`` and ``detectable_from`` (``'paired'``, else
        ``'baseline spread'`` where fewer than two seeds pair up, else
        None), ``spread`` (the standard deviation of a per-seed difference
        behind ``seeds_for_one_point``: the paired one, else ``sqrt(2)``
        times the baseline's) and ``seeds_for_one_point`` (paired seeds a
        difference of one :func:`point` would need at that spread).
    """
    paired = paired_difference(values, base, confidence)
    out = dict(
        lower_is_better=lower_is_better(key),
        paired=paired,
        significant=paired['significant'],
        verdict=verdict(key, paired['significant'], paired['diff']),
        detectable=None,
        detectable_from=None,
        spread=None,
        seeds_for_one_point=None)
    if paired['detectable'] is not None:
        out.update(
            detectable=paired['detectable'],
            detectable_from='paired',
            spread=paired['sd'])
    else:
        _, base_sd = _mean_sd(list(base.values())) if base else (None, None)
        found = baseline_detectable(base_sd, len(base), len(values),
                                    confidence)
        if found is not None:
            out.update(
                detectable=found,
                detectable_from='baseline spread',
                spread=math.sqrt(2) * base_sd)
    if out['spread'] is not None:
        out['seeds_for_one_point'] = seeds_needed(out['spread'], point(key),
                                                  confidence)
    return out


def sweep_statistics(key: Optional[str],
                     comparisons: Sequence[Optional[Dict]],
                     base: Mapping[int, float],
                     confidence: float = CONFIDENCE) -> Dict:
    """What the sweep as a whole can detect on ``key``.

    The spread of a per-seed difference is pooled over the upsamplers with
    at least two paired seeds (``sqrt(sum((n_i - 1) sd_i²) / sum(n_i -
    1))``), at the sweep's usual number of paired seeds ``n`` (the most
    common); without any, the baseline's spread stands in (``sqrt(2) *
    sd_b`` at ``n_b`` seeds).

    Args:
        key (str | None): The metric (None before a run has finished).
        comparisons (list[dict | None]): :func:`compare` of each upsampler
            but the baseline (None where it has no run).
        base (dict[int, float]): The baseline's value per seed.
        confidence (float): Defaults to 0.95.

    Returns:
        dict: ``metric``, ``lower_is_better``, ``point``, ``confidence``,
        ``n``, ``spread``, ``spread_from`` (``'paired'`` with
        ``upsamplers`` pooled, ``'baseline spread'`` or None), ``threshold``
        (``t`` at ``n - 1``), ``detectable`` (``threshold * spread /
        sqrt(n)``) and ``seeds_for_one_point``; None where not known.

    Example:
        >>> base = {0: 1.0, 1: 2.0, 2: 3.0}
        >>> pair = compare('mIoU', {0: 3.0, 1: 5.0, 2: 4.0}, base)
        >>> s = sweep_statistics('mIoU', [pair], base)
        >>> s['spread'], s['n'], round(s['detectable'], 3)
        (1.0, 3, 2.484)
        >>> s['seeds_for_one_point']
        7
    """
    out = dict(
        metric=key,
        lower_is_better=lower_is_better(key) if key else None,
        point=point(key) if key else None,
        confidence=confidence,
        n=None,
        spread=None,
        spread_from=None,
        upsamplers=0,
        threshold=None,
        detectable=None,
        seeds_for_one_point=None)
    if key is None:
        return out
    pairs = [
        c['paired'] for c in comparisons
        if c is not None and c['paired']['sd'] is not None
    ]
    if pairs:
        dof = sum(p['n'] - 1 for p in pairs)
        spread = math.sqrt(
            math.fsum((p['n'] - 1) * p['sd']**2 for p in pairs) / dof)
        counts = Counter(p['n'] for p in pairs)
        n = max(counts, key=lambda k: (counts[k], k))
        out.update(spread_from='paired', upsamplers=len(pairs))
    else:
        n = len(base)
        _, base_sd = _mean_sd(list(base.values())) if base else (None, None)
        if base_sd is None:
            return out
        spread = math.sqrt(2) * base_sd
        out.update(spread_from='baseline spread')
    threshold = t_threshold(n - 1, confidence)
    out.update(
        n=n,
        spread=spread,
        threshold=threshold,
        detectable=threshold * spread / math.sqrt(n),
        seeds_for_one_point=seeds_needed(spread, point(key), confidence))
    return out
