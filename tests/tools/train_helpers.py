# Copyright (c) mmdysample contributors. All rights reserved.
"""What the tools tests share: tiny-run options, subprocess runs, ports.

Each run is a subprocess on a tiny copy of the built-in data, so the Runner's
global state (scopes, message hub, visualizer) never leaks between tests;
work directories and data live under pytest's ``tmp_path``, and ports are
picked free, so two test runs on one machine do not collide.
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import torch

import mmdysample  # noqa: F401 (safe globals for torch.load)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FASTER_RCNN = osp.join(
    REPO, 'configs/faster_rcnn/faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py')
SEGFORMER = osp.join(
    REPO, 'configs/segformer/segformer_mit-b0-dysample-lpg4_synthetic.py')
MASKFORMER = osp.join(
    REPO, 'configs/maskformer/maskformer_r18_fpn-dysample-plg8ds_synthetic.py')


def tiny_options(data_root, iters, **extra):
    """--cfg-options pointing a COCO synthetic config at the tiny data."""
    coco = osp.join(data_root, 'coco') + '/'
    ann = coco + 'annotations/instances_val2017.json'
    opts = {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.checkpoint.max_keep_ckpts': 3,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 2,
        'val_dataloader.batch_size': 2,
        'test_dataloader.batch_size': 2,
        'val_evaluator.ann_file': ann,
        'test_evaluator.ann_file': ann,
    }
    for split in ('train', 'val', 'test'):
        opts[f'{split}_dataloader.dataset.data_root'] = coco
        opts[f'{split}_dataloader.num_workers'] = 0
        opts[f'{split}_dataloader.persistent_workers'] = False
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


#: Iterations of the uninterrupted run; checkpoints every two.
ITERS = 4
# No fused CPU kernel: a run SIGKILLed while torch builds it would leave
# the build lock behind in the shared extension cache, and every later
# build would wait on it. The runs compared bit for bit with those killed
# runs use the same path.
NO_BUILD = dict(MMDYSAMPLE_FAST_CPU='0')


def run_options(data_root, iters, **extra):
    """The tiny-run options of every Faster R-CNN run compared here."""
    extra.setdefault('default_hooks.checkpoint.max_keep_ckpts', 2)
    return tiny_options(data_root, iters, **extra)


def copy_run(work_dir, dst):
    """A copy of a shared run's work directory whose ``last_checkpoint``
    names the copy's own file."""
    shutil.copytree(work_dir, dst)
    last = (dst / 'last_checkpoint').read_text().strip()
    (dst / 'last_checkpoint').write_text(str(dst / osp.basename(last)))
    return dst


def tiny_seg_options(data_root, iters):
    """--cfg-options pointing the synthetic SegFormer at the tiny data."""
    opts = {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': 1000,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 2,
    }
    for split in ('train', 'val', 'test'):
        opts[f'{split}_dataloader.dataset.data_root'] = osp.join(
            data_root, 'ade')
        opts[f'{split}_dataloader.num_workers'] = 0
        opts[f'{split}_dataloader.persistent_workers'] = False
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def tool_env(**env):
    """The environment of a tool subprocess: this checkout's code first."""
    path = os.pathsep.join(
        p for p in (REPO, os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS='1', **env)


def run_status(args, **env):
    """``(returncode, stdout + stderr)`` of a tool that may fail."""
    proc = subprocess.run(
        args,
        cwd=REPO,
        env=tool_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    return proc.returncode, proc.stdout


def run(args, **env):
    """stdout + stderr of a tool that must succeed."""
    code, log = run_status(args, **env)
    assert code == 0, log[-4000:]
    return log


def train(config, work_dir, options, *extra, env=None):
    return run([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), *extra, *options
    ], **(env or {}))


def weights(path):
    return torch.load(path, map_location='cpu')['state_dict']


def assert_same_weights(a, b):
    """Bit for bit, every tensor of two state dicts."""
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def free_port():
    """A TCP port no one listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
