# Copyright (c) mmdysample contributors. All rights reserved.
import logging
import math

import pytest
import torch

pytest.importorskip('mmseg')

from mmengine.logging import MMLogger  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from mmdysample.models.depth import SigLoss  # noqa: E402

EPS = 1e-3


class Records(logging.Handler):
    """The messages mmengine's current logger emits (it does not
    propagate to the root logger, so pytest's caplog misses them)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture
def records():
    logger = MMLogger.get_current_instance()
    handler = Records()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def by_hand(pairs, focus=0.85):
    """The toolbox's formula in plain Python on ``(pred, gt)`` pairs."""
    g = [math.log(p + EPS) - math.log(t + EPS) for p, t in pairs]
    n = len(g)
    mean = sum(g) / n
    var = sum((v - mean)**2 for v in g) / (n - 1)
    return math.sqrt(var + (1 - focus) * mean**2)


def depth(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype).view(1, 1, 1, -1)


def test_hand_computed_numbers():
    pred, gt = [1.0, 4.0, 2.5, 0.7], [1.5, 2.0, 3.0, 0.5]
    loss = SigLoss()(depth(pred), depth(gt))
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(
        by_hand(list(zip(pred, gt))), rel=1e-12)
    # a constant ratio: var(g) = 0, only the mean term (0.15 mean^2)
    gt = [1.0, 2.0, 4.0]
    value = SigLoss()(depth([2 * t for t in gt]), depth(gt)).item()
    assert value == pytest.approx(by_hand([(2 * t, t) for t in gt]),
                                  rel=1e-12)
    assert value == pytest.approx(math.sqrt(0.15) * math.log(2), rel=1e-3)


def test_weight_focus_and_name():
    pred, gt = [1.0, 4.0, 2.5], [1.5, 2.0, 3.0]
    expected = by_hand(list(zip(pred, gt)), focus=0.5)
    loss = SigLoss(loss_weight=3.0, variance_focus=0.5, loss_name='loss_x')
    assert loss(depth(pred), depth(gt)).item() == pytest.approx(
        3 * expected, rel=1e-12)
    assert loss.loss_name == 'loss_x'
    assert SigLoss().loss_name == 'loss_depth'
    built = MODELS.build(dict(type='SigLoss', max_depth=10))
    assert isinstance(built, SigLoss) and built.max_depth == 10
    assert 'max_depth=10' in repr(built)


def test_valid_mask_and_max_depth():
    pred = [1.0, 4.0, 2.5, 0.7, 3.0, 5.0]
    gt = [1.5, 2.0, 0.0, 0.5, 12.0, -1.0]
    assert SigLoss()(depth(pred), depth(gt)).item() == pytest.approx(
        by_hand([(1.0, 1.5), (4.0, 2.0), (0.7, 0.5), (3.0, 12.0)]),
        rel=1e-12)
    assert SigLoss(max_depth=10)(depth(pred), depth(gt)).item() == \
        pytest.approx(by_hand([(1.0, 1.5), (4.0, 2.0), (0.7, 0.5)]),
                      rel=1e-12)
    # valid_mask=False reads every pixel, the ground truth clamped at 0
    everything = [(p, max(t, 0.)) for p, t in zip(pred, gt)]
    assert SigLoss(valid_mask=False)(depth(pred), depth(gt)).item() == \
        pytest.approx(by_hand(everything), rel=1e-12)


def test_the_batch_is_one_pool():
    """The toolbox pools the valid pixels of all images (not a mean of
    per-image losses, as mmseg's SiLogLoss)."""
    pred = torch.tensor([[1.0, 4.0], [2.5, 0.7]], dtype=torch.float64)
    gt = torch.tensor([[1.5, 2.0], [3.0, 0.5]], dtype=torch.float64)
    batch = SigLoss()(pred.view(2, 1, 1, 2), gt.view(2, 1, 1, 2))
    pooled = by_hand(list(zip(pred.flatten().tolist(),
                              gt.flatten().tolist())))
    per_image = sum(by_hand(list(zip(p, t)))
                    for p, t in zip(pred.tolist(), gt.tolist())) / 2
    assert batch.item() == pytest.approx(pooled, rel=1e-12)
    assert abs(pooled - per_image) > 1e-3


