# Copyright (c) mmdysample contributors. All rights reserved.
"""End-to-end runs of tools/train.py, tools/test.py and tools/dist_train.sh.

Each run is a subprocess on a tiny copy of the built-in data, so the Runner's
global state (scopes, message hub, visualizer) never leaks between tests.
"""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from train_helpers import (FASTER_RCNN, ITERS, MASKFORMER, NO_BUILD, REPO,
                           SEGFORMER, assert_same_weights, copy_run,
                           free_port, run, run_options, run_status,
                           tiny_options, tiny_seg_options, tool_env, train,
                           weights)

# data_root, two_iterations and uninterrupted: tests/tools/conftest.py
pytestmark = pytest.mark.slow


def run_test_tool(config, ckpt, test_dir, options, *extra):
    """Run tools/test.py; its log and the one metrics JSON it wrote."""
    log = run([
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        str(test_dir), *extra, *options
    ])
    results = glob.glob(str(test_dir / '*' / '*.json'))
    assert len(results) == 1
    with open(results[0]) as f:
        return log, json.load(f)


def test_train_then_test_round_trip(data_root, two_iterations, tmp_path):
    ckpt = (two_iterations / 'last_checkpoint').read_text().strip()
    assert osp.basename(ckpt) == 'iter_2.pth'
    state = weights(ckpt)
    # The DySample upsamplers were trained and saved with the neck.
    assert 'neck.upsample_modules.0.offset.weight' in state

    test_dir = tmp_path / 'test'
    out_pkl = tmp_path / 'preds.pkl'
    log, metrics = run_test_tool(FASTER_RCNN, ckpt, test_dir,
                                 run_options(data_root, 2), '--out',
                                 str(out_pkl))
    assert 'bbox_mAP_copypaste' in log
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    assert out_pkl.exists() and out_pkl.stat().st_size > 0


def test_segmentation_round_trip(data_root, tmp_path):
    work_dir = tmp_path / 'train'
    train(SEGFORMER, work_dir, tiny_seg_options(data_root, 2))
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    state = weights(ckpt)
    assert 'decode_head.upsamplers.3.2.offset.weight' in state

    test_dir = tmp_path / 'test'
    log, metrics = run_test_tool(SEGFORMER, ckpt, test_dir,
                             tiny_seg_options(data_root, 2))
    assert 'Loads checkpoint by local backend' in log
    assert 0.0 <= metrics['mIoU'] <= 100.0


def test_maskformer_round_trip(data_root, tmp_path):
    work_dir = tmp_path / 'train'
    train(MASKFORMER, work_dir, tiny_seg_options(data_root, 2))
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    state = weights(ckpt)
    # the DySample-S+ stages of the pixel decoder were trained and saved,
    # and so was the transformer's input projection
    prefix = 'decode_head.pixel_decoder.upsample_modules'
    assert f'{prefix}.2.scope.weight' in state
    assert 'decode_head.decoder_input_proj.weight' in state

    test_dir = tmp_path / 'test'
    log, metrics = run_test_tool(MASKFORMER, ckpt, test_dir,
                             tiny_seg_options(data_root, 2))
    assert 'Loads checkpoint by local backend' in log
    assert 0.0 <= metrics['mIoU'] <= 100.0


def test_resume_matches_uninterrupted(data_root, two_iterations,
                                      uninterrupted, tmp_path):
    """A finished 2-iteration run, extended to 4 with --resume, equals 4
    iterations in one go."""
    split = copy_run(two_iterations, tmp_path / 'split')
    log = train(
        FASTER_RCNN,
        split,
        run_options(data_root, ITERS),
        '--resume',
        env=NO_BUILD)
    assert 'resumed' in log.lower()
    assert str(split / 'iter_2.pth') in log  # the copy, not the shared run

    a = weights(uninterrupted / f'iter_{ITERS}.pth')
    b = weights(split / f'iter_{ITERS}.pth')
    # Sanity: training changed the weights between iteration 2 and 4.
    mid = weights(split / 'iter_2.pth')
    assert not torch.equal(mid['neck.upsample_modules.0.offset.weight'],
                           b['neck.upsample_modules.0.offset.weight'])
    assert_same_weights(a, b)


