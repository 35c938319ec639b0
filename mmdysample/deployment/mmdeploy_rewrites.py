# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdeploy on ONNX Runtime: ``grid_sample`` as ONNX's own ``GridSample``,
and detections as mmdet makes them.

mmdeploy 1.x replaces every ``aten::grid_sampler`` of an exported model by
its custom op ``mmdeploy::grid_sampler``, which runs only with the ops
library of its wheel loaded into the session (and, on TensorRT, with its
float32-only plugin). Since opset 16 ONNX has ``GridSample`` in its default
domain, and ONNX Runtime runs it; DySample (and every sampling-based
upsampler here) needs nothing else. This module registers, for the
``onnxruntime`` backend, the symbolic that PyTorch's own exporter uses at
opset 16. mmdeploy takes a backend's own rewriter before its default one,
so on other backends its rewrite stays as it is.

The second rewrite is of mmdet's ``RPNHead.predict_by_feat``. mmdeploy's
own runs one NMS over the proposals of all levels with a 0.05 score
threshold; mmdet runs it per level (``batched_nms`` with the level as the
class) with no threshold, so the proposals, and the boxes refined from
them, differ (measured on the built-in data: 198 of 247 detections above
0.3 within 1 px, docs/user_guides/deployment.md). Here each level's scores
go into a column of their own, so one multi-class NMS is a per-level NMS,
and boxes below ``min_bbox_size`` get score 0, which ONNX's
``NonMaxSuppression`` drops at threshold 0, as mmdet drops them.

The third is of mmdet's ``BBoxHead.predict_by_feat`` (the R-CNN stage).
mmdeploy's keeps, for each RoI, only the box regressed for its best class
and uses it for every class; mmdet keeps each class's own box, so a
detection of a RoI's second class differs in box or is suppressed
differently. Here every (RoI, class) box enters the multi-class NMS with
its score in its class's column.

The fourth is of mmdet's ``RTMDetHead.predict_by_feat`` (one-stage, RTMDet
and its subclasses). mmdeploy's own decodes the boxes without clipping them
to the image, keeps boxes of zero or negative size, caps each class at 200
and takes the 5000 best priors over all levels; mmdet clips to
``img_shape``, drops boxes of ``min_bbox_size`` or less and keeps the best
``nms_pre`` (prior, class) scores of each level. A box reaching past the
border then differs by as much as it reaches past (up to 4 px on the
built-in data), and the NMS, on other boxes, suppresses differently. Here
each step is mmdet's. The graph knows only its input, so it clips to the
input's shape: where the test pipeline pads the image (``img_shape``
smaller than the input), mmdet clips to the image before padding and the
graph to the padded input (docs/user_guides/deployment.md).

Import it from a deploy config (mmengine imports ``custom_imports`` when
mmdeploy loads the file), as ``configs/_deploy_/`` does::

    custom_imports = dict(
        imports=['mmdysample.deployment.mmdeploy_rewrites'],
        allow_failed_imports=False)

