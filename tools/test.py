# Copyright (c) mmdysample contributors. All rights reserved.
"""Evaluate a checkpoint: COCO AP / PQ for mmdet configs, mIoU for mmseg.

Multi-GPU and multi-node runs go through ``tools/dist_test.sh`` (torchrun) or
``tools/slurm_test.sh`` with ``--launcher pytorch|slurm``. ``--upsampler NAME``
swaps the stock modules of an unmodified mmdet / mmseg config for their
drop-in hosts, as ``tools/train.py`` does.

A checkpoint that leaves a model weight missing, has a tensor of another
shape or an upsampler weight the model has no place for stops the run
before the first image, naming the keys (see
:mod:`mmdysample.utils.checkpoint_fit`); ``--allow-partial-checkpoint``
restores mmengine's lenient loading.
"""
import argparse
import importlib.util
import os
import sys
import warnings

from mmengine.evaluator import DumpResults

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
from mmdysample.utils.checkpoint_fit import (  # noqa: E402
    ALLOW_PARTIAL_FLAG, CheckpointMismatchError)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model with a DySample upsampler')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the metrics log')
    parser.add_argument(
        '--out', help='also dump the raw predictions to this .pkl file')
    parser.add_argument(
        '--show-dir',
        help='save drawn predictions (mmdet: under <work_dir>/<timestamp>/'
        '<show-dir>; mmseg: in <show-dir>)')
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per image shown')
    parser.add_argument(
        ALLOW_PARTIAL_FLAG,
        action='store_true',
        help='evaluate even when the checkpoint leaves model weights '
        'missing or shaped otherwise (mmengine\'s lenient loading; the '
        'mismatches are logged as warnings)')
    add_upsampler_arg(parser)
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def enable_visualization(cfg, args) -> None:
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise ValueError('--show / --show-dir need a "visualization" hook in '
                         'default_hooks of the config')
    vis = hooks['visualization']
    vis['draw'] = True
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if args.show_dir:
        if cfg.get('default_scope') == 'mmdet':
            # mmdet's hook writes drawings to <work_dir>/<time>/<dir>.
            vis['test_out_dir'] = args.show_dir
        else:
            # mmseg's hook draws through the visualizer's save_dir.
            cfg.visualizer['save_dir'] = args.show_dir


def build_test_runner(args):
    """The Runner that ``main`` tests with: the config, its overrides, the
    checkpoint as ``load_from`` and the hook that checks its fit."""
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {args.out!r}')
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir, args.upsampler)
    cfg.load_from = args.checkpoint
    # Runner.test() loads load_from before the first batch, through
    # after_load_checkpoint: the checkpoint is checked there.
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(
            type='CheckpointFitHook',
            allow_partial=args.allow_partial_checkpoint,
            source=args.checkpoint)
    ]
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    return runner


def main(argv=None):
    args = parse_args(argv)
    finished = False
    try:
        try:
            runner = build_test_runner(args)
        except (TypeError, ValueError) as err:  # the config or arguments
            print(f'error: {err}', file=sys.stderr)
            return 2
        runner.test()
        finished = True
    except CheckpointMismatchError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    finally:
        release_distributed(finished)
    return 0


if __name__ == '__main__':
    sys.exit(main())
