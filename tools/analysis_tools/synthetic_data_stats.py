# Copyright (c) mmdysample contributors. All rights reserved.
"""How much a segmentation set asks of an upsampler, side by side.

Measures the ADE label maps of each dataset (a generated one, with its
``meta.json``, or any ADE20K-style root): pixels near a class boundary,
regions narrower than the output stride, classes, and the upsampling oracle
(ground truth averaged to stride 4 / 8, upsampled back nearest and
bilinear, scored in mIoU and bIoU). See
:mod:`mmdysample.datasets.synthetic.stats` for the definitions. Prints a
Markdown table, one column per dataset; ``--out`` also writes every number
(per-class oracle IoUs included) as JSON.

    python tools/misc/generate_synthetic_data.py --out data/synthetic
    python tools/misc/generate_synthetic_data.py --scenes fine \\
        --out data/synthetic_fine
    python tools/analysis_tools/synthetic_data_stats.py \\
        data/synthetic data/synthetic_fine --out work_dirs/data_stats.json
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import sys
from typing import Optional, Sequence

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../../..')))

from mmdysample.datasets.synthetic.stats import (  # noqa: E402
    dataset_stats, format_stats_table)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'data_roots', nargs='+', metavar='DATA_ROOT',
        help='generated datasets (e.g. data/synthetic) or ADE-style roots')
    parser.add_argument(
        '--splits', nargs='+', default=['training', 'validation'],
        help='label folders to read (default: training validation)')
    parser.add_argument(
        '--strides', nargs='+', type=int, default=[4, 8],
        help='output strides of the thin-region counts and the oracle '
        '(default: 4 8)')
    parser.add_argument(
        '--no-biou', action='store_true',
        help='score the oracle in mIoU only')
    parser.add_argument('--out', help='also write the results as JSON here')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure every dataset and print the table.

    Returns:
        int: Process exit status (2 on a bad dataset or argument).
    """
    args = parse_args(argv)
    results = {}
    try:
        for root in args.data_roots:
            stats = dataset_stats(root, splits=args.splits,
                                  strides=args.strides,
                                  boundary_iou=not args.no_biou)
            name = osp.basename(osp.normpath(root))
            if stats['scenes']:
                name = f'{name} ({stats["scenes"]})'
            if name in results:  # two roots of the same folder name
                name = root
            results[name] = stats
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(format_stats_table(results))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)
            f.write('\n')
        print(f'results: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
