# Copyright (c) mmdysample contributors. All rights reserved.
"""Params and FLOPs of a config, and of its stock-upsampling baseline.

FLOPs come from mmengine's ``FlopAnalyzer`` (a traced forward; one
multiply-add counts as one FLOP, as in fvcore and the OpenMMLab model zoos).
It counts ``aten::grid_sampler`` as 4 FLOPs per output element, like
bilinear interpolation, so DySample's sampling is included. mmcv's CARAFE
op has no CPU kernel and is opaque to tracing: its layers are counted on
their CPU twin, :class:`~mmdysample.models.upsamplers.CARAFEUnfold`
(same parameters; the reassembly's ``k*k*C*sH*sW`` multiply-adds are a
``bmm``).
"""
import copy
import inspect
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config

from .model import build_model

#: Input (H, W) per host, matching the paper's tables: SegFormer-B1 FLOPs at
#: 512 x 512; detectors at mmdet's usual 1333 x 800 (padded to 32).
DEFAULT_SHAPES = {'mmdet': (800, 1344), 'mmseg': (512, 512)}


def baseline_config(cfg: Config) -> Config:
    """The same config with every ``upsample_cfg`` removed from the model.

    Our neck and head default to the stock behaviour of the host
    (``FPN``'s nearest, ``SegformerHead``'s bilinear), so the result is the
    stock model the paper compares against.
    """
    cfg = copy.deepcopy(cfg)

    def strip(node):
        if isinstance(node, dict):
            node.pop('upsample_cfg', None)
            for value in node.values():
                strip(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                strip(value)

    strip(cfg.model)
    return cfg


def carafe_to_unfold(model: nn.Module) -> nn.Module:
    """Replace every ``mmcv.ops.CARAFEPack`` in ``model`` by its twin.

    The :class:`~mmdysample.models.upsamplers.CARAFEUnfold` gets the same
    arguments and the layer's state dict, so parameters and outputs are
    unchanged, and it runs (and traces) on a CPU. In place.

    Args:
        model (nn.Module): Any model.

    Returns:
        nn.Module: ``model``.
    """
    try:
        from mmcv.ops import CARAFEPack
    except ImportError:
        return model
    from ..models.upsamplers import CARAFEUnfold
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, CARAFEPack):
                continue
            twin = CARAFEUnfold(child.channels, child.scale_factor,
                                child.up_kernel, child.up_group,
                                child.encoder_kernel, child.encoder_dilation,
                                child.compressed_channels)
            twin.load_state_dict(child.state_dict(), strict=True)
            setattr(parent, name, twin.train(child.training))
    return model


class _TensorMode(nn.Module):
    """Expose a detector / segmentor's ``mode='tensor'`` forward to tracing.

    A segmentor whose decode head needs the image metas even for its raw
    forward (mmseg's ``MaskFormerHead``: ``forward(x, batch_data_samples)``)
    runs backbone and head with metas of the input's size; the head then
    returns its per-query class scores and mask logits.
    """

    def __init__(self, model: nn.Module, scope: str) -> None:
        super().__init__()
        self.model = model
        self.scope = scope

    def forward(self, inputs: torch.Tensor):
        if self.scope == 'mmdet':
            from mmdet.structures import DetDataSample
            # Plain ints: under torch 2.1's tracer the sizes are tensors,
            # which the samples' metainfo cannot deep-copy.
            h, w = (int(v) for v in inputs.shape[-2:])
            meta = dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
            samples = [DetDataSample(metainfo=meta) for _ in inputs]
            return self.model(inputs, samples, mode='tensor')
        head = getattr(self.model, 'decode_head', None)
        if head is not None and 'batch_data_samples' in inspect.signature(
                head.forward).parameters:
            from mmseg.structures import SegDataSample
            # Plain ints: under torch 2.1's tracer the sizes are tensors,
            # which the samples' metainfo cannot deep-copy.
            h, w = (int(v) for v in inputs.shape[-2:])
            meta = dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                batch_input_shape=(h, w))
            samples = [SegDataSample(metainfo=meta) for _ in inputs]
            return head(self.model.extract_feat(inputs), samples)
        return self.model(inputs, mode='tensor')


def model_complexity(cfg: Config,
                     shape: Sequence[int] = None) -> Dict[str, float]:
    """Params and FLOPs of ``cfg.model`` on one ``(3, H, W)`` input."""
    scope = cfg.get('default_scope', 'mmdet')
    h, w = shape if shape is not None else DEFAULT_SHAPES.get(
        scope, (512, 512))
    model = carafe_to_unfold(build_model(cfg))
    inputs = torch.rand(1, 3, h, w)
    with torch.no_grad():
        analyzer = FlopAnalyzer(_TensorMode(model, scope), (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = analyzer.total()
    return dict(params=parameter_count(model)[''], flops=flops, shape=(h, w))


def complexity_delta(cfg: Config,
                     shape: Sequence[int] = None
                     ) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Complexity of ``cfg`` and of :func:`baseline_config` of it."""
    return model_complexity(cfg, shape), model_complexity(
        baseline_config(cfg), shape)
