# Copyright (c) mmdysample contributors. All rights reserved.
"""A whole mmdet detector (image in, boxes out) through mmdeploy to ONNX
Runtime, and its detections checked against PyTorch's.

:func:`export_detector` checks the checkpoint against the model (the same
guard as ``tools/test.py``: a checkpoint that does not fit is an error,
not a model with random weights), then runs mmdeploy's ``torch2onnx`` with
a deploy config such as
``configs/_deploy_/detection_onnxruntime_dynamic-gridsample.py``, which
keeps DySample's ``grid_sample`` as ONNX's ``GridSample``.
:func:`custom_ops` lists the nodes of a graph outside ONNX's own domains
(none, for that deploy config). :func:`compare_detector` runs the exported
graph in a plain ``onnxruntime.InferenceSession`` (no mmdeploy ops library
loaded) and pairs its detections with the PyTorch model's on the same
images (:func:`~.detections.match_detections`).

mmdeploy 1.3.1, its last release, needs torch < 2.2 (on newer torch its
export fails; docs/user_guides/deployment.md has the errors).
"""
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config

from ..utils.checkpoint_fit import load_checked_checkpoint
from .detections import clip_boxes, match_detections

#: Domains of ONNX's own operators (the empty one is ``ai.onnx``).
STANDARD_DOMAINS = ('', 'ai.onnx')
DEFAULT_SAVE_FILE = 'end2end.onnx'


def require_mmdeploy():
    """mmdeploy, or an ImportError saying how to get it."""
    try:
        import mmdeploy
    except ImportError as err:
        raise ImportError(
            f'a whole-detector export needs mmdeploy ({err}); pip install '
            'mmdeploy==1.3.1 (with torch 2.1, see '
            'docs/user_guides/deployment.md)') from err
    return mmdeploy


def _load_configs(deploy_cfg: Union[str, Config],
                  model_cfg: Union[str, Config]):
    for name, value in (('deploy_cfg', deploy_cfg), ('model_cfg',
                                                     model_cfg)):
        if isinstance(value, str) and not osp.isfile(value):
            raise FileNotFoundError(f'{name} {value!r} does not exist')
        if not isinstance(value, (str, Config)):
            raise TypeError(f'{name} must be a path or an mmengine Config, '
                            f'got {type(value).__name__}')
    require_mmdeploy()
    from mmdeploy.utils import get_codebase, load_config
    deploy_cfg, model_cfg = load_config(deploy_cfg, model_cfg)
    codebase = get_codebase(deploy_cfg).value
    if codebase != 'mmdet':
        raise ValueError(f'deploy_cfg must be an mmdet deploy config, got '
                         f'codebase_config.type={codebase!r}')
    return deploy_cfg, model_cfg


def build_checked_detector(model_cfg: Union[str, Config],
                           checkpoint: str,
                           allow_partial: bool = False) -> torch.nn.Module:
    """The detector of ``model_cfg`` on the CPU in eval mode, with
    ``checkpoint`` loaded after the fit check."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    from mmdet.apis import init_detector
    model = init_detector(model_cfg, checkpoint=None, device='cpu')
    load_checked_checkpoint(model, checkpoint, allow_partial)
    return model.eval()


def export_detector(model_cfg: Union[str, Config],
                    checkpoint: str,
                    deploy_cfg: Union[str, Config],
                    work_dir: str,
                    image: Union[str, np.ndarray],
                    allow_partial: bool = False) -> str:
    """Export the detector with mmdeploy's ``torch2onnx``.

    Args:
        model_cfg (str | Config): The mmdet config.
        checkpoint (str): Its checkpoint.
        deploy_cfg (str | Config): The mmdeploy deploy config.
        work_dir (str): Where the graph is written.
        image (str | np.ndarray): The example image the export traces.
        allow_partial (bool): Load a checkpoint that does not fit anyway
            (see :func:`~mmdysample.utils.check_checkpoint_fit`).
            Defaults to False.

    Returns:
        str: The path of the ONNX graph.
    """
    deploy_cfg, model_cfg = _load_configs(deploy_cfg, model_cfg)
    # mmdeploy loads checkpoints leniently; check first, as our tools do.
    build_checked_detector(model_cfg, checkpoint, allow_partial)
    from mmdeploy.apis import torch2onnx
    from mmdeploy.utils import get_onnx_config
    save_file = get_onnx_config(deploy_cfg).get('save_file',
                                                DEFAULT_SAVE_FILE)
    torch2onnx(image, work_dir, save_file, deploy_cfg, model_cfg, checkpoint,
               device='cpu')
    return osp.join(work_dir, save_file)


def graph_ops(path: str) -> Dict[str, int]:
    """How many nodes of each operator the graph at ``path`` has, keyed
    ``op`` for ONNX's own and ``domain::op`` for any other domain."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    counts = Counter()
    for node in model.graph.node:
        domain = '' if node.domain in STANDARD_DOMAINS else node.domain
        counts[f'{domain}::{node.op_type}' if domain else node.op_type] += 1
    return dict(counts)


