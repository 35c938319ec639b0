# Copyright (c) mmdysample contributors. All rights reserved.
"""The whole detector through mmdeploy (tools/deployment/mmdeploy_detector.py).

mmdeploy is optional and its last release (1.3.1) works with torch 2.1
only, so this file skips where it is not installed (the torch 2.1 stack of
docs/get_started.md has it). The detector is the shared four-iteration
Faster R-CNN + DySample of the tools tests on the tiny built-in data: its
scores are low, so detections are compared from 0.05 (every one the model
keeps) rather than 0.3.
"""
import json
import os.path as osp
import sys

import pytest
from train_helpers import FASTER_RCNN, REPO, run, run_status, tiny_options

mmdeploy = pytest.importorskip('mmdeploy')

pytestmark = pytest.mark.slow

TOOL = osp.join(REPO, 'tools', 'deployment', 'mmdeploy_detector.py')
DEPLOY_CFG = osp.join(REPO, 'configs', '_deploy_',
                      'detection_onnxruntime_dynamic-gridsample.py')


def tool_args(data_root, checkpoint, work_dir, *extra):
    # The tool takes the model config's settings only (no training ones).
    options = tiny_options(data_root, 1)
    return [
        sys.executable, TOOL, FASTER_RCNN, str(checkpoint), '--work-dir',
        str(work_dir), '--images', '2', '--score-thr', '0.05', *extra,
        *options
    ]


@pytest.fixture(scope='module')
def exported(uninterrupted, data_root, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('mmdeploy')
    log = run(tool_args(data_root, uninterrupted / 'iter_4.pth', work_dir))
    return work_dir, log


def test_standard_ops_only_and_same_detections(exported):
    work_dir, log = exported
    report = json.loads((work_dir / 'report.json').read_text())
    ops = report['ops']
    # DySample's sampling is ONNX's GridSample, not mmdeploy::grid_sampler,
    # and nothing needs mmdeploy's ops library.
    assert ops.get('GridSample', 0) >= 1, ops
    assert not [op for op in ops if '::' in op], ops
    summary = report['summary']
    assert summary['images'] == 2
    assert summary['compared'] > 0, log[-2000:]
    assert summary['same'], report['images']
    assert summary['max_box_diff'] <= 1.0
    assert '2 images:' in log


def test_plain_onnxruntime_session_runs_the_graph(exported):
    import numpy as np
    import onnxruntime as ort
    work_dir, _ = exported
    session = ort.InferenceSession(
        str(work_dir / 'end2end.onnx'), providers=['CPUExecutionProvider'])
    assert [o.name for o in session.get_outputs()][:2] == ['dets', 'labels']
    # Another size than the export's: height and width are dynamic.
    dets, labels = session.run(
        None, {'input': np.zeros((1, 3, 64, 96), np.float32)})[:2]
    assert dets.shape[0] == 1 and dets.shape[2] == 5
    assert labels.shape == dets.shape[:2]


def test_opset_below_16_is_refused(uninterrupted, data_root, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(DEPLOY_CFG)
    cfg.onnx_config.opset_version = 11
    low = tmp_path / 'opset11.py'
    cfg.dump(str(low))
    code, log = run_status(
        tool_args(data_root, uninterrupted / 'iter_4.pth', tmp_path,
                  '--deploy-cfg', str(low)))
    assert code != 0
    assert 'opset_version must be >= 16' in log and 'got 11' in log, \
        log[-3000:]


def test_checkpoint_that_does_not_fit_is_refused(data_root, tmp_path):
    import torch
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'backbone.nothing': torch.zeros(1)}}, bad)
    code, log = run_status(tool_args(data_root, bad, tmp_path / 'out'))
    assert code == 1
    assert 'does not fit the model' in log, log[-3000:]
    assert not (tmp_path / 'out' / 'end2end.onnx').exists()