def test_amp_needs_cuda_on_cpu_machines(data_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA; see test_amp_train_cuda')
    proc = subprocess.run([
        sys.executable, 'tools/train.py', FASTER_RCNN, '--amp', '--work-dir',
        str(tmp_path), *tiny_options(data_root, 1)
    ],
                          cwd=REPO,
                          env=tool_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode != 0
    assert '--amp needs a CUDA device' in proc.stderr


@pytest.mark.gpu
def test_amp_train_cuda(data_root, tmp_path):
    pytest.importorskip('mmdet')  # make gpu-check runs without mmdet
    log = train(FASTER_RCNN, tmp_path, tiny_options(data_root, 2), '--amp')
    assert 'AmpOptimWrapper' in log
    assert (tmp_path / 'iter_2.pth').exists()


def test_dist_train_two_cpu_processes(data_root, tmp_path):
    work_dir = tmp_path / 'dist'
    log = run([
        'bash', 'tools/dist_train.sh', FASTER_RCNN, '2', '--work-dir',
        str(work_dir), *tiny_options(data_root, 2)
    ],
              PYTHON=sys.executable,
              PORT=str(free_port()))
    assert 'Distributed training: True' in log
    assert (work_dir / 'iter_2.pth').exists()


# ---------------------------------------------------------------------------
# tools/test.py refuses a checkpoint that does not fit (before evaluating)
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def faster_rcnn_state():
    from mmengine.config import Config

    from mmdysample.utils.model import build_model
    torch.manual_seed(0)
    return build_model(Config.fromfile(FASTER_RCNN)).state_dict()


def save_variant(state, path, change):
    state = dict(state)
    key = 'roi_head.bbox_head.fc_cls.weight'
    if change == 'removed':
        del state[key]
    elif change == 'reshaped':
        state[key] = state[key][:-1]
    elif change == 'upsampler key':
        key = 'neck.upsample_modules.0.scope.bias'
        state[key] = torch.zeros(32)
    elif change == 'unused key':
        key = 'semantic_head.conv_logits.weight'
        state[key] = torch.zeros(3)
    torch.save({'state_dict': state, 'meta': {}}, path)
    return key


def evaluated(log):
    """Whether the test loop ran: mmengine logs its iterations and metrics
    (the config dump, also logged, names ``mIoU`` but none of these)."""
    return any(mark in log
               for mark in ('Epoch(test)', 'bbox_mAP_copypaste', 'aAcc:'))


@pytest.mark.parametrize('change', ['removed', 'reshaped', 'upsampler key'])
def test_test_refuses_checkpoint_that_does_not_fit(data_root, tmp_path,
                                                   faster_rcnn_state, change):
    ckpt = str(tmp_path / 'model.pth')
    key = save_variant(faster_rcnn_state, ckpt, change)
    code, log = run_status([
        sys.executable, 'tools/test.py', FASTER_RCNN, ckpt, '--work-dir',
        str(tmp_path / 'test'), *tiny_options(data_root, 2)
    ])
    assert code == 1, log[-3000:]
    assert f'error: {ckpt} does not fit the model' in log
    assert key in log and '--allow-partial-checkpoint' in log
    if change == 'reshaped':
        assert f'{key} (checkpoint [4, 256], model [5, 256])' in log
    assert 'Traceback' not in log
    assert not evaluated(log), log[-3000:]
    assert not glob.glob(str(tmp_path / 'test' / '*' / '*.json'))


def test_test_warns_on_unused_key_and_evaluates(data_root, tmp_path,
                                                faster_rcnn_state):
    ckpt = str(tmp_path / 'model.pth')
    key = save_variant(faster_rcnn_state, ckpt, 'unused key')
    log = run([
        sys.executable, 'tools/test.py', FASTER_RCNN, ckpt, '--work-dir',
        str(tmp_path / 'test'), *tiny_options(data_root, 2)
    ])
    assert 'checkpoint key(s) the model does not use' in log
    assert key in log
    assert 'bbox_mAP_copypaste' in log


def test_test_allow_partial_checkpoint(data_root, tmp_path,
                                       faster_rcnn_state):
    ckpt = str(tmp_path / 'model.pth')
    key = save_variant(faster_rcnn_state, ckpt, 'removed')
    log = run([
        sys.executable, 'tools/test.py', FASTER_RCNN, ckpt, '--work-dir',
        str(tmp_path / 'test'), '--allow-partial-checkpoint',
        *tiny_options(data_root, 2)
    ])
    assert 'does not match the model exactly' in log
    assert f'missing from the checkpoint: {key}' in log
    assert 'bbox_mAP_copypaste' in log


def test_segformer_refuses_a_faster_rcnn_checkpoint(data_root, tmp_path,
                                                    faster_rcnn_state):
    """The issue's example: this evaluated to "mIoU: 7.05" before."""
    ckpt = str(tmp_path / 'faster_rcnn.pth')
    save_variant(faster_rcnn_state, ckpt, None)
    code, log = run_status([
        sys.executable, 'tools/test.py', SEGFORMER, ckpt, '--work-dir',
        str(tmp_path / 'test'), *tiny_seg_options(data_root, 2)
    ])
    assert code == 1, log[-3000:]
    assert 'does not fit the model' in log
    assert 'model weight(s) missing from the checkpoint: backbone.' in log
    assert 'upsampler weight(s) the model has no place for: neck.' in log
    assert not evaluated(log), log[-3000:]
