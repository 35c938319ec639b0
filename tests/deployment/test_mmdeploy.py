# Copyright (c) mmdysample contributors. All rights reserved.
"""The RTMDet head rewrite of mmdysample.deployment.mmdeploy_rewrites
against mmdet's own head: eagerly under mmdeploy's ``RewriterContext``, and
exported through mmdeploy's ONNX wrapper and run in ONNX Runtime.

mmdeploy is optional and works with torch 2.1 only (the torch 2.1 stack of
docs/get_started.md has it); elsewhere this file skips. The whole detector
through mmdeploy and ONNX Runtime is tests/tools/test_mmdeploy_*.py.
"""
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('mmdeploy')

from mmdeploy.codebase import import_codebase  # noqa: E402
from mmdeploy.core import RewriterContext  # noqa: E402
from mmdeploy.utils import Codebase  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402

import mmdysample.deployment.mmdeploy_rewrites  # noqa: E402,F401
from mmdysample.deployment import match_detections  # noqa: E402

# Every rewrite of mmdeploy's mmdet codebase registered, as in an export.
import_codebase(Codebase.MMDET)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEPLOY_CFG = osp.join(REPO, 'configs', '_deploy_',
                      'detection_onnxruntime_dynamic-gridsample.py')
#: (H, W) of the network input; not square, so that x and y differ.
IMG_SHAPE = (64, 96)
STRIDES = (8, 16, 32)
NUM_CLASSES = 3


def rtmdet_head(clip_border=True, **test_cfg):
    from mmdet.models.dense_heads import RTMDetHead
    cfg = dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.001,
        nms=dict(type='nms', iou_threshold=0.65),
        max_per_img=100)
    cfg.update(test_cfg)
    return RTMDetHead(
        num_classes=NUM_CLASSES,
        in_channels=8,
        feat_channels=8,
        stacked_convs=1,
        norm_cfg=dict(type='BN'),
        anchor_generator=dict(
            type='MlvlPointGenerator', offset=0, strides=list(STRIDES)),
        bbox_coder=dict(
            type='DistancePointBBoxCoder', clip_border=clip_border),
        test_cfg=ConfigDict(cfg)).eval()


def head_outputs(batch=2, seed=0, shape=IMG_SHAPE):
    """Raw head outputs of every level for an input of ``shape``: class
    logits and (left, top, right, bottom) distances in pixels, as
    ``RTMDetHead.forward`` returns them, many reaching past the border."""
    gen = torch.Generator().manual_seed(seed)
    cls_scores, bbox_preds = [], []
    for stride in STRIDES:
        h, w = shape[0] // stride, shape[1] // stride
        cls_scores.append(
            torch.randn(batch, NUM_CLASSES, h, w, generator=gen) * 2 - 1)
        bbox_preds.append(
            torch.rand(batch, 4, h, w, generator=gen) * 4 * stride)
    return cls_scores, bbox_preds


def mmdet_detections(head, cls_scores, bbox_preds):
    """mmdet's own post-processing, per image (no mmdeploy context)."""
    metas = [dict(img_shape=IMG_SHAPE)] * cls_scores[0].shape[0]
    results = head.predict_by_feat(
        cls_scores, bbox_preds, batch_img_metas=metas, rescale=False)
    return [(r.bboxes.numpy(), r.scores.numpy(), r.labels.numpy())
            for r in results]


def deployed_detections(head, cls_scores, bbox_preds, backend):
    """The rewritten post-processing, as in an export: ``img_shape`` is
    the input's shape as a tensor."""
    metas = [dict(img_shape=torch.tensor(IMG_SHAPE))]
    with RewriterContext(
            cfg=Config.fromfile(DEPLOY_CFG), backend=backend, opset=17):
        dets, labels = head.predict_by_feat(
            cls_scores, bbox_preds, batch_img_metas=metas)
    return [(d[:, :4].numpy(), d[:, 4].numpy(), lab.numpy())
            for d, lab in zip(dets, labels)]


def assert_same(reference, deployed, score_thr=0.001):
    for ref, dep in zip(reference, deployed):
        result = match_detections(
            ref, dep, score_thr=score_thr, box_tol=1e-4, score_tol=0)
        assert result['same'], result
        assert result['paired'] == result['compared'] == len(ref[1])


def test_rtmdet_detections_are_mmdets():
    head = rtmdet_head()
    outputs = head_outputs()
    reference = mmdet_detections(head, *outputs)
    assert_same(reference, deployed_detections(head, *outputs,
                                               'onnxruntime'))
    # The case of the rewrite: mmdet clips boxes to the image, and here
    # many reach past it.
    boxes = np.concatenate([ref[0] for ref in reference])
    h, w = IMG_SHAPE
    assert (boxes[:, 0] == 0).any() and (boxes[:, 1] == 0).any()
    assert (boxes[:, 2] == w).any() and (boxes[:, 3] == h).any()


def test_mmdeploys_own_rewrite_does_not_clip():
    """Why the rewrite exists: mmdeploy 1.3.1's RTMDetHead rewrite (the
    one other backends get) returns boxes past the image border."""
    head = rtmdet_head()
    outputs = head_outputs()
    own = deployed_detections(head, *outputs, 'default')
    boxes = np.concatenate([dep[0] for dep in own])
    assert boxes.min() < 0 and boxes[:, 2].max() > IMG_SHAPE[1]
    reference = mmdet_detections(head, *outputs)
    assert not all(
        match_detections(ref, dep, score_thr=0.001, box_tol=1e-4)['same']
        for ref, dep in zip(reference, own))


