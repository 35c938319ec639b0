# Copyright (c) mmdysample contributors. All rights reserved.
"""RTMDet + DySample through mmdeploy (tools/deployment/mmdeploy_detector.py).

As tests/tools/test_mmdeploy_detector.py, for the one-stage real-time
detector, whose head mmdysample.deployment.mmdeploy_rewrites rewrites for
ONNX Runtime (boxes clipped to the image, as mmdet does). Skips where
mmdeploy is not installed.

The slim RTMDet of configs/rtmdet trains from scratch: after a few
iterations at its warm-up learning rate every score is its prior, 0.01,
and the boxes are points. So it trains here 60 iterations at the full
rate on the tiny data at its own 96 pixels (the config resizes to 192),
four images a batch (under 20 s): enough for scores up to about 0.5 to 0.9
on the two validation images.
The sampler is mmengine's InfiniteSampler: with the default one each
epoch of four images ends in mmengine's 2-second pause. This model's boxes
above the threshold stay inside the image, so the clipping itself is
checked by tests/deployment/test_mmdeploy.py, on head outputs made to
reach past the border.
"""
import json
import os.path as osp
import sys

import pytest
from train_helpers import REPO, run, tiny_options, train

mmdeploy = pytest.importorskip('mmdeploy')

pytestmark = pytest.mark.slow

TOOL = osp.join(REPO, 'tools', 'deployment', 'mmdeploy_detector.py')
RTMDET = osp.join(REPO, 'configs', 'rtmdet',
                  'rtmdet_tiny_pafpn-dysample-lpg4_synthetic.py')
ITERS = 60
#: Scores the tiny model reaches on both images, well above the 100th
#: detection of an image (about 0.012), where near-equal scores could
#: trade places.
SCORE_THR = 0.05


@pytest.fixture(scope='module')
def rtmdet_checkpoint(data_root, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('rtmdet')
    train(
        RTMDET, work_dir,
        tiny_options(
            data_root, ITERS, **{
                'param_scheduler.0.start_factor': 1.0,
                'train_dataloader.batch_size': 4,
                'train_dataloader.sampler.type': 'InfiniteSampler',
                'train_dataloader.dataset.pipeline.2.scale': '(96,96)',
                'default_hooks.checkpoint.interval': ITERS,
            }))
    return work_dir / f'iter_{ITERS}.pth'


@pytest.fixture(scope='module')
def exported(rtmdet_checkpoint, data_root, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('mmdeploy_rtmdet')
    log = run([
        sys.executable, TOOL, RTMDET,
        str(rtmdet_checkpoint), '--work-dir',
        str(work_dir), '--images', '2', '--score-thr',
        str(SCORE_THR), *tiny_options(data_root, 1)
    ])
    return work_dir, log


def test_standard_ops_only_and_same_detections(exported):
    work_dir, log = exported
    report = json.loads((work_dir / 'report.json').read_text())
    ops = report['ops']
    # One GridSample per DySample step of the PAFPN, one NMS, and nothing
    # that needs mmdeploy's ops library.
    assert ops.get('GridSample', 0) == 2, ops
    assert ops.get('NonMaxSuppression', 0) == 1, ops
    assert not [op for op in ops if '::' in op], ops
    summary = report['summary']
    assert summary['images'] == 2
    # The model reaches the threshold on both images, several times.
    assert all(r['compared'] >= 3 for r in report['images']), report
    assert summary['same'], report['images']
    assert summary['paired'] == summary['compared']
    assert summary['max_box_diff'] <= 1e-3
    assert '2 images:' in log


def test_plain_onnxruntime_session_runs_the_graph(exported):
    import numpy as np
    import onnxruntime as ort
    work_dir, _ = exported
    session = ort.InferenceSession(
        str(work_dir / 'end2end.onnx'), providers=['CPUExecutionProvider'])
    # Another size than the export's; the boxes stay inside the input.
    height, width = 64, 96
    image = np.random.default_rng(0).standard_normal(
        (1, 3, height, width)).astype(np.float32)
    dets, labels = session.run(None, {'input': image})[:2]
    assert dets.shape[0] == 1 and dets.shape[2] == 5
    assert labels.shape == dets.shape[:2]
    boxes = dets[0, :, :4]
    assert len(boxes)
    assert boxes.min() >= 0
    assert (boxes[:, 0::2] <= width).all() and (boxes[:, 1::2] <= height).all()
