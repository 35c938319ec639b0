# Copyright (c) mmdysample contributors. All rights reserved.
"""Train and test a config with each upsampler over seeds; tabulate.

    python tools/analysis_tools/compare_upsamplers.py CONFIG \\
        --upsamplers bilinear DySample-S+ [--seeds 0 1 2] [--work-dir DIR] \\
        [--metric KEY] [--shape H W] [--cfg-options ...] \\
        [--launcher none|pytorch|slurm] [--report-only] \\
        [--claim-timeout SECONDS]

The first upsampler is the baseline. Each run changes only the hosts'
``upsample_cfg`` and ``randomness.seed`` and trains / tests exactly as
``tools/train.py`` / ``tools/test.py`` do; finished runs are not repeated.
Results: ``results.{json,csv,md,png}`` in the work dir (see
:mod:`mmdysample.experiments.sweep` and ``docs/user_guides/
compare_upsamplers.md``). Several GPUs or nodes: launch this script like
``tools/train.py`` (torchrun / srun) with ``--launcher pytorch|slurm``.
``--report-only`` writes the result files from the runs finished so far
and trains nothing. Any number of processes may run the same command on
one work dir (one per GPU, a Slurm array: ``tools/slurm_compare.sh``):
each run is claimed by the process that trains it, and a claim whose
holder died is taken over (see :mod:`mmdysample.experiments.claims`).

Exit status: 0 when every run finished, 1 when some failed (they are in
the tables), 2 for an error before training or a main metric the
evaluator does not report.
"""
import argparse
import importlib.util
import os
import sys
import warnings

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../../..')))
# setuptools' notice about the pkg_resources that mmengine resolves
# mmdet::/mmseg:: bases with; nothing a user can act on.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                        UserWarning)
import mmdysample  # noqa: E402,F401 (registers the upsamplers and hooks)
from mmdysample.experiments import (  # noqa: E402
    DEFAULT_MAIN_METRICS, plan_sweep, report_sweep, run_sweep)
from mmdysample.experiments.claims import DEFAULT_TIMEOUT_S  # noqa: E402
from mmdysample.experiments.progress import is_main_process  # noqa: E402
from mmdysample.utils import (  # noqa: E402
    add_runner_args, parse_runner_args, release_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and test a config with each upsampler and seed')
    parser.add_argument(
        'config',
        help='config file path, or mmdet::PATH / mmseg::PATH; an unmodified '
        'mmdet / mmseg config works (its stock modules with a drop-in host '
        'are swapped for it)')
    parser.add_argument(
        '--upsamplers',
        nargs='+',
        required=True,
        metavar='NAME',
        help='registered upsampler names; the first is the baseline')
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=[0, 1, 2],
        help='randomness.seed of the runs (default: 0 1 2)')
    parser.add_argument(
        '--work-dir',
        help='directory of the runs and results (default: '
        'work_dirs/compare_upsamplers_<config name>)')
    parser.add_argument(
        '--metric',
        help='main metric (default: the task\'s own, the first of '
        f'{", ".join(DEFAULT_MAIN_METRICS)} reported)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size of the +FLOPs count (default: 800 1344 for mmdet, '
        '512 512 for mmseg, as get_flops.py)')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='write the result files from the runs finished so far (the '
        'others listed as pending) and train nothing')
    parser.add_argument(
        '--claim-timeout',
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar='SECONDS',
        help='a run claimed by another process whose heartbeat is older '
        'than this is taken over (a holder on this host whose process is '
        f'gone is taken over at once; default: {DEFAULT_TIMEOUT_S:g})')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    finished = False
    try:
        plan = plan_sweep(
            args.config,
            args.upsamplers,
            seeds=args.seeds,
            work_dir=args.work_dir,
            cfg_options=args.cfg_options,
            launcher=args.launcher,
            metric=args.metric,
            shape=args.shape,
            need_data=not args.report_only)
        outcome = (report_sweep(plan) if args.report_only else run_sweep(
            plan, claim_timeout_s=args.claim_timeout))
        finished = True
    except (TypeError, ValueError) as err:
        if is_main_process(args.launcher):
            print(f'error: {err}', file=sys.stderr)
        return 2
    finally:
        release_distributed(finished)
    return 1 if outcome['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
