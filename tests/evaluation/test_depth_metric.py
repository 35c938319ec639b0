# Copyright (c) mmdysample contributors. All rights reserved.
"""CheckedDepthMetric: Table 9's metrics on hand-made predictions, and the
inputs mmseg 1.2.2's DepthMetric turns into NaN or wrong numbers."""
import math

import pytest
import torch
from mmengine.logging import MMLogger
from mmseg.evaluation.metrics import DepthMetric

from mmdysample.evaluation import CheckedDepthMetric


def logged(tmp_path, name):
    """A current MMLogger writing to a file, and a reader of that file."""
    log_file = tmp_path / f'{name}.log'
    logger = MMLogger.get_instance(name, log_file=str(log_file))

    def read():
        for handler in logger.handlers:
            handler.flush()
        return log_file.read_text()

    return read


def sample(gt, pred, name='img.jpg'):
    return dict(
        gt_depth_map=dict(data=torch.tensor([gt], dtype=torch.float32)),
        pred_depth_map=dict(data=torch.tensor([pred], dtype=torch.float32)),
        img_path=name)


def evaluate(metric, *samples):
    metric.process({}, list(samples))
    return metric.compute_metrics(metric.results)


def by_hand(gt, pred):
    """Every metric of one image, written out with math on floats."""
    n = len(gt)
    ratio = [max(g / p, p / g) for g, p in zip(gt, pred)]
    dlog = [math.log(p) - math.log(g) for g, p in zip(gt, pred)]
    return dict(
        d1=sum(r < 1.25 for r in ratio) / n,
        d2=sum(r < 1.25**2 for r in ratio) / n,
        d3=sum(r < 1.25**3 for r in ratio) / n,
        abs_rel=sum(abs(g - p) / g for g, p in zip(gt, pred)) / n,
        sq_rel=sum((g - p)**2 / g for g, p in zip(gt, pred)) / n,
        rmse=math.sqrt(sum((g - p)**2 for g, p in zip(gt, pred)) / n),
        rmse_log=math.sqrt(sum(d * d for d in dlog) / n),
        log10=sum(
            abs(math.log10(p) - math.log10(g)) for g, p in zip(gt, pred)) /
        n,
        silog=math.sqrt(
            sum(d * d for d in dlog) / n - 0.5 * (sum(dlog) / n)**2))


GT = [[1.0, 2.0, 4.0], [8.0, 0.0, 0.5]]
PRED = [[1.1, 1.5, 5.0], [4.0, 3.0, 0.6]]


def test_every_metric_against_numbers_by_hand():
    got = evaluate(CheckedDepthMetric(prefix='depth'), sample(GT, PRED))
    # the 0 of the ground truth is not evaluated
    expected = by_hand([1.0, 2.0, 4.0, 8.0, 0.5], [1.1, 1.5, 5.0, 4.0, 0.6])
    assert list(got) == list(CheckedDepthMetric.METRICS)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key
    # d1: 1.1 / 1.0, 0.6 / 0.5 and 5 / 4 = 1.25 (not below) -> 2 of 5
    assert got['d1'] == pytest.approx(0.4)


def test_same_numbers_as_mmseg_on_valid_input():
    other = sample([[3.0, 0.0, 1.0]], [[2.5, 7.0, 1.3]], 'b.jpg')
    ours = evaluate(CheckedDepthMetric(prefix='depth'), sample(GT, PRED),
                    other)
    theirs = DepthMetric(prefix='depth')
    theirs.process({}, [sample(GT, PRED), other])
    reference = theirs.compute_metrics(theirs.results)
    for key in CheckedDepthMetric.METRICS:
        assert ours[key] == pytest.approx(reference[key], rel=1e-6), key


def test_metrics_are_averaged_over_images():
    one = evaluate(CheckedDepthMetric(prefix='depth'), sample(GT, PRED))
    two = evaluate(
        CheckedDepthMetric(prefix='depth'), sample(GT, PRED),
        sample([[2.0, 2.0]], [[2.0, 2.0]], 'exact.jpg'))
    assert two['rmse'] == pytest.approx(one['rmse'] / 2)
    assert two['d1'] == pytest.approx((one['d1'] + 1) / 2)


