# Copyright (c) mmdysample contributors. All rights reserved.
"""Finding a model's DySample layers and capturing their inputs.

Forward pre-hooks record the feature map each upsampler receives and skip the
rest of the forward pass; :func:`choose_stage` picks the layer to draw.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..models.upsamplers import DySample
from .common import _check_index

def find_upsamplers(model: nn.Module) -> List[Tuple[str, DySample]]:
    """All :class:`~mmdysample.DySample` layers of ``model``, in module order.

    Args:
        model (nn.Module): A model, a neck, a head or a DySample layer.

    Returns:
        list[tuple[str, DySample]]: ``(name, layer)`` pairs as
        :meth:`~torch.nn.Module.named_modules` lists them (``''`` for
        ``model`` itself).

    Raises:
        ValueError: ``model`` contains no DySample layer.

    Example:
        >>> from mmdysample import DySample
        >>> find_upsamplers(DySample(8))[0][0]
        ''
    """
    layers = [(name, module) for name, module in model.named_modules()
              if isinstance(module, DySample)]
    if not layers:
        raise ValueError(
            f'{type(model).__name__} has no DySample layer to visualise; '
            'is its upsample_cfg a DySample variant (e.g. '
            "upsample_cfg=dict(type='DySample'))?")
    return layers


class _AllCaptured(Exception):
    """Raised by the hooks once every upsampler has seen its input."""


def collect_upsampler_inputs(model: nn.Module,
                             inputs: Any,
                             data_samples: Optional[Any] = None
                             ) -> Dict[str, Tensor]:
    """Run ``model`` on ``inputs`` and capture the input of each DySample.

    Forward pre-hooks record the first input each layer receives; once all
    have, the rest of the forward pass (e.g. the RPN and RoI heads of a
    detector) is skipped. The model is run under ``torch.no_grad`` and in its
    current train / eval mode (call ``model.eval()`` first for inference
    behaviour of batch norm and dropout).

    Args:
        model (nn.Module): The model. An mmengine ``BaseModel`` (it has a
            ``data_preprocessor``) is called as
            ``model(inputs, data_samples, mode='tensor')``, any other module
            as ``model(inputs)``.
        inputs (Any): Preprocessed inputs, e.g. ``(N, 3, H, W)`` images.
        data_samples (Any, optional): Data samples for an mmengine model.
            Defaults to None.

    Returns:
        dict[str, Tensor]: Detached inputs ``(N, C, h, w)`` keyed by layer
        name, in module order; layers that the forward pass did not call are
        missing.

    Raises:
        ValueError: ``model`` contains no DySample layer.

    Example:
        >>> import torch
        >>> from mmdysample import DySample
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), DySample(8))
        >>> feats = collect_upsampler_inputs(model, torch.rand(1, 3, 5, 7))
        >>> {name: tuple(x.shape) for name, x in feats.items()}
        {'1': (1, 8, 5, 7)}
    """
    layers = find_upsamplers(model)
    captured: Dict[str, Tensor] = {}

    def make_hook(name: str):

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if name not in captured:
                x = args[0] if args else kwargs['x']
                captured[name] = x.detach()
            if len(captured) == len(layers):
                raise _AllCaptured

        return hook

    handles = [
        layer.register_forward_pre_hook(make_hook(name), with_kwargs=True)
        for name, layer in layers
    ]
    try:
        with torch.no_grad():
            if hasattr(model, 'data_preprocessor'):
                model(inputs, data_samples, mode='tensor')
            else:
                model(inputs)
    except _AllCaptured:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name, _ in layers if name in captured}


def choose_stage(layers: Sequence[Tuple[str, DySample]],
                 inputs: Mapping[str, Tensor],
                 stage: Optional[int] = None) -> int:
    """Index into ``layers`` of the upsampler to draw.

    Args:
        layers (Sequence[tuple[str, DySample]]): As :func:`find_upsamplers`
            returns them.
        inputs (Mapping[str, Tensor]): As :func:`collect_upsampler_inputs`
            returns them.
        stage (int, optional): An index into ``layers``. Defaults to None,
            the finest stage: the layer with the largest output (the first
            one on ties), e.g. ``neck.upsample_modules.0`` of a
            :class:`~mmdysample.models.necks.DySampleFPN`.

    Returns:
        int: The stage index.

    Raises:
        ValueError: ``stage`` is out of range, or the forward pass did not
            reach that layer.
    """
    if stage is None:
        called = [i for i, (name, _) in enumerate(layers) if name in inputs]
        if not called:
            raise ValueError('the forward pass reached none of the DySample '
                             f'layers {[name for name, _ in layers]}')

        def output_area(i: int) -> int:
            name, layer = layers[i]
            h, w = inputs[name].shape[-2:]
            return h * w * layer.scale_factor**2

        return max(called, key=lambda i: (output_area(i), -i))
    stage = _check_index('stage', stage, len(layers),
                         f'the model has {len(layers)} DySample layers')
    if layers[stage][0] not in inputs:
        raise ValueError(f'the forward pass did not reach stage {stage} '
                         f'({layers[stage][0]!r})')
    return stage
