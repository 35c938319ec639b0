# Copyright (c) mmdysample contributors. All rights reserved.
"""Draw DySample's learned sampling points over an image (paper Fig. 7).

A model from a config (and a checkpoint), or a bare layer with random
weights::

    python tools/analysis_tools/visualize_offsets.py IMG \
        --config CONFIG [--checkpoint CKPT] [--stage I] [--out FILE.png]
    python tools/analysis_tools/visualize_offsets.py IMG \
        --layer DySample+ --channels 64 [--stride 8] [--out FILE.png]

Common options: ``--group G`` (default: all groups), ``--points N`` and
``--point-mode edge|grid``, ``--region X0 Y0 X1 Y1`` (image pixels, zoom),
``--feature pca|mean``. See :mod:`mmdysample.visualization.figure` for what
the figure shows.
"""
import argparse
import importlib.util
import os
import sys
import warnings

import cv2
from mmengine.config import DictAction

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../../..')))
# setuptools' notice about the pkg_resources that mmengine resolves
# mmdet::/mmseg:: bases with; nothing a user can act on.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                        UserWarning)
import mmdysample  # noqa: E402,F401 (registers the upsamplers)
from mmdysample import DySample, build_upsampler  # noqa: E402
from mmdysample.utils.checkpoint_fit import ALLOW_PARTIAL_FLAG  # noqa: E402
from mmdysample.visualization import (  # noqa: E402
    build_model_from_config, choose_stage, collect_upsampler_inputs,
    find_upsamplers, image_feature, prepare_image, randomize_offsets,
    visualize_offsets)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Draw DySample's sampling points over an image")
    parser.add_argument('img', help='image file')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--config', help='model config file')
    source.add_argument(
        '--layer',
        help='a bare upsampler by registered name (e.g. DySample, '
        'DySample-S+) with random weights')
    parser.add_argument('--checkpoint', help='checkpoint for --config')
    parser.add_argument(
        ALLOW_PARTIAL_FLAG,
        action='store_true',
        help='draw even when --checkpoint leaves model weights missing or '
        'shaped otherwise (logged as warnings)')
    parser.add_argument(
        '--channels', type=int, help='in_channels of the --layer')
    parser.add_argument(
        '--scale', type=int, default=2, help='scale_factor of the --layer')
    parser.add_argument(
        '--stride',
        type=int,
        default=8,
        help='image pixels per feature pixel for the --layer')
    parser.add_argument(
        '--seed', type=int, default=0, help='random weights of the --layer')
    parser.add_argument('--out', default='offsets.png', help='PNG to write')
    parser.add_argument(
        '--stage',
        type=int,
        help='index of the DySample layer in module order (default: the '
        'one with the largest output)')
    parser.add_argument(
        '--group', type=int, help='draw one group (default: all)')
    parser.add_argument(
        '--points',
        type=int,
        default=8,
        help='low-resolution points drawn on the whole image')
    parser.add_argument(
        '--point-mode',
        choices=('edge', 'grid'),
        default='edge',
        help='points on strong feature gradients or on a regular grid')
    parser.add_argument(
        '--region',
        type=float,
        nargs=4,
        metavar=('X0', 'Y0', 'X1', 'Y1'),
        help='zoom region in image pixels (default: around the strongest '
        'point)')
    parser.add_argument(
        '--feature',
        choices=('pca', 'mean'),
        default='pca',
        help='feature colouring: 3 principal components or channel mean')
    parser.add_argument('--device', default='cpu', help='model device')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    args = parser.parse_args(argv)
    if args.layer is not None and args.channels is None:
        parser.error('--layer needs --channels')
    if args.layer is None and args.channels is not None:
        parser.error('--channels only applies to --layer')
    if args.checkpoint is not None and args.config is None:
        parser.error('--checkpoint needs --config')
    if args.allow_partial_checkpoint and args.checkpoint is None:
        parser.error(f'{ALLOW_PARTIAL_FLAG} needs --checkpoint')
    return args


def from_layer(args):
    """A bare layer with random weights on a stand-in feature of the image."""
    image = cv2.imread(args.img, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'cannot read image {args.img!r}')
    image = image[..., ::-1].copy()  # BGR -> RGB
    layer = build_upsampler(args.layer, args.channels, args.scale)
    if not isinstance(layer, DySample):
        raise ValueError(f'--layer {args.layer!r} builds a '
                         f'{type(layer).__name__}, not a DySample upsampler')
    feat = image_feature(image, args.channels, args.stride, args.seed)
    if args.stage not in (None, 0):
        raise ValueError(f'stage={args.stage} is out of range: a bare layer '
                         'has 1 DySample layer, so valid values are 0..0')
    rms = randomize_offsets(layer, feat, seed=args.seed)
    note = (f'bare {args.layer} layer with RANDOM weights (offsets scaled to '
            f'rms {rms:.2f} px): untrained offsets are noise')
    return layer, feat, image, None, note


def from_model(args):
    """The chosen DySample layer of a model and its captured input."""
    model, cfg = build_model_from_config(args.config, args.checkpoint,
                                         args.cfg_options, args.device,
                                         args.allow_partial_checkpoint)
    layers = find_upsamplers(model)
    sample = prepare_image(model, cfg, args.img)
    feats = collect_upsampler_inputs(model, sample.inputs,
                                     sample.data_samples)
    stage = choose_stage(layers, feats, args.stage)
    for i, (name, layer) in enumerate(layers):
        shape = tuple(feats[name].shape) if name in feats else 'not called'
        mark = '*' if i == stage else ' '
        print(f'{mark} stage {i}: {name} input {shape}')
    name, layer = layers[stage]
    weights = args.checkpoint or 'no checkpoint: weights at initialisation'
    note = (f'{os.path.basename(args.config)} [{weights}], stage {stage} '
            f'({name})')
    return layer, feats[name], sample.image, sample.valid_shape, note


def main(argv=None):
    args = parse_args(argv)
    source = from_layer if args.layer is not None else from_model
    layer, feat, image, valid_shape, note = source(args)
    result = visualize_offsets(
        layer,
        feat,
        image,
        args.out,
        group=args.group,
        num_points=args.points,
        point_mode=args.point_mode,
        region=args.region,
        valid_shape=valid_shape,
        feature_mode=args.feature,
        title=note)
    print(note)
    print(f'learned offsets: rms {result.offset_rms:.4f}, max '
          f'{result.offset_max:.4f} input px; stride '
          f'{result.stride[0]:.3g}x{result.stride[1]:.3g} image px')
    print(f'points (row, col): {result.points}')
    print(f'saved {result.out_file}')
    return result


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
