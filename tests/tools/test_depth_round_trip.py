# Copyright (c) mmdysample contributors. All rights reserved.
"""The built-in depth config trains and tests; a segmentation checkpoint is
refused by it.

``tools/train.py`` runs the slim DepthFormer with DySample+ for two
iterations on a tiny copy of the built-in depth data (rooms in the NYU
layout), ``tools/test.py`` evaluates the checkpoint it saved and reports
every Table 9 metric; the checkpoint fit check of the tools refuses the
weights of a segmentor (a SegFormer) for the depth model.
"""
import glob
import json
import math
import os.path as osp
import sys

import pytest
import torch
from train_helpers import REPO, run, train, weights

from mmdysample.datasets import generate_synthetic_dataset

pytestmark = pytest.mark.slow

CONFIG = osp.join(
    REPO,
    'configs/depthformer/depthformer_swin-slim_dysample-lpg4ds_synthetic.py')
#: Table 9's metrics (d<1.25^k, AbsRel, SqRel, RMS, RMS(log), log10).
TABLE9 = ('d1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10')


def depth_options(root, iters):
    nyu = osp.join(root, 'nyu')
    opts = {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 2,
    }
    for split in ('train', 'val', 'test'):
        opts[f'{split}_dataloader.dataset.data_root'] = nyu
        opts[f'{split}_dataloader.num_workers'] = 0
        opts[f'{split}_dataloader.persistent_workers'] = False
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


@pytest.fixture(scope='module')
def depth_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('depth_data')
    generate_synthetic_dataset(
        str(root), num_train=4, num_val=2, img_size=(96, 128),
        scenes='depth')
    work_dir = tmp_path_factory.mktemp('depth_train')
    options = depth_options(str(root), 2)
    train(CONFIG, work_dir, options)
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    return ckpt, options, tmp_path_factory


def test_train_then_test_reports_table9_metrics(depth_run):
    ckpt, options, factory = depth_run
    state = weights(ckpt)
    # DySample+ in the last stage (32 channels upsampled) and the stem
    assert 'decode_head.upsample_modules.3.offset.weight' in state
    assert 'backbone.conv1.weight' in state
    test_dir = factory.mktemp('depth_test')
    log = run([
        sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir',
        str(test_dir), *options
    ])
    assert 'Loads checkpoint by local backend' in log
    (result, ) = glob.glob(str(test_dir / '*' / '*.json'))
    with open(result) as f:
        metrics = json.load(f)
    for key in TABLE9:
        assert math.isfinite(metrics[key]), (key, metrics)
    for key in ('d1', 'd2', 'd3'):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics['d1'] <= metrics['d2'] <= metrics['d3']
    assert metrics['rmse'] > 0 and metrics['abs_rel'] > 0


def test_a_segmentation_checkpoint_is_refused(depth_run, tmp_path):
    """What tools/test.py checks before loading (its refusal and exit:
    tests/tools/test_train_test.py), on a SegFormer's weights for the
    depth model."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmdysample.utils.checkpoint_fit import (CheckpointMismatchError,
                                                 check_checkpoint_fit)

    init_default_scope('mmseg')
    depth_model = MODELS.build(Config.fromfile(CONFIG).model)
    segmentor = MODELS.build(
        Config.fromfile(
            osp.join(REPO, 'configs/segformer/segformer_mit-b0-dysample-'
                     'lpg4_synthetic.py')).model)
    with pytest.raises(CheckpointMismatchError,
                       match='does not fit the model') as error:
        check_checkpoint_fit(depth_model, segmentor.state_dict(),
                             source='segformer.pth')
    message = str(error.value)
    assert 'model weight(s) missing from the checkpoint' in message
    assert "checkpoint key(s) the model does not use" in message
    # the depth run's own checkpoint fits
    fit = check_checkpoint_fit(depth_model, torch.load(
        depth_run[0], map_location='cpu'))
    assert fit.fits
