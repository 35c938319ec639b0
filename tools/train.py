# Copyright (c) mmdysample contributors. All rights reserved.
"""Train a detector (mmdet) or segmentor (mmseg) from a config.

The config's ``default_scope`` decides the host. The config may be an
unmodified mmdet / mmseg one, also named as ``mmdet::PATH`` / ``mmseg::PATH``:
``--upsampler NAME`` swaps its stock modules for their drop-in hosts, each
taking that upsampler (``load_from`` a stock checkpoint then fine-tunes with
only the new upsamplers' weights missing). Multi-GPU and multi-node runs go
through ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh`` with
``--launcher pytorch|slurm``.
"""
import argparse
import importlib.util
import os
import sys
import warnings

import torch

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../..')))
# setuptools' notice about the pkg_resources that mmengine resolves
# mmdet::/mmseg:: bases with; nothing a user can act on.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                        UserWarning)
import mmdysample  # noqa: E402,F401 (registers the upsamplers and hooks)
from mmdysample.utils import (  # noqa: E402
    add_runner_args, add_upsampler_arg, build_runner, load_config,
    parse_runner_args, release_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a model with a DySample upsampler')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='directory for logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate with the total batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or, without a path, from the '
        'latest checkpoint in the work directory')
    add_upsampler_arg(parser)
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options, args.launcher,
                          args.work_dir, args.upsampler)
    except (TypeError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2

    if args.amp:
        if not torch.cuda.is_available():
            raise ValueError('--amp needs a CUDA device: mmengine\'s '
                             'AmpOptimWrapper does not train on the CPU')
        optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError('--amp needs optim_wrapper.type OptimWrapper, '
                             f'got {optim_type!r}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.auto_scale_lr:
        scale_cfg = cfg.get('auto_scale_lr')
        if not scale_cfg or 'base_batch_size' not in scale_cfg:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.'
                             'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    finished = False
    try:
        build_runner(cfg).train()
        finished = True
    finally:
        release_distributed(finished)
    return 0


if __name__ == '__main__':
    sys.exit(main())