Needs mmdeploy (1.3.1 tested, on torch 2.1).
"""
import torch
import torch.nn.functional as F
from torch.onnx import symbolic_opset16

try:
    from mmdeploy.codebase.mmdet.deploy import (gather_topk,
                                                get_post_processing_params,
                                                pad_with_value_if_necessary)
    from mmdeploy.core import FUNCTION_REWRITER, SYMBOLIC_REWRITER
    from mmdeploy.mmcv.ops import multiclass_nms
    from mmdeploy.utils import get_ir_config, is_dynamic_shape
except ImportError as err:
    raise ImportError(
        f'{__name__} is a plugin of mmdeploy, which is not installed '
        f'({err}); pip install mmdeploy==1.3.1') from err

#: The opset in which GridSample entered ONNX's default domain.
GRID_SAMPLE_OPSET = 16


@SYMBOLIC_REWRITER.register_symbolic(
    'grid_sampler', is_pytorch=True, backend='onnxruntime')
def grid_sampler__onnxruntime(g, input, grid, interpolation_mode,
                              padding_mode, align_corners):
    """``aten::grid_sampler`` as the standard ONNX ``GridSample``."""
    ctx = SYMBOLIC_REWRITER.get_context()
    opset = get_ir_config(ctx.cfg).get('opset_version', 11)
    if opset < GRID_SAMPLE_OPSET:
        raise ValueError(
            'onnx_config.opset_version must be >= '
            f'{GRID_SAMPLE_OPSET} to export grid_sample as ONNX GridSample '
            f'(mmdysample.deployment.mmdeploy_rewrites), got {opset}')
    return symbolic_opset16.grid_sampler(g, input, grid, interpolation_mode,
                                         padding_mode, align_corners)


def _drop_small_boxes(bboxes, scores, min_size):
    """``scores`` with those of boxes not wider and taller than
    ``min_size`` set to 0, which ONNX's ``NonMaxSuppression`` drops, as
    mmdet drops the boxes (nothing dropped where ``min_size < 0``)."""
    if min_size < 0:
        return scores
    w = bboxes[..., 2] - bboxes[..., 0]
    h = bboxes[..., 3] - bboxes[..., 1]
    valid = (w > min_size) & (h > min_size)
    return scores * valid.unsqueeze(-1).to(scores.dtype)


def _nms_as_mmdet(bboxes, scores, cfg, deploy_cfg, score_thr):
    """A dense head's NMS as mmdet runs it: ``(B, N, 4)`` boxes, one
    ``(B, N, C)`` score column per class, each class on its own, scores
    above ``score_thr``, the best ``max_per_img`` kept. No per-class cap and
    no ``pre_top_k`` (a class never has more than ``max_per_img`` of the
    ``max_per_img`` best). Returns ``(dets (B, K, 5), labels (B, K))``."""
    post_params = get_post_processing_params(deploy_cfg)
    keep = cfg.get('max_per_img', post_params.keep_top_k)
    return multiclass_nms(
        bboxes,
        scores,
        max_output_boxes_per_class=keep,
        nms_type=cfg.nms.get('type'),
        iou_threshold=cfg.nms.get('iou_threshold',
                                  post_params.iou_threshold),
        score_threshold=score_thr,
        pre_top_k=-1,
        keep_top_k=keep)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat',
    backend='onnxruntime')
def rpn_head__predict_by_feat__per_level_nms(self,
                                             cls_scores,
                                             bbox_preds,
                                             score_factors=None,
                                             batch_img_metas=None,
                                             cfg=None,
                                             rescale=False,
                                             with_nms=True,
                                             **kwargs):
    """Proposals as mmdet's ``RPNHead`` makes them: the top ``nms_pre`` of
    each level, boxes of ``min_bbox_size`` or less dropped, NMS per level,
    the best ``max_per_img`` kept. Returns ``(dets (B, K, 5), levels (B,
    K))`` as mmdeploy's rewrite returns ``(dets, labels)``."""
    ctx = FUNCTION_REWRITER.get_context()
    cfg = self.test_cfg if cfg is None else cfg
    num_levels = len(cls_scores)
    batch_size = cls_scores[0].shape[0]
    mlvl_anchors = self.anchor_generator.grid_anchors(
        [score.shape[-2:] for score in cls_scores],
        device=cls_scores[0].device)
    static = not is_dynamic_shape(ctx.cfg)
    pre_topk = cfg.get('nms_pre', -1)
    dim = self.bbox_coder.encode_size
    mlvl_preds, mlvl_scores, mlvl_priors = [], [], []
    for level, (cls_score, bbox_pred, anchors) in enumerate(
            zip(cls_scores, bbox_preds, mlvl_anchors)):
        cls_score = cls_score.detach().permute(0, 2, 3, 1)
        if self.use_sigmoid_cls:
            scores = cls_score.reshape(batch_size, -1, 1).sigmoid()
        else:  # foreground is class 0 of two
            scores = cls_score.reshape(batch_size, -1, 2).softmax(-1)[...,
                                                                     :1]
        bbox_pred = bbox_pred.detach().permute(0, 2, 3,
                                               1).reshape(batch_size, -1, dim)
        anchors = (anchors.data if static else anchors).unsqueeze(0)
        # Padded entries score 0: the NMS below never keeps them.
        scores = pad_with_value_if_necessary(scores, 1, pre_topk, 0.)
        bbox_pred = pad_with_value_if_necessary(bbox_pred, 1, pre_topk)
        anchors = pad_with_value_if_necessary(anchors, 1, pre_topk)
        if pre_topk > 0:
            _, topk_inds = scores.squeeze(2).topk(pre_topk)
            bbox_pred, scores = gather_topk(
                bbox_pred,
                scores,
                inds=topk_inds,
                batch_size=batch_size,
                is_batched=True)
            anchors = gather_topk(
                anchors,
                inds=topk_inds,
                batch_size=batch_size,
                is_batched=False)
        # This level's column of (B, n, num_levels); the others are 0.
        column = scores.new_zeros(1, 1, num_levels)
        column[..., level] = 1
        mlvl_scores.append(scores * column)
        mlvl_preds.append(bbox_pred)
        mlvl_priors.append(anchors)

    bboxes = self.bbox_coder.decode(
        torch.cat(mlvl_priors, dim=1),
        torch.cat(mlvl_preds, dim=1),
        max_shape=batch_img_metas[0]['img_shape'])
    scores = _drop_small_boxes(bboxes, torch.cat(mlvl_scores, dim=1),
                               cfg.get('min_bbox_size', -1))
    if not with_nms:
        return bboxes, scores.sum(-1, keepdim=True)
    return _nms_as_mmdet(bboxes, scores, cfg, ctx.cfg, score_thr=0.0)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.predict_by_feat',
    backend='onnxruntime')
