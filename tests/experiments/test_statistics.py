# Copyright (c) mmdysample contributors. All rights reserved.
"""The statistics of compare_upsamplers, on numbers worked out by hand.

Hand computations are written out beside each expectation; the Student's
t quantiles are those of a printed table (two-sided 95 %: 12.706 at one
degree of freedom, 4.303 at two, 2.776 at four).
"""
import glob
import json
import math
import os.path as osp

import pytest

from mmdysample.experiments import choose_main_metric, summarize
from mmdysample.experiments.report import markdown
from mmdysample.experiments.results import sweep_summary
from mmdysample.experiments.statistics import (compare, lower_is_better,
                                               paired_difference, point,
                                               seeds_needed, t_threshold,
                                               verdict)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def runs(name, values, key='mIoU', seeds=None):
    """Run records as a sweep writes them, one per seed."""
    seeds = range(len(values)) if seeds is None else seeds
    return [
        dict(
            upsampler=name,
            seed=seed,
            status='ok',
            metrics={key: value},
            train_time_s=1.0,
            latency=None) for seed, value in zip(seeds, values)
    ]


def md_row(text, header_start, name):
    """One row of the markdown table whose header starts so, as a dict."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip('|').split('|')]
    for line in lines[start + 2:]:
        cells = [c.strip() for c in line.strip('|').split('|')]
        if cells[0] == name:
            return dict(zip(header, cells))
    raise AssertionError(f'no row {name!r}')


INFO = dict(
    config='c.py', seeds=[0, 1, 2], baseline='base', created='now')


@pytest.mark.parametrize('seeds, expected', [(2, 12.706), (3, 4.303),
                                             (5, 2.776)])
def test_t_threshold_of_two_three_five_paired_seeds(seeds, expected):
    assert t_threshold(seeds - 1) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize('df', [0, -1, 2.0, True, None])
def test_t_threshold_refuses_a_bad_df(df):
    with pytest.raises(ValueError, match=f'df must be a positive integer, '
                       f'got {df!r}'):
        t_threshold(df)


def test_t_threshold_refuses_a_bad_confidence():
    with pytest.raises(ValueError, match='confidence must be in'):
        t_threshold(2, confidence=1.0)


def test_paired_difference_by_hand():
    """Base 50, 52, 54; upsampler 53, 54, 58 over seeds 0-2.

    Per seed: 3, 2, 4; mean 3, sd sqrt((0 + 1 + 1) / 2) = 1, se 1 / sqrt(3)
    = 0.57735, t = 3 / 0.57735 = 5.196 > 4.303: significant. Detectable:
    4.303 x 0.57735 = 2.484. Unpaired: means 55 and 52, variances 7 and 4,
    se sqrt(7/3 + 4/3) = 1.915, 2 se = 3.83 > 3: "not beyond 2 SE".
    """
    records = (runs('base', [50.0, 52.0, 54.0]) +
               runs('up', [53.0, 54.0, 58.0]))
    _, up = summarize(records, ['base', 'up'], {})
    versus = up['vs_baseline']['mIoU']
    paired = versus['paired']
    assert paired['seeds'] == [0, 1, 2] and paired['n'] == 3
    assert paired['diff'] == pytest.approx(3.0)
    assert paired['sd'] == pytest.approx(1.0)
    assert paired['se'] == pytest.approx(0.57735, abs=1e-5)
    assert paired['df'] == 2
    assert paired['threshold'] == pytest.approx(4.303, abs=5e-4)
    assert paired['t'] == pytest.approx(5.196, abs=5e-4)
    assert paired['significant'] is True
    assert versus['verdict'] == 'better'
    assert versus['detectable'] == pytest.approx(2.484, abs=5e-4)
    assert versus['detectable_from'] == 'paired'
    # the unpaired numbers are still there, and disagree
    assert versus['diff'] == pytest.approx(3.0)
    assert versus['se'] == pytest.approx(math.sqrt(11 / 3))
    assert versus['beyond_2se'] is False

    text = markdown(dict(INFO, main_metric='mIoU'), summarize(
        records, ['base', 'up'], {}), records)
    row = md_row(text, '| upsampler | seeds', 'up')
    assert row['Δ vs base, unpaired (± SE)'] == '+3.000 ± 1.915'
    assert row['Δ paired (± SE)'] == '+3.000 ± 0.577'
    assert row['t (95 % threshold)'] == '+5.20 (4.30)'
    assert row['verdict'] == 'better'
    assert row['detectable Δ'] == '2.484'
    every = md_row(text, '| upsampler | mIoU', 'up')
    assert every['mIoU'] == '55.00 ± 2.65 (+3.000, better)'
    assert 'two standard errors' not in text and '2 SE' not in text


def test_paired_difference_pairs_only_the_common_seeds():
    """Seed 5 of the upsampler and seed 9 of the baseline have no partner:
    per seed 1 - 0 = 1 and 4 - 1 = 3; mean 2, sd sqrt(2)."""
    paired = paired_difference({0: 1.0, 1: 4.0, 5: 100.0},
                               {0: 0.0, 1: 1.0, 9: -100.0})
    assert paired['seeds'] == [0, 1]
    assert paired['diff'] == pytest.approx(2.0)
    assert paired['sd'] == pytest.approx(math.sqrt(2))
    assert paired['threshold'] == pytest.approx(12.706, abs=5e-4)
    assert paired['significant'] is False


def test_a_fifth_seed_lowers_the_threshold():
    """Per seed 1, 2, 3, 2, 2: mean 2, sd sqrt(2 / 4) = 0.7071, se 0.3162,
    t 6.32 against 2.776."""
    paired = paired_difference({s: float(s + d)
                                for s, d in enumerate([1, 2, 3, 2, 2])},
                               {s: float(s)
                                for s in range(5)})
    assert paired['df'] == 4
    assert paired['threshold'] == pytest.approx(2.776, abs=5e-4)
    assert paired['t'] == pytest.approx(2 / math.sqrt(0.5 / 5))
    assert paired['detectable'] == pytest.approx(2.776 * 0.31623, abs=1e-3)


def test_single_seed_is_no_test_and_borrows_the_baselines_spread():
    """One seed of the upsampler against three of the baseline (55, 58,
    52: sd 3): no paired test; detectable from the baseline's spread,
    4.3027 x 3 x sqrt(1 + 1/3) = 14.905."""
    records = runs('base', [55.0, 58.0, 52.0]) + runs('up', [60.0])
    summaries = summarize(records, ['base', 'up'], {})
    versus = summaries[1]['vs_baseline']['mIoU']
    assert versus['paired']['n'] == 1
    assert versus['paired']['diff'] == pytest.approx(5.0)
    assert versus['significant'] is None and versus['verdict'] is None
    assert versus['detectable'] == pytest.approx(14.905, abs=1e-3)
    assert versus['detectable_from'] == 'baseline spread'
    assert versus['spread'] == pytest.approx(3 * math.sqrt(2))
    text = markdown(dict(INFO, main_metric='mIoU'), summaries, records)
    row = md_row(text, '| upsampler | seeds', 'up')
    assert row['t (95 % threshold)'] == 'n/a'
    assert row['verdict'] == 'n/a'
    assert row['detectable Δ'] == '14.90 (baseline spread)'
    sweep = sweep_summary(summaries, 'mIoU')
    assert sweep['spread_from'] == 'baseline spread'
    # three baseline seeds: 4.3027 x 3 sqrt(2) / sqrt(3) = 10.539
    assert sweep['n'] == 3
    assert sweep['detectable'] == pytest.approx(10.539, abs=1e-3)
    assert 'fewer than two seeds pair up with the baseline' in text


def test_one_seed_everywhere_detects_nothing():
    records = runs('base', [55.0]) + runs('up', [60.0])
    summaries = summarize(records, ['base', 'up'], {})
    versus = summaries[1]['vs_baseline']['mIoU']
    assert versus['detectable'] is None
    assert versus['seeds_for_one_point'] is None
    assert sweep_summary(summaries, 'mIoU')['detectable'] is None
    text = markdown(dict(INFO, main_metric='mIoU'), summaries, records)
    assert md_row(text, '| upsampler | seeds', 'up')['detectable Δ'] == 'n/a'
    assert '**What this sweep can detect** on `mIoU`: n/a' in text


@pytest.mark.parametrize('sd, difference, expected', [
    (1.0, 1.0, 7),  # t(5)/sqrt(6) = 1.050 > 1; t(6)/sqrt(7) = 0.925
    (4.0, 1.0, 64),  # 4 t(62)/sqrt(63) = 1.0074; 4 t(63)/sqrt(64) = 0.9992
    (0.0, 1.0, 2),
    (0.01, 0.01, 7),  # COCO: a spread of 0.01 mAP against 1 point
])
def test_seeds_needed(sd, difference, expected):
    n = seeds_needed(sd, difference)
    assert n == expected
    assert t_threshold(n - 1) * sd / math.sqrt(n) <= difference
    if n > 2:
        assert t_threshold(n - 2) * sd / math.sqrt(n - 1) > difference


@pytest.mark.parametrize('sd, difference, name', [(-1.0, 1.0, 'sd'),
                                                  (math.nan, 1.0, 'sd'),
                                                  (1.0, 0.0, 'difference')])
def test_seeds_needed_refuses_bad_values(sd, difference, name):
    with pytest.raises(ValueError, match=f'^{name} must be'):
        seeds_needed(sd, difference)


def test_one_point_is_in_the_metrics_own_units():
    """The same spread needs far more seeds in mIoU (percent) than in COCO
    mAP (a fraction) where it is a hundred times larger."""
    assert point('mIoU') == 1.0 and point('coco_panoptic/PQ') == 1.0
    assert point('coco/bbox_mAP') == 0.01 and point('coco/segm_mAP') == 0.01
    assert point('rmse') == 0.01 and point('d1') == 0.01
    base = {0: 0.60, 1: 0.62, 2: 0.61}
    up = {0: 0.61, 1: 0.64, 2: 0.63}  # per seed 0.01, 0.02, 0.02
    mask = compare('coco/segm_mAP', up, base)
    # sd 0.005774 against 0.01: t(2) 4.303 x 0.5774 / sqrt(3) = 1.43 > 1,
    # t(3) 3.182 x 0.5774 / 2 = 0.92 <= 1
    assert mask['seeds_for_one_point'] == 4
    as_percent = compare('mIoU', {s: 100 * v for s, v in up.items()},
                         {s: 100 * v for s, v in base.items()})
    assert as_percent['seeds_for_one_point'] == 4
    assert compare('mIoU', up, base)['seeds_for_one_point'] == 2


@pytest.mark.parametrize('key', [
    'rmse', 'abs_rel', 'sq_rel', 'log10', 'rmse_log', 'silog', 'depth/rmse',
    'latency_ms'
])
def test_lower_is_better_keys(key):
    assert lower_is_better(key)


@pytest.mark.parametrize(
    'key', ['mIoU', 'coco/bbox_mAP', 'coco_panoptic/PQ', 'd1', 'bIoU'])
def test_higher_is_better_keys(key):
    assert not lower_is_better(key)


def test_lower_is_better_turns_the_verdict():
    """rmse 0.50, 0.52, 0.54 for the baseline, 0.40, 0.43, 0.44 for the
    upsampler: per seed -0.10, -0.09, -0.10, t = -0.0967 / 0.00333 = -29:
    lower, so better. The same numbers as mIoU are worse."""
    records = (runs('base', [0.50, 0.52, 0.54], key='rmse') +
               runs('up', [0.40, 0.43, 0.44], key='rmse'))
    summaries = summarize(records, ['base', 'up'], {})
    versus = summaries[1]['vs_baseline']['rmse']
    assert versus['lower_is_better'] is True
    assert versus['paired']['diff'] == pytest.approx(-0.09667, abs=1e-5)
    assert versus['verdict'] == 'better'
    assert verdict('mIoU', True, versus['paired']['diff']) == 'worse'
    text = markdown(dict(INFO, main_metric='rmse'), summaries, records)
    row = md_row(text, '| upsampler | seeds', 'up')
    assert row['verdict'] == 'better'
    assert 'rmse (lower is better) (mean ± std)' in row
    every = md_row(text, '| upsampler | rmse (lower is better)', 'up')
    assert every['rmse (lower is better)'].endswith(', better)')
    stats = sweep_summary(summaries, 'rmse')
    assert stats['lower_is_better'] is True and stats['point'] == 0.01


# keys each task's evaluator reports (mmdet 3.3 / mmseg 1.2)
_BOX = ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75']
_MASK = ['coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75']
_PQ = ['coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco_panoptic/RQ',
       'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st']
_DEPTH = ['d1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log',
          'log10', 'silog']


@pytest.mark.parametrize('task, keys, expected', [
    ('Faster R-CNN', _BOX, 'coco/bbox_mAP'),
    ('Mask R-CNN', _BOX + _MASK, 'coco/segm_mAP'),
    ('Panoptic FPN', _PQ, 'coco_panoptic/PQ'),
    ('SegFormer', ['aAcc', 'mIoU', 'mAcc', 'bIoU'], 'mIoU'),
    ('depth', _DEPTH, 'rmse'),
])
def test_the_main_metric_is_the_tasks_own(task, keys, expected):
    assert choose_main_metric(keys) == expected
    assert choose_main_metric(keys[::-1]) == expected  # not by order
    # --metric still overrides
    assert choose_main_metric(keys, keys[1]) == keys[1]


def test_the_published_fine_scenes_by_hand():
    """docs/comparison's kept records of the fine-scenes sweep: issue 31's
    A2U +5.27 mIoU with a paired SE of 2.23 (t = 2.37), deconv +4.64 /
    2.16, LDA-AQU +3.27 / 1.95; none beyond t(2) = 4.30."""
    root = osp.join(REPO, 'docs', 'comparison', 'segformer_synthetic-fine')
    records = []
    for path in sorted(glob.glob(osp.join(root, '*', 'seed_*',
                                          'metrics.json'))):
        with open(path) as f:
            records.append(json.load(f))
    names = ['bilinear', 'A2U', 'deconv', 'LDA-AQU']
    assert len(records) == 45
    summaries = {
        s['upsampler']: s['vs_baseline']['mIoU']
        for s in summarize(records, names, {})
    }
    for name, diff, se in [('A2U', 5.273, 2.228), ('deconv', 4.637, 2.160),
                           ('LDA-AQU', 3.273, 1.953)]:
        paired = summaries[name]['paired']
        assert paired['diff'] == pytest.approx(diff, abs=5e-4), name
        assert paired['se'] == pytest.approx(se, abs=5e-4), name
        assert paired['significant'] is False, name
        assert summaries[name]['beyond_2se'] is True, name  # the old claim


def test_the_sweeps_spread_is_pooled_over_the_upsamplers():
    """Per-seed differences 1, 2, 3 (sd 1), 0, 2, 4 (sd 2) and, on two
    seeds, 5, 7 (sd sqrt 2): pooled variance (2 x 1 + 2 x 4 + 1 x 2) / 5 =
    2.4, spread 1.5492 at the usual three seeds: detectable 4.3027 x
    1.5492 / sqrt(3) = 3.848; 1 point needs 12 seeds (t(10) 2.228 x 1.5492
    / sqrt(11) = 1.041 > 1, t(11) 2.201 x 1.5492 / sqrt(12) = 0.984)."""
    records = (runs('base', [0.0, 0.0, 0.0]) + runs('a', [1.0, 2.0, 3.0]) +
               runs('b', [0.0, 2.0, 4.0]) + runs('c', [5.0, 7.0]))
    stats = sweep_summary(summarize(records, ['base', 'a', 'b', 'c'], {}),
                          'mIoU')
    assert stats['spread_from'] == 'paired' and stats['upsamplers'] == 3
    assert stats['spread'] == pytest.approx(math.sqrt(2.4))
    assert stats['n'] == 3
    assert stats['detectable'] == pytest.approx(3.848, abs=1e-3)
    assert stats['seeds_for_one_point'] == 12
