# Copyright (c) mmdysample contributors. All rights reserved.
"""``--upsampler`` of tools/train.py and tools/test.py on a stock config.

The config is mmdet's own slim Faster R-CNN (stock ``FPN``) on the tiny
built-in data: trained stock for two iterations, then fine-tuned from that
checkpoint with ``--upsampler DySample`` (only the upsamplers' weights
missing), then tested with the same option.
"""
import os.path as osp
import re
import sys

import pytest
from train_helpers import REPO, run, run_status, tiny_options, weights

CONFIG = osp.join(REPO, 'configs/faster_rcnn/faster-rcnn_r18_fpn_synthetic.py')
PSPNET = 'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'
ITERS = 2


def checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


@pytest.fixture(scope='module')
def stock_run(tmp_path_factory, data_root):
    work_dir = tmp_path_factory.mktemp('stock')
    log = run([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), *tiny_options(data_root, ITERS)
    ])
    assert 'drop-in hosts swapped in' not in log  # nothing needed one
    return checkpoint(work_dir)


@pytest.fixture(scope='module')
def fine_tuned(tmp_path_factory, data_root, stock_run):
    work_dir = tmp_path_factory.mktemp('dysample')
    log = run([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), '--upsampler', 'DySample',
        *tiny_options(data_root, ITERS, load_from=stock_run)
    ])
    return work_dir, log


@pytest.mark.slow
def test_stock_config_trains_with_the_named_upsampler(fine_tuned,
                                                      stock_run):
    work_dir, log = fine_tuned
    assert ('drop-in hosts swapped in: model.neck: FPN -> DySampleFPN; '
            "model.neck.upsample_cfg='DySample'") in log
    ours, stock = weights(checkpoint(work_dir)), weights(stock_run)
    new = sorted(set(ours) - set(stock))
    assert new and all(k.startswith('neck.upsample_modules.') for k in new)
    assert 'neck.upsample_modules.0.offset.weight' in new
    assert set(stock) <= set(ours)


@pytest.mark.slow
def test_load_from_a_stock_checkpoint_misses_only_the_upsamplers(
        fine_tuned):
    work_dir, log = fine_tuned
    match = re.search(r'missing keys in source state_dict: (.+)', log)
    assert match, log[-3000:]
    missing = {k.strip() for k in match.group(1).split(',')}
    expected = {
        k
        for k in weights(checkpoint(work_dir))
        if k.startswith('neck.upsample_modules.')
    }
    assert missing == expected
    assert 'unexpected key in source state_dict' not in log


@pytest.mark.slow
def test_test_tool_takes_the_same_option(fine_tuned, data_root):
    work_dir, _ = fine_tuned
    log = run([
        sys.executable, 'tools/test.py', CONFIG,
        checkpoint(work_dir), '--work-dir',
        str(work_dir / 'test'), '--upsampler', 'DySample',
        *tiny_options(data_root, ITERS)
    ])
    assert 'coco/bbox_mAP:' in log


@pytest.mark.slow
def test_test_tool_refuses_the_upsampled_checkpoint_without_the_option(
        fine_tuned, data_root):
    """Without ``--upsampler`` the model is the stock one, which has no
    place for the upsamplers' weights: an error, not a number."""
    work_dir, _ = fine_tuned
    code, log = run_status([
        sys.executable, 'tools/test.py', CONFIG,
        checkpoint(work_dir), '--work-dir',
        str(work_dir / 'test_stock'), *tiny_options(data_root, ITERS)
    ])
    assert code == 1, log[-3000:]
    assert 'neck.upsample_modules.0' in log
    assert 'coco/bbox_mAP:' not in log


def test_a_model_without_host_stops_before_training(tmp_path):
    code, log = run_status([
        sys.executable, 'tools/train.py', PSPNET, '--work-dir',
        str(tmp_path), '--upsampler', 'DySample'
    ])
    assert code == 2, log[-3000:]
    assert 'error: --upsampler' in log
    assert 'model.decode_head (PSPHead' in log
    assert 'Epoch' not in log and 'Iter' not in log


def test_compare_plans_on_a_stock_config(tmp_path):
    """compare_upsamplers takes the unmodified config: its FPN becomes the
    host, and each run's config names the upsampler there."""
    from mmdysample.experiments import plan_sweep
    plan = plan_sweep(
        CONFIG, ['stock', 'DySample'],
        seeds=[0],
        work_dir=str(tmp_path),
        need_data=False)
    assert plan.hosts == [('neck', )]
    stock, dysample = (run.cfg.model.neck for run in plan.runs)
    assert stock.type == dysample.type == 'DySampleFPN'
    assert stock.upsample_cfg == dict(mode='nearest')
    assert dysample.upsample_cfg == 'DySample'


def test_compare_refuses_a_model_without_host(tmp_path):
    from mmdysample.experiments import plan_sweep
    with pytest.raises(ValueError, match=r'model\.decode_head \(PSPHead'):
        plan_sweep(
            PSPNET, ['stock', 'DySample'],
            seeds=[0],
            work_dir=str(tmp_path),
            need_data=False)
