# Copyright (c) mmdysample contributors. All rights reserved.
"""match_detections: the same detections above a score, boxes within
tolerance, borderline scores forgiven and nothing else."""
import numpy as np
import pytest

from mmdysample.deployment import match_detections


def _dets(rows):
    """rows of (x1, y1, x2, y2, score, label) -> (boxes, scores, labels)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return rows[:, :4], rows[:, 4], rows[:, 5].astype(int)


REF = _dets([[10, 10, 50, 50, 0.9, 0], [60, 60, 90, 100, 0.8, 1],
             [5, 5, 20, 20, 0.1, 2]])


def test_identical_outputs_are_the_same():
    result = match_detections(REF, REF)
    assert result['same']
    assert result['compared'] == 2  # the 0.1 one is below 0.3
    assert result['paired'] == 2
    assert result['max_box_diff'] == 0.0
    assert result['unpaired_reference'] == []
    assert result['unpaired_candidate'] == []


def test_order_does_not_matter_and_small_shifts_pass():
    cand = _dets([[60.4, 59.6, 90.9, 100, 0.79, 1],
                  [10.2, 10, 50, 49.5, 0.91, 0]])
    result = match_detections(REF, cand)
    assert result['same']
    assert result['paired'] == 2
    assert result['max_box_diff'] == pytest.approx(0.9)
    assert result['max_score_diff'] == pytest.approx(0.01)


def test_a_box_off_by_more_than_the_tolerance_is_a_mismatch():
    cand = _dets([[10, 10, 51.5, 50, 0.9, 0], [60, 60, 90, 100, 0.8, 1]])
    result = match_detections(REF, cand)
    assert not result['same']
    assert result['unpaired_reference'] == [0]
    assert result['unpaired_candidate'] == [0]
    # A looser tolerance accepts it.
    assert match_detections(REF, cand, box_tol=2.0)['same']


def test_another_label_does_not_pair():
    cand = _dets([[10, 10, 50, 50, 0.9, 3], [60, 60, 90, 100, 0.8, 1]])
    result = match_detections(REF, cand)
    assert not result['same']
    assert result['unpaired_reference'] == [0]


def test_a_missing_or_extra_detection_is_a_mismatch():
    missing = _dets([[10, 10, 50, 50, 0.9, 0]])
    assert match_detections(REF, missing)['unpaired_reference'] == [1]
    extra = _dets([[10, 10, 50, 50, 0.9, 0], [60, 60, 90, 100, 0.8, 1],
                   [0, 0, 8, 8, 0.5, 2]])
    result = match_detections(REF, extra)
    assert not result['same']
    assert result['unpaired_candidate'] == [2]


def test_a_detection_at_the_threshold_may_cross_it():
    ref = _dets([[10, 10, 50, 50, 0.9, 0], [0, 0, 8, 8, 0.3004, 2]])
    cand = _dets([[10, 10, 50, 50, 0.9, 0], [0, 0, 8, 8, 0.2997, 2]])
    result = match_detections(ref, cand)
    assert result['same']
    assert result['compared'] == result['paired'] == 2
    # The other way round the pair is still made, but the reference one is
    # below the threshold: not compared, so not counted as paired.
    result = match_detections(cand, ref)
    assert result['same']
    assert result['compared'] == result['paired'] == 1
    assert result['max_score_diff'] == pytest.approx(7e-4)
    # ... but one clear of it may not drop below.
    clear = _dets([[10, 10, 50, 50, 0.9, 0], [0, 0, 8, 8, 0.32, 2]])
    far = _dets([[10, 10, 50, 50, 0.9, 0], [0, 0, 8, 8, 0.25, 2]])
    result = match_detections(clear, far)
    assert not result['same']
    assert result['unpaired_reference'] == [1]


def test_empty_outputs_are_the_same():
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))
    result = match_detections(empty, empty)
    assert result['same'] and result['compared'] == 0
    assert result['max_box_diff'] == 0.0


@pytest.mark.parametrize('name', ['score_thr', 'box_tol', 'score_tol'])
@pytest.mark.parametrize('value', [-1, 'x', True])
def test_bad_tolerances_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        match_detections(REF, REF, **{name: value})


def test_ragged_inputs_are_named():
    boxes, scores, labels = REF
    with pytest.raises(ValueError, match='candidate.*3, 2 and 3'):
        match_detections(REF, (boxes, scores[:2], labels))


def test_clip_boxes_to_an_image():
    from mmdysample.deployment.detections import clip_boxes
    boxes = [[-3.5, 2, 50, 61.2], [10, -1, 97, 40], [0, 0, 96, 64]]
    clipped = clip_boxes(boxes, (64, 96, 3))  # (H, W, C): x to 96, y to 64
    np.testing.assert_array_equal(
        clipped, [[0, 2, 50, 61.2], [10, 0, 96, 40], [0, 0, 96, 64]])
    assert clip_boxes(np.zeros((0, 4)), (8, 8)).shape == (0, 4)
