# Copyright (c) mmdysample contributors. All rights reserved.
"""tools/analysis_tools/visualize_offsets.py, run as a subprocess.

On a bare layer, and on the synthetic Faster R-CNN config with and without a
checkpoint, drawing on an image of a tiny synthetic dataset.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import pytest
import torch
from mmengine.config import Config

from mmdysample.datasets import generate_synthetic_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/analysis_tools/visualize_offsets.py'
FASTER_RCNN = osp.join(
    REPO, 'configs/faster_rcnn/faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py')
#: The figure of :func:`mmdysample.visualization.visualize_offsets`.
FIGURE_SHAPE = (1100, 1650, 3)

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_dataset(
        root, num_train=4, num_val=2, img_size=96, tasks=('coco', ))
    images = sorted(glob.glob(osp.join(root, 'coco', 'val2017', '*.jpg')))
    assert images
    return images[0]


def run(*args, expect_ok=True):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, TOOL, *map(str, args)],
                          cwd=REPO,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          text=True,
                          timeout=300)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def check_png(path):
    assert osp.getsize(path) > 0
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f'{path} is not a readable image'
    assert img.shape == FIGURE_SHAPE
    assert img.std() > 10  # something was drawn


def offset_rms(stdout):
    match = re.search(r'learned offsets: rms ([0-9.]+)', stdout)
    assert match, stdout
    return float(match.group(1))


def test_bare_layer(image, tmp_path):
    out = tmp_path / 'layer.png'
    proc = run(image, '--layer', 'DySample-S+', '--channels', 32, '--out',
               out, '--group', 3, '--points', 5, '--point-mode', 'grid',
               '--feature', 'mean')
    check_png(out)
    assert 'RANDOM weights (offsets scaled to rms 0.30 px)' in proc.stdout
    assert 0.05 < offset_rms(proc.stdout) < 1  # of group 3 alone


def test_detector_without_checkpoint(image, tmp_path):
    out = tmp_path / 'det.png'
    proc = run(image, '--config', FASTER_RCNN, '--out', out)
    check_png(out)
    # Default: the finest of the three FPN upsamplers (the test pipeline
    # resizes to 192 px: the 1/8 level is 24x24).
    assert '* stage 0: neck.upsample_modules.0 input (1, 64, 24, 24)' in \
        proc.stdout
    assert 'no checkpoint' in proc.stdout
    assert offset_rms(proc.stdout) < 0.05  # N(0, 0.001) initial weights


def test_detector_with_checkpoint(image, tmp_path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(FASTER_RCNN)
    model = MODELS.build(cfg.model)  # the mmdet registry: no global scope
    state = model.state_dict()
    # Known offsets at stage 1: the tool must report them to prove it loaded
    # the checkpoint. Bias 1 -> learned offset (0.25, 0.25) per point.
    state['neck.upsample_modules.1.offset.weight'].zero_()
    state['neck.upsample_modules.1.offset.bias'].fill_(1.0)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)

    out = tmp_path / 'det_ckpt.png'
    proc = run(image, '--config', FASTER_RCNN, '--checkpoint', ckpt,
               '--stage', 1, '--out', out)
    check_png(out)
    assert '* stage 1: neck.upsample_modules.1 input (1, 64, 12, 12)' in \
        proc.stdout
    assert offset_rms(proc.stdout) == pytest.approx(0.25 * 2**0.5, abs=1e-3)


def test_checkpoint_that_does_not_fit_is_refused(image, tmp_path):
    from mmdet.registry import MODELS
    state = MODELS.build(Config.fromfile(FASTER_RCNN).model).state_dict()
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': state}, ckpt)
    out = tmp_path / 'x.png'
    proc = run(image, '--config', FASTER_RCNN, '--checkpoint', ckpt, '--out',
               out, expect_ok=False)
    assert proc.returncode != 0
    assert 'does not fit the model' in proc.stderr
    assert 'neck.lateral_convs.0.conv.weight (checkpoint [1]' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not out.exists()


def test_model_without_dysample(image, tmp_path):
    # The stock FPN (an upsample_cfg without a type is F.interpolate's); the
    # error reaches the user as a message, not a traceback.
    proc = run(image, '--config', FASTER_RCNN, '--out', tmp_path / 'x.png',
               '--stage', 3, '--cfg-options', 'model.neck.type=FPN',
               'model.neck.upsample_cfg.type=None', expect_ok=False)
    assert proc.returncode != 0
    assert 'FasterRCNN has no DySample layer' in proc.stderr
    assert 'Traceback' not in proc.stderr
