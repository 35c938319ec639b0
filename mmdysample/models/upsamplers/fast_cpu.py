# Copyright (c) mmdysample contributors. All rights reserved.
"""The fused CPU kernel behind :func:`~.sampling.dysample_sample`.

``csrc/dysample_cpu.cpp`` is compiled with ``torch.utils.cpp_extension`` the
first time it is needed (about 20 s on 2 cores; the build is cached under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``). Where it
cannot be built (no C++ compiler, no ninja) or is switched off with
``MMDYSAMPLE_FAST_CPU=0``, :func:`available` says so once, with the reason,
and callers use the ``grid_sample`` formulation, which computes the same
function.
"""
import os
import os.path as osp
import warnings
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc',
                   'dysample_cpu.cpp')
_ENV = 'MMDYSAMPLE_FAST_CPU'
_module = None
_failure: Optional[str] = None


def _load():
    global _module, _failure
    if _module is not None or _failure is not None:
        return _module
    try:
        from torch.utils.cpp_extension import load
        _module = load(
            name='mmdysample_dysample_cpu',
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
    def forward(ctx, x: Tensor, offset: Tensor, scale_factor: int,
                groups: int) -> Tensor:
        ctx.save_for_backward(x, offset)
        ctx.scale_factor = scale_factor
        ctx.groups = groups
        return _module.forward(x, offset, scale_factor, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, offset = ctx.saved_tensors
        need_x, need_offset = ctx.needs_input_grad[:2]
        grad_x, grad_offset = _module.backward(grad_out.contiguous(), x,
                                               offset, ctx.scale_factor,
                                               ctx.groups, need_x,
                                               need_offset)
        return (grad_x if need_x else None,
                grad_offset if need_offset else None, None, None)


def dysample_sample_cpu(x: Tensor, offset: Tensor, scale_factor: int,
                        groups: int) -> Tensor:
    """The fused kernel; same contract as ``dysample_sample``.

    ``x`` and ``offset`` must be CPU tensors of one floating dtype (float32 or
    float64); both are made contiguous (NCHW).
    """
    return DySampleCPUFunction.apply(x.contiguous(), offset.contiguous(),
                                     scale_factor, groups)
