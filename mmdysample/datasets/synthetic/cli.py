# Copyright (c) mmdysample contributors. All rights reserved.
"""The command line interface of the generator.

Run as ``python -m mmdysample.datasets.synthetic`` or
``tools/misc/generate_synthetic_data.py``.
"""
import argparse
import sys
from typing import Optional, Sequence

from .generate import (DEFAULT_IMG_SIZE, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL,
                       DEFAULT_OUT_DIRS, VALID_TASKS,
                       generate_synthetic_dataset)
from .scenes import SCENE_KINDS

__all__ = ['build_parser', 'main']


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """Return the argument parser of the command line interface.

    Args:
        prog (str, optional): Program name shown in ``--help``.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description='Generate the mmdysample synthetic shapes dataset '
        '(COCO instances, COCO panoptic and ADE20K-style semantic '
        'segmentation).')
    out_dirs = ', '.join(f'{path} for {name}'
                         for name, path in DEFAULT_OUT_DIRS.items())
    parser.add_argument(
        '--out', default=None,
        help=f'output root (default: {out_dirs} scenes)')
    parser.add_argument(
        '--num-train', type=int, default=DEFAULT_NUM_TRAIN,
        help=f'training images (default: {DEFAULT_NUM_TRAIN})')
    parser.add_argument(
        '--num-val', type=int, default=DEFAULT_NUM_VAL,
        help=f'validation images (default: {DEFAULT_NUM_VAL})')
    parser.add_argument(
        '--img-size', type=int, nargs='+', default=[DEFAULT_IMG_SIZE],
        metavar='S',
        help='image side, or HEIGHT WIDTH '
        f'(default: {DEFAULT_IMG_SIZE})')
    parser.add_argument(
        '--seed', type=int, default=0, help='base random seed (default: 0)')
    parser.add_argument(
        '--tasks', nargs='+', default=list(VALID_TASKS),
        choices=VALID_TASKS, help='formats to write (default: all)')
    kinds = '; '.join(f'{name}: {kind.description}'
                      for name, kind in SCENE_KINDS.items())
    parser.add_argument(
        '--scenes', default='default', choices=tuple(SCENE_KINDS),
        help=f'kind of scene ({kinds}; default: default)')
    parser.add_argument(
        '--force', action='store_true',
        help='regenerate even if the output is up to date')
    parser.add_argument(
        '--quiet', action='store_true', help='only print the summary')
    return parser


def main(argv: Optional[Sequence[str]] = None,
         prog: Optional[str] = None) -> int:
    """Command line entry point.

    Args:
        argv (Sequence[str], optional): Arguments without the program
            name; ``sys.argv[1:]`` when None.
        prog (str, optional): Program name shown in ``--help``.

    Returns:
        int: Process exit status (0 on success, 2 on invalid arguments).
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if len(args.img_size) > 2:
        parser.error('--img-size takes one value (square) or two values '
                     f'(HEIGHT WIDTH), got {args.img_size}')
    img_size = (args.img_size[0] if len(args.img_size) == 1 else tuple(
        args.img_size))
    try:
        result = generate_synthetic_dataset(
            out_dir=args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            img_size=img_size,
            seed=args.seed,
            tasks=args.tasks,
            force=args.force,
            verbose=not args.quiet,
            scenes=args.scenes)
    except (ValueError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    status = ('already up to date (skipped)'
              if result['skipped'] else 'generated')
    height, width = result['params']['img_size']
    print(f'Synthetic dataset {status}: {result["out_dir"]}')
    print(f'  image size {height}x{width}, seed {result["params"]["seed"]}, '
          f'{result["params"]["scenes"]} scenes, '
          f'tasks {", ".join(result["params"]["tasks"])}')
    for split, count in result['counts'].items():
        parts = [f'{count["images"]} images']
        if count.get('instances') is not None:
            parts.append(f'{count["instances"]} instances')
        if count.get('segments') is not None:
            parts.append(f'{count["segments"]} panoptic segments')
        print(f'  {split}: ' + ', '.join(parts))
    for key, path in result['paths'].items():
        print(f'  {key}: {path}')
    print(f'  time: {result["elapsed_s"]:.1f} s')
    return 0
