# Copyright (c) mmdysample contributors. All rights reserved.
"""Print a config's Params and FLOPs and the delta against its baseline.

The baseline is the same model with the host's stock upsampling (every
``upsample_cfg`` removed: nearest in mmdet's FPN, bilinear in SegFormer).

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
"""
import argparse
import importlib.util
import os
import sys
import warnings

from mmengine.config import Config, DictAction

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../../..')))
# setuptools' notice about the pkg_resources that mmengine resolves
# mmdet::/mmseg:: bases with; nothing a user can act on.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                        UserWarning)
import mmdysample  # noqa: E402,F401
from mmdysample.utils.complexity import complexity_delta  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Params / FLOPs of a config and its stock baseline')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size (default: 800 1344 for mmdet, 512 512 for mmseg)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    return parser.parse_args(argv)


def fmt(value: float) -> str:
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.3f}{unit}'
    return f'{value:.0f}'


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    ours, base = complexity_delta(cfg, args.shape)
    h, w = ours['shape']
    print(f'config : {args.config}')
    print(f'input  : 1 x 3 x {h} x {w}')
    print(f"{'':9}{'model':>12}{'baseline':>12}{'delta':>12}")
    for key in ('params', 'flops'):
        delta = ours[key] - base[key]
        sign = '+' if delta >= 0 else '-'
        print(f'{key:9}{fmt(ours[key]):>12}{fmt(base[key]):>12}'
              f'{sign + fmt(abs(delta)):>12}  ({int(delta):+,d})')
    return ours, base


if __name__ == '__main__':
    main()