def bbox_head__predict_by_feat__per_class_boxes(self,
                                                rois,
                                                cls_scores,
                                                bbox_preds,
                                                batch_img_metas,
                                                rcnn_test_cfg=None,
                                                rescale=False):
    """Detections as mmdet's ``BBoxHead`` makes them: each class with the
    box regressed for it. Returns ``(dets (B, K, 5), labels (B, K))``."""
    from mmdet.structures.bbox import get_box_tensor
    ctx = FUNCTION_REWRITER.get_context()
    if rois.ndim != 3:
        raise ValueError('rois must be batched (B, N, 5) in an mmdeploy '
                         f'export, got shape {tuple(rois.shape)}')
    img_shape = batch_img_metas[0]['img_shape']
    if self.custom_cls_channels:
        scores = self.loss_cls.get_activation(cls_scores)
    else:
        scores = F.softmax(cls_scores, dim=-1)
    batch_size = scores.shape[0]
    num_classes = self.num_classes
    scores = scores[..., :num_classes]  # no background
    if bbox_preds is not None:
        bboxes = get_box_tensor(
            self.bbox_coder.decode(
                rois[..., 1:], bbox_preds, max_shape=img_shape))
    else:
        bboxes = rois[..., 1:].clone()
    dim = self.bbox_coder.encode_size
    if not self.reg_class_agnostic:
        # (B, N, C * dim) -> one box per (RoI, class), scored in its column.
        bboxes = bboxes.reshape(batch_size, -1, dim)
        eye = torch.eye(num_classes, dtype=scores.dtype, device=scores.device)
        scores = (scores.unsqueeze(-1) * eye).reshape(batch_size, -1,
                                                      num_classes)
    post_params = get_post_processing_params(ctx.cfg)
    return multiclass_nms(
        bboxes,
        scores,
        post_params.max_output_boxes_per_class,
        nms_type=rcnn_test_cfg.nms.get('type'),
        iou_threshold=rcnn_test_cfg.nms.get('iou_threshold',
                                            post_params.iou_threshold),
        score_threshold=rcnn_test_cfg.get('score_thr',
                                          post_params.score_threshold),
        pre_top_k=post_params.pre_top_k,
        keep_top_k=rcnn_test_cfg.get('max_per_img', post_params.keep_top_k))


