# Copyright (c) mmdysample contributors. All rights reserved.
"""Deploy a whole mmdet detector with mmdeploy to ONNX Runtime and check
its detections against PyTorch's.

    python tools/deployment/mmdeploy_detector.py CONFIG CHECKPOINT \\
        --work-dir work_dirs/deploy [--deploy-cfg DEPLOY_CFG] \\
        [--images 10] [--score-thr 0.3] [--box-tol 1.0] [--clip-to-image]

Exports with mmdeploy's ``torch2onnx`` (the default deploy config keeps
DySample's ``grid_sample`` as ONNX ``GridSample``), lists any operator
outside ONNX's own domains (an error: the graph would need mmdeploy's ops
library), then runs the graph in a plain ONNX Runtime session on the first
``--images`` images of the config's test set and pairs its detections with
PyTorch's. Exit status 0 when every image has the same detections above
``--score-thr`` with boxes within ``--box-tol`` pixels. Needs mmdeploy
1.3.1 with torch 2.1 (docs/user_guides/deployment.md).
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import sys
import warnings

if importlib.util.find_spec('mmdysample') is None:  # run from a checkout
    sys.path.insert(0, os.path.abspath(os.path.join(__file__, '../../..')))
warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                        UserWarning)

from mmengine.config import Config, DictAction  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers the upsamplers)
from mmdysample.deployment import mmdeploy_detector as deploy  # noqa: E402
from mmdysample.utils.checkpoint_fit import (  # noqa: E402
    ALLOW_PARTIAL_FLAG, CheckpointMismatchError)

DEFAULT_DEPLOY_CFG = osp.join(
    osp.dirname(osp.abspath(__file__)), '..', '..', 'configs', '_deploy_',
    'detection_onnxruntime_dynamic-gridsample.py')


def positive_int(value):
    value = int(value)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a detector with mmdeploy to ONNX Runtime and '
        'compare its detections with PyTorch')
    parser.add_argument('config', help='mmdet config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--work-dir', required=True,
                        help='where end2end.onnx and report.json go')
    parser.add_argument('--deploy-cfg', default=DEFAULT_DEPLOY_CFG,
                        help='mmdeploy deploy config (default: '
                        'configs/_deploy_/detection_onnxruntime_dynamic-'
                        'gridsample.py)')
    parser.add_argument('--images', type=positive_int, default=10,
                        help='how many test images to compare (default 10)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--box-tol', type=float, default=1.0,
                        help='largest box coordinate difference in pixels')
    parser.add_argument(
        '--clip-to-image', action='store_true',
        help='clip the graph\'s boxes to the original image before '
        'pairing (the graph clips to its padded input, mmdet to the image '
        'before padding; see docs/user_guides/deployment.md)')
    parser.add_argument(ALLOW_PARTIAL_FLAG, action='store_true',
                        help='load a checkpoint that does not fit anyway')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the model config, as tools/test.py')
    return parser.parse_args(argv)


def dataset_images(cfg: Config, num: int):
    """The first ``num`` image paths of the config's test set."""
    dataset = cfg.test_dataloader.dataset
    root = dataset.get('data_root', '')
    ann = osp.join(root, dataset.ann_file)
    img_dir = osp.join(root, dataset.get('data_prefix', {}).get('img', ''))
    return deploy.first_images(ann, img_dir, num)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        images = dataset_images(cfg, args.images)
        onnx_path = deploy.export_detector(
            cfg, args.checkpoint, args.deploy_cfg, args.work_dir,
            images[0], args.allow_partial_checkpoint)
    except (CheckpointMismatchError, FileNotFoundError, ImportError,
            ValueError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    ops = deploy.graph_ops(onnx_path)
    custom = deploy.custom_ops(onnx_path)
    print(f'exported {args.config} to {onnx_path}: '
          f'{sum(ops.values())} nodes, GridSample x{ops.get("GridSample", 0)}'
          f', RoiAlign x{ops.get("RoiAlign", 0)}, NonMaxSuppression '
          f'x{ops.get("NonMaxSuppression", 0)}')
    if custom:
        print(f'FAILED: operators outside ONNX\'s domains: {custom} (they '
              'need mmdeploy\'s ops library)')
        return 1
    results = deploy.compare_detector(
        cfg, args.checkpoint, args.deploy_cfg, onnx_path, images,
        args.score_thr, args.box_tol, args.allow_partial_checkpoint,
        clip_to_image=args.clip_to_image)
    summary = deploy.summarize(results)
    report = dict(config=args.config, checkpoint=args.checkpoint,
                  deploy_cfg=args.deploy_cfg, onnx=onnx_path, ops=ops,
                  score_thr=args.score_thr, box_tol=args.box_tol,
                  clip_to_image=args.clip_to_image, summary=summary,
                  images=results)
    with open(osp.join(args.work_dir, 'report.json'), 'w') as f:
        json.dump(report, f, indent=1)
    for r in results:
        print(f'{osp.basename(r["image"])}: {r["paired"]} of '
              f'{r["compared"]} detections >= {args.score_thr} paired, max '
              f'box diff {r["max_box_diff"]:.3g} px'
              + ('' if r['same'] else ' MISMATCH'))
    print(f'{summary["images"]} images: {summary["paired"]} of '
          f'{summary["compared"]} detections paired, max box diff '
          f'{summary["max_box_diff"]:.3g} px, max score diff '
          f'{summary["max_score_diff"]:.3g}')
    if not summary['same']:
        print(f'MISMATCH on {summary["mismatched"]}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
