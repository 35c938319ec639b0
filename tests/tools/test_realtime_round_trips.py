# Copyright (c) mmdysample contributors. All rights reserved.
"""The built-in RTMDet, YOLOX and Mask2Former configs train and test.

A round trip is ``tools/train.py`` for two iterations on the tiny copy of
the built-in data, then ``tools/test.py`` on the checkpoint it saved: the
DySample steps of each host are trained, saved under the host's keys and
loaded back, and the metric is computed.
"""
import glob
import json
import os.path as osp
import sys

import pytest
import torch
from train_helpers import (REPO, run, tiny_options, tiny_seg_options, train,
                           weights)

# data_root: tests/tools/conftest.py
pytestmark = pytest.mark.slow

#: (config, the key of the coarsest DySample step, COCO data?, metric)
CONFIGS = {
    'rtmdet': ('configs/rtmdet/rtmdet_tiny_pafpn-dysample-lpg4_synthetic.py',
               'neck.upsample_modules.1.offset.weight', True,
               'coco/bbox_mAP'),
    'yolox': ('configs/yolox/yolox_tiny_pafpn-dysample-lpg4_synthetic.py',
              'neck.upsample_modules.1.offset.weight', True, 'coco/bbox_mAP'),
    'mask2former':
    ('configs/mask2former/mask2former_r18_msdeformattn-dysample-lpg4_'
     'synthetic.py', 'decode_head.pixel_decoder.upsample_modules.0.'
     'offset.weight', False, 'mIoU'),
}


@pytest.mark.parametrize('model', list(CONFIGS))
def test_train_then_test(model, data_root, tmp_path):
    config, key, coco, metric = CONFIGS[model]
    config = osp.join(REPO, config)
    if coco:
        # After two iterations YOLOX's scores are below its 0.01 threshold:
        # keep every box, so that COCO's metric has detections to score.
        options = tiny_options(data_root, 2, **{'model.test_cfg.score_thr': 0})
    else:
        options = tiny_seg_options(data_root, 2)
    work_dir = tmp_path / 'train'
    train(config, work_dir, options)
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    state = weights(ckpt)
    # saved under the host's keys, with DySample's N(0, 0.001) offset init
    # (two small steps later): the model's Kaiming / Xavier init missed it
    assert key in state and 0 < state[key].std() < 0.01

    test_dir = tmp_path / 'test'
    log = run([
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        str(test_dir), *options
    ])
    assert 'Loads checkpoint by local backend' in log
    (result, ) = glob.glob(str(test_dir / '*' / '*.json'))
    with open(result) as f:
        metrics = json.load(f)
    upper = 1.0 if coco else 100.0
    assert 0.0 <= metrics[metric] <= upper
    assert torch.isfinite(torch.tensor(metrics[metric]))