def _clip_to_shape(bboxes, img_shape):
    """``(..., 4)`` xyxy boxes clamped into ``[0, W] x [0, H]``.

    ``img_shape`` is ``(H, W)``: ints, or in an export the input's shape
    as a tensor (mmdeploy's detector forward sets it), which stays dynamic.
    """
    if not isinstance(img_shape, torch.Tensor):
        img_shape = torch.tensor(img_shape[:2])
    hw = img_shape[:2].to(device=bboxes.device, dtype=bboxes.dtype)
    bound = torch.stack([hw[1], hw[0], hw[1], hw[0]])
    return torch.minimum(bboxes.clamp(min=0), bound)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.rtmdet_head.RTMDetHead.predict_by_feat',
    backend='onnxruntime')
def rtmdet_head__predict_by_feat__as_mmdet(self,
                                           cls_scores,
                                           bbox_preds,
                                           score_factors=None,
                                           batch_img_metas=None,
                                           cfg=None,
                                           rescale=False,
                                           with_nms=True):
    """Detections as mmdet's ``RTMDetHead`` makes them: the top ``nms_pre``
    (prior, class) scores of each level, boxes clipped to the image, boxes
    of ``min_bbox_size`` or less dropped, class-wise NMS, the best
    ``max_per_img`` kept. Returns ``(dets (B, K, 5), labels (B, K))``, or
    ``(bboxes (B, N, 4), scores (B, N, C))`` without NMS."""
    if score_factors is not None:
        raise ValueError('RTMDetHead.predict_by_feat takes no score_factors '
                         f'(got {len(score_factors)} levels of them)')
    ctx = FUNCTION_REWRITER.get_context()
    cfg = self.test_cfg if cfg is None else cfg
    batch_size = cls_scores[0].shape[0]
    mlvl_priors = self.prior_generator.grid_priors(
        [score.shape[-2:] for score in cls_scores],
        dtype=bbox_preds[0].dtype,
        device=bbox_preds[0].device)
    nms_pre = cfg.get('nms_pre', -1)
    mlvl_scores, mlvl_bboxes = [], []
    for cls_score, bbox_pred, points in zip(cls_scores, bbox_preds,
                                            mlvl_priors):
        scores = cls_score.permute(0, 2, 3, 1).reshape(
            batch_size, -1, self.cls_out_channels).sigmoid()
        if nms_pre > 0:
            # mmdet keeps the best nms_pre (prior, class) pairs of a level,
            # a prior possibly under several classes; here the others
            # score 0, which the NMS's score threshold drops.
            # (mmdeploy's topk rewrite caps k at the level's size.)
            flat = scores.reshape(batch_size, -1)
            kth = flat.topk(nms_pre, dim=1)[0][:, -1:]
            scores = (flat * (flat >= kth)).reshape(scores.shape)
        # RTMDet's distances are already in pixels (scaled by the stride).
        dist = bbox_pred.permute(0, 2, 3, 1).reshape(batch_size, -1, 4)
        mlvl_bboxes.append(
            torch.stack([
                points[:, 0] - dist[..., 0], points[:, 1] - dist[..., 1],
                points[:, 0] + dist[..., 2], points[:, 1] + dist[..., 3]
            ], -1))
        mlvl_scores.append(scores)
    bboxes = torch.cat(mlvl_bboxes, dim=1)
    scores = torch.cat(mlvl_scores, dim=1)
    if self.bbox_coder.clip_border:
        # As mmdet's DistancePointBBoxCoder does (to img_shape).
        bboxes = _clip_to_shape(bboxes, batch_img_metas[0]['img_shape'])
    scores = _drop_small_boxes(bboxes, scores, cfg.get('min_bbox_size', -1))
    if not with_nms:
        return bboxes, scores
    return _nms_as_mmdet(
        bboxes, scores, cfg, ctx.cfg, score_thr=cfg.get('score_thr', 0.0))
