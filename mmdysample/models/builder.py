# Copyright (c) mmdysample contributors. All rights reserved.
"""One place that turns an upsampler config into a layer.

Necks and heads know the channels and the ratio of each upsampling stage;
users only name the upsampler. :func:`build_upsampler` looks the name up in
the registry that :func:`mmcv.cnn.build_upsample_layer` reads (the mmengine
root ``MODELS``, seen from every scope) and fills in the arguments the
layer's signature asks for, so any registered upsampler works without a
table of names here.

Layers whose op has no CPU kernel (mmcv's CARAFE) get a forward pre-hook
that says so on a CPU input, instead of mmcv's error from its extension.
"""
import functools
import importlib
import inspect
from typing import Dict, List, Optional, Union

import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from .guide import needs_guide

UpsampleConfig = Union[str, Dict]


@functools.lru_cache(maxsize=None)
def _register_mmcv_upsamplers() -> None:
    """Import the mmcv modules that register their upsamplers.

    ``mmcv.cnn`` registers ``nearest``, ``bilinear``, ``deconv`` and
    ``pixel_shuffle``; ``mmcv.ops`` registers ``carafe`` and is absent from
    mmcv-lite builds.
    """
    for module in ('mmcv.cnn', 'mmcv.ops'):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def _lookup(layer_type):
    if not isinstance(layer_type, str):
        if callable(layer_type):
            return layer_type
        raise TypeError('upsample type must be a name or a callable, got '
                        f'{layer_type!r}')
    _register_mmcv_upsamplers()
    with MODELS.switch_scope_and_registry(None) as registry:
        builder = registry.get(layer_type)
    if builder is None:
        raise KeyError(
            f'upsampler {layer_type!r} is not registered; registered '
            f'upsamplers include {list_upsamplers()}. Did you forget '
            "custom_imports=dict(imports=['mmdysample'])?")
    return builder


@functools.lru_cache(maxsize=None)
def _cuda_only_layers() -> tuple:
    """Registered upsampler classes whose op runs on CUDA only."""
    try:
        from mmcv.ops import CARAFEPack
    except ImportError:  # mmcv-lite: no CARAFE at all
        return ()
    return (CARAFEPack, )


