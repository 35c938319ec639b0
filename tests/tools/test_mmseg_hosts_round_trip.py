# Copyright (c) mmdysample contributors. All rights reserved.
"""The built-in UPerNet, DeepLabV3+ and Semantic FPN configs train and test.

A round trip is ``tools/train.py`` for two iterations on the tiny copy of
the built-in data, then ``tools/test.py`` on the checkpoint it saved: the
DySample steps of each host are trained, saved under the host's keys and
loaded back.
"""
import glob
import json
import os.path as osp
import sys

import pytest
from train_helpers import REPO, run, tiny_seg_options, train, weights

# data_root: tests/tools/conftest.py
pytestmark = pytest.mark.slow

#: (config, a key the DySample steps save)
CONFIGS = {
    'upernet': ('configs/upernet/upernet-dysample-lpg4_r18_synthetic.py',
                'decode_head.upsample_modules.2.offset.weight'),
    'deeplabv3plus':
    ('configs/deeplabv3plus/deeplabv3plus-dysample-lpg4_r18-d8_synthetic.py',
     'decode_head.upsample_modules.0.offset.weight'),
    # the first step of the 1/32 branch, in place of its Upsample
    'sem_fpn': ('configs/sem_fpn/fpn-dysample-lpg4_r18_synthetic.py',
                'decode_head.scale_heads.3.1.offset.weight'),
}


@pytest.mark.parametrize('host', list(CONFIGS))
def test_train_then_test(host, data_root, tmp_path):
    config, key = CONFIGS[host]
    config = osp.join(REPO, config)
    options = tiny_seg_options(data_root, 2)
    work_dir = tmp_path / 'train'
    train(config, work_dir, options)
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    state = weights(ckpt)
    assert key in state

    test_dir = tmp_path / 'test'
    log = run([
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        str(test_dir), *options
    ])
    assert 'Loads checkpoint by local backend' in log
    (result, ) = glob.glob(str(test_dir / '*' / '*.json'))
    with open(result) as f:
        metrics = json.load(f)
    assert 0.0 <= metrics['mIoU'] <= 100.0