def custom_ops(path: str) -> List[str]:
    """The operators of the graph outside ONNX's own domains (those that
    need a backend's extra library)."""
    return sorted(op for op in graph_ops(path) if '::' in op)


def _scale_factor(data_sample) -> np.ndarray:
    """``(w, h, w, h)`` by which boxes in the network input are divided to
    be in the original image."""
    scale = data_sample.metainfo.get('scale_factor', (1.0, 1.0))
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    if scale.size == 2:
        scale = np.concatenate([scale, scale])
    return scale


def compare_detector(model_cfg: Union[str, Config],
                     checkpoint: str,
                     deploy_cfg: Union[str, Config],
                     onnx_path: str,
                     images: Sequence[str],
                     score_thr: float = 0.3,
                     box_tol: float = 1.0,
                     allow_partial: bool = False,
                     session=None,
                     clip_to_image: bool = False) -> List[Dict]:
    """The exported graph's detections against PyTorch's, per image.

    The graph runs in a plain ONNX Runtime session (CPU, no custom op
    library registered); its boxes are mapped back to the original image
    as mmdeploy's wrapper does (divided by the test pipeline's scale
    factor).

    Args:
        model_cfg, checkpoint, deploy_cfg: As :func:`export_detector`.
        onnx_path (str): The exported graph.
        images (Sequence[str]): Image paths.
        score_thr (float): Detections at least this score are compared.
            Defaults to 0.3.
        box_tol (float): Largest coordinate difference of a pair, in
            pixels of the original image. Defaults to 1.0.
        allow_partial (bool): See :func:`export_detector`.
        session (onnxruntime.InferenceSession, optional): A session of the
            graph to use instead of a new one.
        clip_to_image (bool): Clip the graph's boxes, once in the original
            image, to it. The graph sees only the padded input, so it clips
            to that; mmdet clips to the image before padding (the same
            boxes once rescaled). Defaults to False (boxes as mmdeploy's
            wrapper returns them).

    Returns:
        list[dict]: Per image, ``image`` and what
        :func:`~.detections.match_detections` returns.
    """
    if isinstance(images, str) or not len(images):
        raise ValueError('images must be a non-empty sequence of paths, '
                         f'got {images!r}')
    deploy_cfg, model_cfg = _load_configs(deploy_cfg, model_cfg)
    model = build_checked_detector(model_cfg, checkpoint, allow_partial)
    from mmdeploy.apis import build_task_processor
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    if session is None:
        import onnxruntime as ort
        session = ort.InferenceSession(
            onnx_path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    results = []
    for image in images:
        data, inputs = processor.create_input(
            image, data_preprocessor=model.data_preprocessor)
        sample = data['data_samples'][0]
        with torch.no_grad():
            ref = model.predict(inputs, data['data_samples'],
                                rescale=True)[0].pred_instances
        dets, labels = session.run(None, {input_name: inputs.numpy()})[:2]
        boxes = dets[0, :, :4].astype(np.float64) / _scale_factor(sample)
        if clip_to_image:
            boxes = clip_boxes(boxes, sample.ori_shape)
        result = match_detections(
            (ref.bboxes.numpy(), ref.scores.numpy(), ref.labels.numpy()),
            (boxes, dets[0, :, 4], labels[0]),
            score_thr=score_thr,
            box_tol=box_tol)
        results.append(dict(image=image, **result))
    return results


def summarize(results: Sequence[Dict]) -> Dict[str, Union[int, float,
                                                           bool, list]]:
    """Totals of :func:`compare_detector`'s per-image results."""
    return dict(
        images=len(results),
        compared=sum(r['compared'] for r in results),
        paired=sum(r['paired'] for r in results),
        max_box_diff=max((r['max_box_diff'] for r in results), default=0.0),
        max_score_diff=max((r['max_score_diff'] for r in results),
                           default=0.0),
        mismatched=[r['image'] for r in results if not r['same']],
        same=all(r['same'] for r in results))


def first_images(ann_file: str, img_dir: str,
                 num: Optional[int] = None) -> List[str]:
    """The paths of the first ``num`` images of a COCO annotation file."""
    import json
    with open(ann_file) as f:
        images = json.load(f)['images']
    names = [osp.join(img_dir, im['file_name']) for im in images]
    return names if num is None else names[:num]