def test_depth_metrics_selects_names_in_the_order_given():
    # mmseg 1.2.2 raises TypeError for any list here
    got = evaluate(
        CheckedDepthMetric(depth_metrics=['rmse', 'd1'], prefix='depth'),
        sample(GT, PRED))
    assert list(got) == ['rmse', 'd1']
    assert list(
        evaluate(
            CheckedDepthMetric(depth_metrics='abs_rel', prefix='depth'),
            sample(GT, PRED))) == ['abs_rel']


@pytest.mark.parametrize('kwargs, match', [
    (dict(depth_metrics=['rmse', 'miou']), r"unknown metrics \['miou'\]"),
    (dict(depth_metrics=[]), 'depth_metrics must be'),
    (dict(crop_type='eigen'), "crop_type must be None or 'nyu_crop'"),
    (dict(min_depth_eval=-1), 'min_depth_eval must be a number >= 0'),
    (dict(min_depth_eval=5, max_depth_eval=1), r'min_depth_eval \(5\)'),
    (dict(min_pred_depth=0), 'min_pred_depth must be'),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CheckedDepthMetric(**kwargs)


def test_non_positive_predictions_never_reach_the_logarithm(tmp_path):
    log = logged(tmp_path, 'test_depth_metric_low')
    metric = CheckedDepthMetric(prefix='depth')
    got = evaluate(metric, sample([[1.0, 2.0]], [[0.0, -3.0]]))
    assert all(math.isfinite(v) for v in got.values()), got
    # both raised to 1e-3: |log10(1e-3) - log10(g)| averaged
    assert got['log10'] == pytest.approx(
        (3 + (3 + math.log10(2))) / 2, rel=1e-5)
    assert metric.results[0][3] == 2
    assert '2 predicted pixels were below' in log()
    # mmseg's own metric gives a NaN / inf for the same input
    theirs = DepthMetric(prefix='depth')
    theirs.process({}, [sample([[1.0, 2.0]], [[0.0, -3.0]])])
    assert not all(
        math.isfinite(v)
        for v in theirs.compute_metrics(theirs.results).values())


def test_an_image_without_valid_pixels_is_left_out_and_named(tmp_path):
    log = logged(tmp_path, 'test_depth_metric_empty')
    metric = CheckedDepthMetric(max_depth_eval=10.0, prefix='depth')
    got = evaluate(metric, sample(GT, PRED),
                   sample([[0.0, 12.0]], [[1.0, 1.0]], 'empty.jpg'))
    alone = evaluate(
        CheckedDepthMetric(max_depth_eval=10.0, prefix='depth'),
        sample(GT, PRED))
    assert got == pytest.approx(alone)
    assert "1 of 2 images have no ground truth" in log()
    assert "empty.jpg" in log()
    assert len(metric.results) == 2  # one entry per sample, for collection


def test_no_image_with_valid_pixels_is_an_error():
    metric = CheckedDepthMetric(min_depth_eval=1e-3, prefix='depth')
    with pytest.raises(ValueError, match=r'none of the 1 images'):
        evaluate(metric, sample([[0.0, 0.0]], [[1.0, 1.0]]))


def test_nyu_crop_needs_480x640_ground_truth():
    metric = CheckedDepthMetric(crop_type='nyu_crop', prefix='depth')
    with pytest.raises(ValueError, match=r'480 x 640 ground truth, got '
                       r'\(2, 3\)'):
        metric.process({}, [sample(GT, PRED)])
    # the Eigen crop keeps rows 45..470 and columns 41..600
    gt = torch.full((1, 480, 640), 2.0)
    pred = torch.full((1, 480, 640), 2.0)
    pred[:, :45] = 100.0  # outside the crop: not evaluated
    metric.process({}, [
        dict(gt_depth_map=dict(data=gt), pred_depth_map=dict(data=pred))
    ])
    assert metric.compute_metrics(metric.results)['rmse'] == 0.0
    assert metric.results[0][0].numel() == (471 - 45) * (601 - 41)


def test_prediction_of_another_size_names_the_image():
    metric = CheckedDepthMetric(prefix='depth')
    with pytest.raises(ValueError, match=r'pred_depth_map of room_7.jpg '
                       r'has size \(1, 2\)'):
        metric.process({}, [sample([[1.0], [2.0]], [[1.0, 2.0]],
                                   'room_7.jpg')])
