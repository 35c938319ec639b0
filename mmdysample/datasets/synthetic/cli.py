# Copyright (c) mmdysample contributors. All rights reserved.
"""The command line interface of the generator.

Run as ``python -m mmdysample.datasets.synthetic`` or
``tools/misc/generate_synthetic_data.py``.
"""
import argparse
import sys
from typing import Dict, List, Optional, Sequence

from .generate import (DEPTH_SCENES, KIND_DEFAULTS, VALID_TASKS,
                       generate_synthetic_dataset)
from .rooms import ROOMS_DESCRIPTION
from .scenes import SCENE_KINDS

__all__ = ['build_parser', 'main']


def _per_kind(field: str) -> str:
    """A field of :data:`KIND_DEFAULTS` for ``--help``: ``'400 for
    default/fine, 96 for depth'``."""
    kinds: Dict[str, List[str]] = {}
    for name, defaults in KIND_DEFAULTS.items():
        value = getattr(defaults, field)
        if isinstance(value, (tuple, list)):
            value = ' '.join(map(str, value))
        kinds.setdefault(str(value), []).append(name)
    return ', '.join(f'{value} for {"/".join(names)}'
                     for value, names in kinds.items())


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """Return the argument parser of the command line interface.

    Args:
        prog (str, optional): Program name shown in ``--help``.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description='Generate the mmdysample synthetic datasets: shapes '
        'scenes as COCO instances, COCO panoptic and ADE20K-style semantic '
        'segmentation, or rooms with metric depth in the NYU Depth V2 '
        'layout (--scenes depth). Defaults depend on --scenes.')
    parser.add_argument(
        '--out', default=None,
        help=f'output root (default: {_per_kind("out_dir")})')
    parser.add_argument(
        '--num-train', type=int, default=None,
        help=f'training images (default: {_per_kind("num_train")})')
    parser.add_argument(
        '--num-val', type=int, default=None,
        help='validation images, the test split of the NYU layout '
        f'(default: {_per_kind("num_val")})')
    parser.add_argument(
        '--img-size', type=int, nargs='+', default=None, metavar='S',
        help='image side, or HEIGHT WIDTH '
        f'(default: {_per_kind("img_size")})')
    parser.add_argument(
        '--seed', type=int, default=0, help='base random seed (default: 0)')
    parser.add_argument(
        '--tasks', nargs='+', default=None, choices=VALID_TASKS,
        help=f'formats to write (default: {_per_kind("tasks")})')
    kinds = [f'{name}: {kind.description}'
             for name, kind in SCENE_KINDS.items()]
    kinds.append(f'{DEPTH_SCENES}: {ROOMS_DESCRIPTION}')
    parser.add_argument(
        '--scenes', default='default', choices=tuple(KIND_DEFAULTS),
        help=f'kind of scene ({"; ".join(kinds)}; default: default)')
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
    img_size = args.img_size
    if img_size is not None:
        if len(img_size) > 2:
            parser.error('--img-size takes one value (square) or two values '
                         f'(HEIGHT WIDTH), got {img_size}')
        img_size = img_size[0] if len(img_size) == 1 else tuple(img_size)
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