def _refuse_cpu_input(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook of a CUDA-only upsampler: a CPU input is an error."""
    x = args[0] if args else None
    if isinstance(x, Tensor) and x.device.type == 'cpu':
        raise NotImplementedError(
            f'{type(module).__name__} (upsampler type \'carafe\') runs '
            "mmcv's CARAFE op, which has no CPU kernel; got an input on "
            f'the CPU of shape {tuple(x.shape)}. Run the model on a CUDA '
            'device. To compute the same function on a CPU (e.g. for '
            "training), use upsample_cfg=dict(type='CARAFEUnfold'), whose "
            'parameters and state dict are those of CARAFEPack.')


def upsampler_type(cfg: UpsampleConfig):
    """The class (or callable) that an upsampler name or config builds.

    Example:
        >>> import mmdysample  # noqa: F401 (registers the upsamplers)
        >>> from mmdysample.models.guide import needs_guide
        >>> needs_guide(upsampler_type('FADE'))
        True
        >>> needs_guide(upsampler_type(dict(type='DySample-S')))
        False
    """
    if isinstance(cfg, str):
        return _lookup(cfg)
    if not isinstance(cfg, dict):
        raise TypeError('upsample_cfg must be a str or a dict, got '
                        f'{type(cfg).__name__}: {cfg!r}')
    if 'type' not in cfg:
        raise KeyError(f'upsample_cfg must contain the key "type", got {cfg}')
    return _lookup(cfg['type'])


def list_upsamplers(guided: Optional[bool] = None) -> List[str]:
    """Registered names (root registry) whose layer takes ``scale_factor``.

    Transposed convolutions (``'deconv'``) upsample through ``stride`` and
    are not listed, but :func:`build_upsampler` builds them too.

    Args:
        guided (bool, optional): True: only the upsamplers that read a guide
            (:func:`~mmdysample.models.guide.needs_guide`); False: only the
            others. Defaults to None: all.
    """
    _register_mmcv_upsamplers()
    names = []
    for name, obj in MODELS.module_dict.items():
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        if 'scale_factor' not in params:
            continue
        if guided is None or needs_guide(obj) == guided:
            names.append(name)
    return sorted(names)


def build_upsampler(cfg: UpsampleConfig,
                    in_channels: int,
                    scale_factor: int = 2,
                    guide_channels: Optional[int] = None) -> nn.Module:
    """Build a channel-preserving upsampler from a name or a config dict.

    The arguments a layer's signature asks for are filled in: ``in_channels``
    / ``channels`` / ``out_channels`` with ``in_channels``, ``scale_factor``
    with ``scale_factor``, ``upsample_kernel`` with 3 (pixel shuffle), and for
    transposed convolutions ``stride=s`` and, unless ``kernel_size`` is
    given, ``kernel_size=3, padding=1, output_padding=s-1`` (the paper's
    deconv setting, exactly ``s`` times the size); ``guide_channels``, when
    given, for a layer that reads a guide
    (:func:`~mmdysample.models.guide.needs_guide`). ``nn.Upsample`` entries
    (``'nearest'``, ``'bilinear'``) get their mode from the name, and
    ``align_corners=False`` for ``'bilinear'``.
    Anything in ``cfg`` overrides these. A layer whose op has no CPU kernel
    (mmcv's ``'carafe'``) raises ``NotImplementedError`` saying so when it
    is called on a CPU tensor.

    Args:
        cfg (str | dict): An upsampler name such as ``'DySample+'`` or a
            dict with ``type`` and extra arguments.
        in_channels (int): Channels of the feature map to upsample.
        scale_factor (int): Upsampling ratio. Defaults to 2.
        guide_channels (int, optional): Channels of the guide the host
            passes to an upsampler that reads one; ignored for the others.
            Defaults to None: the layer's default (``in_channels``).

    Returns:
        nn.Module: A layer mapping ``(N, C, H, W) -> (N, C, sH, sW)``.

    Example:
        >>> import torch
        >>> import mmdysample  # noqa: F401 (registers the DySample family)
        >>> from mmdysample.models import build_upsampler
        >>> layer = build_upsampler('DySample-S+', in_channels=32)
        >>> layer(torch.rand(1, 32, 5, 7)).shape
        torch.Size([1, 32, 10, 14])
        >>> build_upsampler(dict(type='bilinear'), 32)(
        ...     torch.rand(1, 32, 5, 7)).shape
        torch.Size([1, 32, 10, 14])
    """
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict):
        raise TypeError('upsample_cfg must be a str or a dict, got '
                        f'{type(cfg).__name__}: {cfg!r}')
    if 'type' not in cfg:
        raise KeyError(f'upsample_cfg must contain the key "type", got {cfg}')
    cfg = dict(cfg)
    layer_type = cfg.pop('type')
    builder = _lookup(layer_type)

    if builder is nn.Upsample:
        mode = cfg.pop('mode', layer_type)
        kwargs = dict(scale_factor=scale_factor, mode=mode)
        if mode in ('linear', 'bilinear', 'bicubic', 'trilinear'):
            kwargs['align_corners'] = False
        return nn.Upsample(**{**kwargs, **cfg})

    params = inspect.signature(builder).parameters
    kwargs = {}
    for name in ('in_channels', 'channels', 'out_channels'):
        if name in params:
            kwargs[name] = in_channels
    if 'scale_factor' in params:
        kwargs['scale_factor'] = scale_factor
    if (guide_channels is not None and needs_guide(builder)
            and 'guide_channels' in params):
        kwargs['guide_channels'] = guide_channels
    if 'upsample_kernel' in params:
        kwargs['upsample_kernel'] = 3
    if ('stride' in params and 'kernel_size' in params
            and 'scale_factor' not in params):
        kwargs['stride'] = scale_factor
        if 'kernel_size' not in cfg:
            kwargs.update(
                kernel_size=3, padding=1, output_padding=scale_factor - 1)
    layer = builder(**{**kwargs, **cfg})
    if isinstance(layer, _cuda_only_layers()):
        layer.register_forward_pre_hook(_refuse_cpu_input)
    return layer
