# Copyright (c) mmdysample contributors. All rights reserved.
"""The guided upsamplers and the later peers train and test on the
built-in data.

Each of IndexNet, A2U, FADE and SAPA-B (the paper's) and FreqFusion and
LDA-AQU (the later peers) replaces DySample in the synthetic Faster R-CNN
and SegFormer configs through ``--cfg-options`` only. A round trip is
``tools/train.py`` for two iterations, then ``tools/test.py`` on the
checkpoint it saved: one per upsampler, three on each config (the later
peers one each, on different hosts: the suite's time); every guided
upsampler, and LDA-AQU, trains in all four hosts in
``tests/models/test_guided_hosts.py``.
"""
import glob
import json
import sys

import pytest
from train_helpers import (FASTER_RCNN, SEGFORMER, run, tiny_options,
                           tiny_seg_options, train, weights)

# data_root: tests/tools/conftest.py
pytestmark = pytest.mark.slow

#: (upsampler, the config of its round trip)
ROUND_TRIPS = [
    ('FADE', FASTER_RCNN),
    ('IndexNet', FASTER_RCNN),
    ('SAPA-B', SEGFORMER),
    ('A2U', SEGFORMER),
    ('FreqFusion', FASTER_RCNN),
    ('LDA-AQU', SEGFORMER),
]
#: Where each config keeps its upsampler, and a key the guided one saves.
UPSAMPLE_KEY = {
    FASTER_RCNN: ('model.neck.upsample_cfg.type', 'neck.upsample_modules.2.'),
    SEGFORMER: ('model.decode_head.upsample_cfg.type',
                'decode_head.upsamplers.3.2.'),
}
METRIC = {FASTER_RCNN: 'coco/bbox_mAP', SEGFORMER: 'mIoU'}


def options(config, data_root, name, iters):
    key = UPSAMPLE_KEY[config][0]
    opts = (
        tiny_options(data_root, iters) if config == FASTER_RCNN else
        tiny_seg_options(data_root, iters))
    return opts + [f'{key}={name}']


def round_trip_id(case):
    name, config = case
    return f"{name}-{'frcnn' if config == FASTER_RCNN else 'segformer'}"


@pytest.mark.parametrize(
    'name,config', ROUND_TRIPS, ids=[round_trip_id(c) for c in ROUND_TRIPS])
def test_guided_upsampler_round_trip(name, config, data_root, tmp_path):
    opts = options(config, data_root, name, 2)
    work_dir = tmp_path / 'train'
    train(config, work_dir, opts)
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    state = weights(ckpt)
    prefix = UPSAMPLE_KEY[config][1]
    saved = [k for k in state if k.startswith(prefix)]
    assert saved, f'no {prefix}* weights of {name} in {ckpt}'

    test_dir = tmp_path / 'test'
    log = run([
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        str(test_dir), *opts
    ])
    assert 'Loads checkpoint by local backend' in log
    (result, ) = glob.glob(str(test_dir / '*' / '*.json'))
    with open(result) as f:
        metrics = json.load(f)
    value = metrics[METRIC[config]]
    assert 0.0 <= value <= (1.0 if config == FASTER_RCNN else 100.0)