def test_unclipped_where_the_coder_does_not_clip():
    head = rtmdet_head(clip_border=False)
    outputs = head_outputs()
    reference = mmdet_detections(head, *outputs)
    assert np.concatenate([ref[0] for ref in reference]).min() < 0
    assert_same(reference,
                deployed_detections(head, *outputs, 'onnxruntime'))


def test_top_nms_pre_pairs_of_each_level():
    # 8 x 12 priors x 3 classes on the finest level: 5 pairs survive there,
    # a prior possibly under two classes, as in mmdet.
    head = rtmdet_head(nms_pre=5, score_thr=0.0)
    outputs = head_outputs(seed=1)
    reference = mmdet_detections(head, *outputs)
    assert all(len(ref[1]) <= 5 * len(STRIDES) for ref in reference)
    assert_same(reference,
                deployed_detections(head, *outputs, 'onnxruntime'), 0.0)


def test_empty_boxes_are_dropped():
    # Zero-width boxes (left = right = 0) scoring above all others: mmdet
    # drops them (min_bbox_size 0), and so must the rewrite.
    head = rtmdet_head()
    cls_scores, bbox_preds = head_outputs()
    bbox_preds[0][:, 0] = 0
    bbox_preds[0][:, 2] = 0
    cls_scores[0] += 10
    reference = mmdet_detections(head, cls_scores, bbox_preds)
    deployed = deployed_detections(head, cls_scores, bbox_preds,
                                   'onnxruntime')
    for ref in reference:
        assert (ref[0][:, 2] > ref[0][:, 0]).all()
    assert_same(reference, deployed)


def test_more_detections_than_max_per_img_keep_the_best():
    head = rtmdet_head(max_per_img=7)
    outputs = head_outputs()
    reference = mmdet_detections(head, *outputs)
    assert all(len(ref[1]) == 7 for ref in reference)
    assert_same(reference,
                deployed_detections(head, *outputs, 'onnxruntime'))


def test_score_factors_are_refused():
    head = rtmdet_head()
    cls_scores, bbox_preds = head_outputs()
    with RewriterContext(
            cfg=Config.fromfile(DEPLOY_CFG), backend='onnxruntime'):
        with pytest.raises(ValueError, match='score_factors'):
            head.predict_by_feat(
                cls_scores,
                bbox_preds,
                score_factors=cls_scores,
                batch_img_metas=[dict(img_shape=torch.tensor(IMG_SHAPE))])


class PostProcess(torch.nn.Module):
    """The head's post-processing alone, as mmdeploy exports it inside a
    detector: ``img_shape`` is the (dynamic) shape of the input image."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, image, *outputs):
        cls_scores, bbox_preds = outputs[:3], outputs[3:]
        metas = [dict(img_shape=torch._shape_as_tensor(image)[2:])]
        return self.head.predict_by_feat(
            list(cls_scores), list(bbox_preds), batch_img_metas=metas)


def test_exported_graph_clips_to_each_input_size(tmp_path):
    """Through torch.onnx.export and ONNX Runtime (TopK, Min / Max and
    NonMaxSuppression in the graph), at the export size and another."""
    import onnxruntime as ort
    head = rtmdet_head()
    image = torch.zeros(1, 3, *IMG_SHAPE)
    outputs = sum(head_outputs(batch=1), [])
    names = ['image'] + [f'cls{i}' for i in range(3)] + \
        [f'reg{i}' for i in range(3)]
    # mmdeploy's own export wrapper, as its torch2onnx calls it.
    from mmdeploy.apis.onnx import export
    export(
        PostProcess(head), (image, *outputs),
        str(tmp_path / 'post'),
        backend='onnxruntime',
        context_info=dict(deploy_cfg=Config.fromfile(DEPLOY_CFG)),
        input_names=names,
        output_names=['dets', 'labels'],
        opset_version=17,
        dynamic_axes={
            name: {
                2: f'{name}_h',
                3: f'{name}_w'
            }
            for name in names
        })
    session = ort.InferenceSession(
        str(tmp_path / 'post.onnx'), providers=['CPUExecutionProvider'])
    for seed, shape in enumerate((IMG_SHAPE, (96, 64))):
        image = np.zeros((1, 3, *shape), np.float32)
        cls_scores, bbox_preds = head_outputs(1, seed + 1, shape)
        feeds = dict(
            zip(names,
                [image] + [t.numpy() for t in cls_scores + bbox_preds]))
        dets, labels = session.run(None, feeds)
        (ref, ) = head.predict_by_feat(
            cls_scores,
            bbox_preds,
            batch_img_metas=[dict(img_shape=shape)],
            rescale=False)
        h, w = shape
        # Clipped to this input, not to the export's size.
        assert (ref.bboxes[:, 2] == w).any() and (ref.bboxes[:, 3] == h).any()
        result = match_detections(
            (ref.bboxes.numpy(), ref.scores.numpy(), ref.labels.numpy()),
            (dets[0, :, :4], dets[0, :, 4], labels[0]),
            score_thr=0.001,
            box_tol=1e-4,
            score_tol=0)
        assert result['same'], (shape, result)
        assert result['paired'] == len(ref)