def test_no_valid_pixel_is_a_zero_with_a_graph_and_is_logged(records):
    loss = SigLoss(max_depth=10)
    pred = torch.rand(2, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    gt = torch.zeros(2, 1, 4, 5, dtype=torch.float64)
    gt[1] = 11.  # beyond max_depth
    value = loss(pred, gt)
    assert torch.isfinite(value) and value.item() == 0
    value.backward()
    assert pred.grad is not None and torch.equal(pred.grad,
                                                 torch.zeros_like(pred))
    warnings = [m for level, m in records.messages
                if level == logging.WARNING and 'SigLoss' in m]
    assert warnings == [
        'SigLoss: 2 of 2 image(s) have no valid depth pixel (0 < gt <= '
        'max_depth=10); they add nothing to the loss'
    ]
    assert loss.num_skipped_images == 2


def test_an_image_without_valid_pixel_adds_nothing(records):
    loss = SigLoss()
    pred = torch.rand(2, 1, 3, 3, dtype=torch.float64) + 0.5
    gt = torch.rand(2, 1, 3, 3, dtype=torch.float64) + 0.5
    gt[0] = 0.
    pred.requires_grad_(True)
    value = loss(pred, gt)
    assert value.item() == pytest.approx(
        SigLoss()(pred[1:], gt[1:]).item(), rel=1e-12)
    value.backward()
    assert torch.equal(pred.grad[0], torch.zeros_like(pred.grad[0]))
    assert torch.isfinite(pred.grad).all() and pred.grad[1].abs().sum() > 0
    assert [m for _, m in records.messages if 'SigLoss' in m] == [
        'SigLoss: 1 of 2 image(s) have no valid depth pixel (0 < gt); they '
        'add nothing to the loss'
    ]
    # a clean batch logs nothing and the counter keeps its total
    loss(pred.detach()[1:], gt[1:])
    assert len([m for _, m in records.messages if 'SigLoss' in m]) == 1
    assert loss.num_skipped_images == 1


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_non_positive_predictions_stay_finite(dtype):
    pred = torch.tensor([-2.0, 0.0, -1e-3, 1.5], dtype=dtype).view(
        1, 1, 2, 2).requires_grad_(True)
    gt = torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=dtype).view(1, 1, 2, 2)
    value = SigLoss()(pred, gt)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(pred.grad).all()
    # the clamp at 0: the non-positive predictions read as 0
    clamped = [(0., 1.), (0., 2.), (0., 3.), (1.5, 1.)]
    assert value.item() == pytest.approx(by_hand(clamped), rel=1e-5)
    assert torch.equal(pred.grad.flatten()[[0, 2]],
                       torch.zeros(2, dtype=dtype))


def test_one_valid_pixel_has_zero_variance():
    pred = depth([2.0, 5.0])
    gt = depth([1.0, 0.0])
    g = math.log(2 + EPS) - math.log(1 + EPS)
    assert SigLoss()(pred, gt).item() == pytest.approx(
        math.sqrt(0.15) * g, rel=1e-12)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_a_perfect_prediction_has_a_finite_gradient(dtype):
    gt = torch.tensor([1.0, 2.0, 4.0], dtype=dtype).view(1, 1, 1, 3)
    pred = gt.clone().requires_grad_(True)
    value = SigLoss()(pred, gt)
    value.backward()
    assert value.item() < 1e-15
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize('kwargs,match', [
    (dict(eps=0), 'eps'),
    (dict(variance_focus=1.5), 'variance_focus'),
    (dict(max_depth=0), 'max_depth'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SigLoss(**kwargs)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r'\(1, 1, 2, 2\) and \(1, 1, 4, 4\)'):
        SigLoss()(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 4, 4))
