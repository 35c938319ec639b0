# Copyright (c) mmdysample contributors. All rights reserved.
"""Export an upsampler, or a detector / segmentor config, to ONNX.

Batch, height and width stay dynamic. A guided upsampler (FADE, SAPA-B,
IndexNet, A2U) gets its guide as the graph's second input. A config exports
backbone + neck (mmdet) or backbone + decode head logits (mmseg), for
inputs whose height and width are multiples of 32; SegFormer needs
``--dynamo``. A model that writes its input size into the graph (DepthFormer:
Swin's windows, the deformable attention's levels) exports for one size
with ``--static``. See :mod:`mmdysample.deployment.onnx`.

    python tools/deployment/export_onnx.py --layer DySample+ --channels 64 \\
        --out dysample.onnx --verify
    python tools/deployment/export_onnx.py --layer FADE --channels 64 \\
        --out fade.onnx --verify  # inputs: input, guide (N, C, 2H, 2W)
    python tools/deployment/export_onnx.py --config CONFIG \\
        [--checkpoint CKPT] --out model.onnx [--dynamo] --verify
    python tools/deployment/export_onnx.py --config DEPTH_CONFIG \
        --shape 480 640 --static --out depth.onnx --verify
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
# Not torch.onnx.OnnxExporterError: on torch 2.1 that name is the
# dynamo exporter's own class, not the base of the TorchScript exporter's.
from torch.onnx.errors import OnnxExporterError  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers the upsamplers)
from mmdysample.deployment import onnx as deploy  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.guide import guide_shape, needs_guide  # noqa: E402
from mmdysample.utils.checkpoint_fit import (  # noqa: E402
    ALLOW_PARTIAL_FLAG, CheckpointMismatchError)

#: Total stride a model's input size must be a multiple of.
MODEL_SIZE_DIVISOR = 32


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an upsampler or a model to ONNX with dynamic '
        'batch, height and width')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        '--layer', help='registered upsampler name, e.g. DySample-S+')
    source.add_argument('--config', help='mmdet / mmseg model config')
    parser.add_argument(
        '--channels', type=int, help='input channels of --layer')
    parser.add_argument(
        '--scale-factor', type=int, default=2, help='ratio of --layer')
    parser.add_argument('--checkpoint', help='weights for --config')
    parser.add_argument(
        ALLOW_PARTIAL_FLAG,
        action='store_true',
        help='export even when --checkpoint leaves model weights missing or '
        'shaped otherwise (logged as warnings)')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=(64, 64),
        metavar=('H', 'W'),
        help='example input size; a multiple of 32 for --config '
        '(default: 64 64)')
    parser.add_argument(
        '--batch', type=int, default=1, help='example batch (default: 1)')
    parser.add_argument(
        '--opset', type=int, default=17, help='ONNX opset (default: 17)')
    parser.add_argument(
        '--dynamo',
        action='store_true',
        help='use the torch.export-based exporter')
    parser.add_argument(
        '--static',
        action='store_true',
        help='export for --batch x --shape only, no dynamic axis (models '
        'whose code turns the input size into constants, e.g. DepthFormer)')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime with PyTorch at the export size and at '
        'another size (with --static: on two inputs of the export size)')
    args = parser.parse_args(argv)
    if args.layer is not None and args.channels is None:
        parser.error('--layer needs --channels')
    if args.layer is None and args.channels is not None:
        parser.error('--channels is for --layer')
    if args.checkpoint is not None and args.config is None:
        parser.error('--checkpoint is for --config')
    if args.allow_partial_checkpoint and args.checkpoint is None:
        parser.error(f'{ALLOW_PARTIAL_FLAG} is for --checkpoint')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        deploy.exporter_kwargs(args.dynamo)
    except RuntimeError as err:  # --dynamo on a torch without the exporter
        print(f'error: {err}', file=sys.stderr)
        return 1
    if args.layer is not None:
        module = build_upsampler(args.layer, args.channels,
                                 args.scale_factor).eval()
        shape = (args.batch, args.channels, *args.shape)
        size_divisor, what = 1, f'{args.layer} layer'
    else:
        try:
            module = deploy.build_export_model(args.config, args.checkpoint,
                                               args.allow_partial_checkpoint)
        except CheckpointMismatchError as err:
            print(f'error: {err}', file=sys.stderr)
            return 1
        shape = (args.batch, 3, *args.shape)
        size_divisor = MODEL_SIZE_DIVISOR
        what = f'{args.config}: {module.exported_part}'
    try:
        deploy.export_module(module, args.out, shape, args.opset,
                             args.dynamo, size_divisor, args.static)
    except OnnxExporterError as err:
        if args.dynamo:
            raise
        print(f'error: the TorchScript-based exporter cannot export {what}: '
              f'{str(err).splitlines()[0]}\nTry --dynamo (the torch.export-'
              'based exporter).', file=sys.stderr)
        return 1
    exporter = 'dynamo' if args.dynamo else 'torchscript'
    axes = (f'fixed input {tuple(shape)}'
            if args.static else 'dynamic batch/height/width')
    print(f'exported {what} to {args.out} (opset {args.opset}, {exporter}, '
          f'{axes})')
    guided = needs_guide(module)
    if guided:
        print(f'inputs: {deploy.INPUT_NAME} {shape}, {deploy.GUIDE_NAME} '
              f'{guide_shape(module, shape)} (the guide is '
              f'{module.scale_factor} times the size of the input)')
    if not args.verify:
        return 0
    shapes = [shape, deploy.other_shape(shape, size_divisor)]
    if args.static:
        shapes = [shape]
    try:
        results = deploy.compare_with_torch(module, args.out, shapes)
        if args.static:  # a second random input of the same size
            results += deploy.compare_with_torch(
                module, args.out, shapes, seed=1)
    except RuntimeError as err:
        print(f'FAILED: {err}')
        return 1
    worst = 0.0
    for checked, error in results:
        guide = (f' (guide {guide_shape(module, checked)})'
                 if guided else '')
        print(f'onnxruntime vs PyTorch at {checked}: max abs error '
              f'{error:.3g}{guide}')
        worst = max(worst, error)
    if worst > deploy.DEFAULT_ATOL:
        print(f'MISMATCH: above {deploy.DEFAULT_ATOL}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
