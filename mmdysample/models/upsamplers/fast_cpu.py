# Copyright (c) mmdysample contributors. All rights reserved.
"""The fused CPU kernel behind :func:`~.sampling.dysample_sample`.

``csrc/dysample_cpu.cpp`` is compiled with ``torch.utils.cpp_extension`` the
first time it is needed (about 30 s on 2 cores, announced by one log line;
the build is cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``). Where it cannot be built (no C++ compiler,
no ninja) or is switched off with ``MMDYSAMPLE_FAST_CPU=0``,
:func:`available` says so once, with the reason, and callers use the
``grid_sample`` formulation, which computes the same function.

Besides the plain contract of :func:`dysample_sample_cpu` (offsets in, as
:func:`~.sampling.dysample_sample` takes them), :func:`scoped_sample_cpu`
takes the layer's raw projection and applies the scope factors and the
initial positions inside the kernel (paper eq. 4 and 5), so those
element-wise steps allocate no tensors of their own.
"""
import glob
import logging
import os
import os.path as osp
import warnings
from typing import Optional

import torch
from mmengine.logging import print_log
from torch import Tensor
from torch.autograd.function import once_differentiable

_SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc',
                   'dysample_cpu.cpp')
_NAME = 'mmdysample_dysample_cpu'
_ENV = 'MMDYSAMPLE_FAST_CPU'
_module = None
_failure: Optional[str] = None


def _cached_build() -> Optional[str]:
    """The build folder, and whether it holds a build newer than the source.

    Returns:
        str or None: The folder where torch builds (or finds) the kernel
        when no build there is newer than the C++ source, else None.
    """
    from torch.utils.cpp_extension import _get_build_directory
    folder = _get_build_directory(_NAME, verbose=False)
    source_time = osp.getmtime(_SOURCE)
    builds = glob.glob(osp.join(folder, '*.so'))
    if any(osp.getmtime(b) >= source_time for b in builds):
        return None
    return folder


def _load():
    global _module, _failure
    if _module is not None or _failure is not None:
        return _module
    try:
        from torch.utils.cpp_extension import load
        folder = _cached_build()
        if folder is not None:
            print_log(
                'mmdysample: compiling the fused CPU kernel of DySample '
                '(once; about 30 s on 2 cores), cached in '
                f'{folder}', logger='current', level=logging.INFO)
        _module = load(
            name=_NAME,
            sources=[_SOURCE],
            extra_cflags=['-O3', '-fopenmp'],
            extra_ldflags=['-fopenmp'],
            verbose=False)
    except Exception as err:  # no compiler, no ninja, read-only cache, ...
        _failure = f'{type(err).__name__}: {err}'.splitlines()[0]
        warnings.warn('mmdysample: the fused CPU kernel could not be built '
                      f'({_failure}); using grid_sample instead')
    return _module


def enabled() -> bool:
    """False when ``MMDYSAMPLE_FAST_CPU=0`` switches the kernel off."""
    return os.environ.get(_ENV, '1') != '0'


def available() -> bool:
    """Whether the kernel is switched on and built (building it if needed)."""
    return enabled() and _load() is not None


class DySampleCPUFunction(torch.autograd.Function):
    """Autograd wrapper: gradients for ``x`` and ``offset``."""

    @staticmethod
    def forward(ctx, x: Tensor, offset: Tensor, init: Tensor, scale: float,
                dyscope: bool, scale_factor: int, groups: int) -> Tensor:
        ctx.save_for_backward(x, offset, init)
        ctx.args = (scale, dyscope, scale_factor, groups)
        return _module.forward(x, offset, init, *ctx.args)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, offset, init = ctx.saved_tensors
        need_x, need_offset = ctx.needs_input_grad[:2]
        grad_x, grad_offset = _module.backward(grad_out.contiguous(), x,
                                               offset, init, *ctx.args,
                                               need_x, need_offset)
        return (grad_x if need_x else None,
                grad_offset if need_offset else None) + (None, ) * 5


def dysample_sample_cpu(x: Tensor, offset: Tensor, scale_factor: int,
                        groups: int) -> Tensor:
    """The fused kernel; same contract as ``dysample_sample``.

    ``x`` and ``offset`` must be CPU tensors of one floating dtype (float32 or
    float64); both are made contiguous (NCHW).
    """
    return DySampleCPUFunction.apply(x.contiguous(), offset.contiguous(),
                                     x.new_empty(0), 1.0, False,
                                     scale_factor, groups)


def scoped_sample_cpu(x: Tensor, raw: Tensor, scale_factor: int,
                      groups: int, init_pos: Tensor, scope_factor: float,
                      dyscope: bool) -> Tensor:
    """Sample ``x`` at offsets scoped inside the kernel.

    The offsets are ``raw * scope_factor + init_pos`` (paper eq. 4) or, with
    ``dyscope``, ``raw[:, :k] * raw[:, k:] * 2 * scope_factor + init_pos``
    with ``k = 2 * g * s**2`` (eq. 5): the layer's projection, and its
    dynamic scope factors ``sigmoid(logits)`` stacked on channels after it.

    Args:
        x (Tensor): ``(N, C, H, W)`` features, float32 or float64.
        raw (Tensor): ``(N, k, H, W)``, or ``(N, 2 * k, H, W)`` with
            ``dyscope``, in the dtype of ``x``; gets a gradient.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.
        init_pos (Tensor): ``k`` initial positions (any shape with ``k``
            elements); no gradient.
        scope_factor (float): The static scope factor (``0.25`` in the
            paper); ``2 * scope_factor`` bounds the dynamic one.
        dyscope (bool): Whether ``raw`` holds scope factors too.

    Returns:
        Tensor: ``(N, C, s * H, s * W)``.
    """
    scale = 2 * scope_factor if dyscope else scope_factor
    init = init_pos.detach().to(x.dtype).reshape(-1).contiguous()
    return DySampleCPUFunction.apply(x.contiguous(), raw.contiguous(), init,
                                     float(scale), dyscope, scale_factor,
                                     groups)
