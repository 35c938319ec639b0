# Copyright (c) mmdysample contributors. All rights reserved.
"""Latency, memory, Params and FLOPs of every upsampler, side by side.

Repeats the paper's complexity comparison (Sec. 3.4, Fig. 1 and 8: x2
upsampling of 1 x 256 x 120 x 120; 6.2 ms DySample vs 1.6 ms bilinear on an
RTX 3090) on this machine, with interleaved rounds; see
:mod:`mmdysample.benchmark.upsamplers` for how each quantity is measured.
Guided upsamplers (IndexNet, A2U, FADE, SAPA-B: every registered one that
reads a guide) also get a guide of twice the size, 1 x 256 x 240 x 240, as
in the paper's Fig. 8.

    python tools/analysis_tools/benchmark_upsamplers.py  # the paper's shape
    python tools/analysis_tools/benchmark_upsamplers.py --sweep  # sizes, batch
    python tools/analysis_tools/benchmark_upsamplers.py --models  # + models
    python tools/analysis_tools/benchmark_upsamplers.py --quick  # tiny: tests
    python tools/analysis_tools/benchmark_upsamplers.py --device cuda --models
    python tools/analysis_tools/benchmark_upsamplers.py --grid-sample-paths

On CUDA, DySample samples with the fused Triton kernel (the C++ kernel on
CPU); the row "DySample (reference)" is the paper's formulation with
``grid_sample``, and the line under each table gives DySample's ratio to it.
With ``--models`` on CUDA, each DySample model is also timed with its fused
kernels switched off (``DySample (grid_sample)``). ``--grid-sample-paths``
adds a row ``<preset> (grid_sample)`` per DySample preset: the same layer on
its ``grid_sample`` path, beside the preset's fused-kernel row.
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
import warnings

import torch

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../../..')))
# setuptools' notice about the pkg_resources that mmengine resolves
# mmdet::/mmseg:: bases with; nothing a user can act on.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                        UserWarning)
import mmdysample  # noqa: E402,F401
from mmdysample.benchmark import upsamplers as bench  # noqa: E402

#: --quick: tiny sizes so that the whole tool runs in seconds (32 channels:
#: the GroupNorms of SAPA-B and A2U have 32 groups).
QUICK = dict(
    shape=[32, 8, 8],
    sweep=[8, 12],
    batch_sizes=[1, 2],
    rounds=3,
    warmup=1,
    model_shape=[64, 64],
    model_rounds=1)
DEFAULTS = dict(
    shape=list(bench.PAPER_SHAPE),
    sweep=list(bench.SWEEP_SIZES),
    batch_sizes=None,
    rounds=20,
    warmup=3,
    model_shape=[512, 512],
    model_rounds=5)
OUT_DIR = 'work_dirs/benchmark_upsamplers'


def _int_at_least(minimum: int):

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected an integer, got {text!r}')
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f'must be >= {minimum}, got {value}')
        return value

    return parse


positive = _int_at_least(1)


def parse_args(argv=None):
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(
        description='Benchmark upsamplers (latency, memory, Params, FLOPs)',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--device',
        nargs='+',
        choices=['cpu', 'cuda'],
        default=['cpu', 'cuda'] if cuda else ['cpu'],
        help='devices to measure on')
    parser.add_argument(
        '--threads', type=positive, default=2, help='torch CPU threads')
    parser.add_argument(
        '--rounds',
        type=positive,
        help=f"interleaved rounds recorded (default {DEFAULTS['rounds']}, "
        f"--quick {QUICK['rounds']})")
    parser.add_argument(
        '--warmup',
        type=_int_at_least(0),
        help=f"rounds dropped first (default {DEFAULTS['warmup']}, "
        f"--quick {QUICK['warmup']})")
    parser.add_argument(
        '--shape',
        type=positive,
        nargs=3,
        metavar=('C', 'H', 'W'),
        help='main input, batch 1 (default: the paper\'s 256 120 120)')
    parser.add_argument(
        '--scale-factor', type=positive, default=2, help='upsampling ratio')
    parser.add_argument(
        '--sweep',
        type=positive,
        nargs='*',
        metavar='SIZE',
        help='also sweep square SIZE x SIZE inputs at every batch size; '
        f"without values: {DEFAULTS['sweep']} (--quick {QUICK['sweep']})")
    parser.add_argument(
        '--batch-sizes',
        type=positive,
        nargs='+',
        metavar='N',
        help='batch sizes of the sweep (default '
        f'{list(bench.SWEEP_BATCH_SIZES)}, --quick {QUICK["batch_sizes"]}); '
        'without --sweep, swept at --shape')
    parser.add_argument(
        '--candidates',
        nargs='+',
        metavar='NAME',
        help=f'upsamplers to measure (bilinear is always added); from '
        f'{bench.candidate_names()}')
    parser.add_argument(
        '--grid-sample-paths',
        action='store_true',
        help='also time each measured DySample preset on its grid_sample '
        'path (rows "<preset> (grid_sample)"), beside its own row, which '
        'takes the fused kernel (Triton on CUDA, C++ on CPU)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--carafe-mem-limit',
        type=float,
        metavar='GiB',
        help='skip the unfold CARAFE at shapes needing more (default: a '
        'quarter of the available memory)')
    parser.add_argument(
        '--models',
        action='store_true',
        help='also time Faster R-CNN R50-FPN and SegFormer-B1 with DySample '
        'vs their stock upsampling (inference and one training step)')
    parser.add_argument(
        '--model-shape',
        type=positive,
        nargs=2,
        metavar=('H', 'W'),
        help='model input size (default 512 512, --quick 64 64)')
    parser.add_argument(
        '--model-batch', type=positive, default=1, help='model batch size')
    parser.add_argument(
        '--model-rounds',
        type=positive,
        help='interleaved rounds for the models (default 5, --quick 1)')
    parser.add_argument(
        '--model-warmup',
        type=_int_at_least(0),
        default=1,
        help='model rounds dropped first')
    parser.add_argument(
        '--out-json',
        default=osp.join(OUT_DIR, 'benchmark.json'),
        help='raw samples, medians and machine info')
    parser.add_argument(
        '--out-png',
        default=osp.join(OUT_DIR, 'benchmark.png'),
        help='Fig. 1-style chart (FLOPs and Params vs latency)')
    parser.add_argument(
        '--quick', action='store_true', help='tiny sizes and rounds (tests)')
    args = parser.parse_args(argv)

    if args.candidates is not None:
        try:
            bench.check_candidates(args.candidates)
        except ValueError as err:
            parser.error(f'--candidates: {err}')
    if args.grid_sample_paths:
        chosen = args.candidates or bench.candidate_names()
        args.candidates = list(chosen) + [
            name for name in bench.grid_sample_names()
            if name[:-len(bench.GRID_SAMPLE)] in chosen and name not in chosen
        ]
    if 'cuda' in args.device and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    if args.carafe_mem_limit is not None and args.carafe_mem_limit <= 0:
        parser.error('--carafe-mem-limit must be > 0, got '
                     f'{args.carafe_mem_limit}')
    preset = QUICK if args.quick else DEFAULTS
    for key in ('shape', 'rounds', 'warmup', 'model_shape', 'model_rounds'):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.sweep == []:
        args.sweep = preset['sweep']
    if args.batch_sizes is None and args.sweep is not None:
        args.batch_sizes = QUICK['batch_sizes'] if args.quick else list(
            bench.SWEEP_BATCH_SIZES)
    return args


def main(argv=None):
    args = parse_args(argv)
    results = bench.run_benchmark(
        devices=args.device,
        shape=args.shape,
        scale_factor=args.scale_factor,
        sweep_sizes=args.sweep,
        batch_sizes=args.batch_sizes,
        names=args.candidates,
        rounds=args.rounds,
        warmup=args.warmup,
        threads=args.threads,
        seed=args.seed,
        unfold_limit=None if args.carafe_mem_limit is None else int(
            args.carafe_mem_limit * 2**30),
        models=args.models,
        model_batch=args.model_batch,
        model_hw=args.model_shape,
        model_rounds=args.model_rounds,
        model_warmup=args.model_warmup)
    results['settings']['argv'] = sys.argv[1:] if argv is None else list(
        argv)
    bench.write_json(results, args.out_json)
    bench.plot_latency_chart(results['upsamplers'], args.out_png)
    print(f'wrote {os.path.abspath(args.out_json)} and '
          f'{os.path.abspath(args.out_png)}')
    return results


if __name__ == '__main__':
    main()
