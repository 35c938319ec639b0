# Copyright (c) mmdysample contributors. All rights reserved.
"""The fused CPU kernel behind :func:`~.sampling.dysample_sample`.

``csrc/dysample_cpu.cpp`` is compiled with ``torch.utils.cpp_extension`` the
first time it is needed (about a minute on 2 cores, announced by one log line;
the build is cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``). Where it cannot be built (no C++ compiler,
no ninja) or is switched off with ``MMDYSAMPLE_FAST_CPU=0``,
:func:`available` says so once, with the reason, and callers use the
``grid_sample`` formulation, which computes the same function.

Besides the plain contract of :func:`dysample_sample_cpu` (offsets in, as
:func:`~.sampling.dysample_sample` takes them), :func:`fused_sample_cpu`
runs the whole layer: it takes the projection's weights, predicts each
row's offsets where it samples the row (``csrc/row_projection.h``), and
applies the scope factors and the initial positions there (paper eq. 4 and
5), so the forward pass allocates nothing but its output.
"""
import glob
import hashlib
import logging
import os
import os.path as osp
import shutil
import warnings
from typing import Optional

import torch
from mmengine.logging import print_log
from torch import Tensor
from torch.autograd.function import once_differentiable

_CSRC = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc')
_SOURCE = osp.join(_CSRC, 'dysample_cpu.cpp')
# The headers it includes. torch rebuilds an extension when its sources or
# build flags change, not its headers, so their digest is passed as a flag.
_HEADERS = ('row_projection.h', )
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
    source_time = max(osp.getmtime(f) for f in _files())
    builds = glob.glob(osp.join(folder, '*.so'))
    if any(osp.getmtime(b) >= source_time for b in builds):
        return None
    return folder


def _files():
    return [_SOURCE] + [osp.join(_CSRC, h) for h in _HEADERS]


def _digest() -> str:
    """A short digest of the kernel's source and headers."""
    sha = hashlib.sha1()
    for path in _files():
        with open(path, 'rb') as f:
            sha.update(f.read())
    return sha.hexdigest()[:16]


def _load():
    global _module, _failure
    if _module is not None or _failure is not None:
        return _module
    try:
        from torch.utils.cpp_extension import get_cxx_compiler, load
        folder = _cached_build()
        if folder is not None:
            # without it torch would run the build and fail with the
            # whole compiler command line as its message
            compiler = get_cxx_compiler()
            if shutil.which(compiler) is None:
                raise FileNotFoundError(
                    f'no C++ compiler: {compiler!r} not found (CXX)')
            print_log(
                'mmdysample: compiling the fused CPU kernel of DySample '
                '(once; about a minute on 2 cores), cached in '
                f'{folder}', logger='current', level=logging.INFO)
        _module = load(
            name=_NAME,
            sources=[_SOURCE],
            extra_cflags=['-O3', '-fopenmp', f'-DMMDYSAMPLE_CSRC={_digest()}'],
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


def set_simd(enabled: bool) -> bool:
    """Allow or forbid the kernel's AVX2 paths; returns the previous state.

    Float32 uses AVX2 and FMA where the CPU has them (checked at run time);
    with ``enabled=False`` it takes the portable loops that other CPUs and
    float64 take, the same function up to float rounding (for comparisons
    and debugging). Building the kernel if needed; a no-op without it.
    """
    if not available():
        return False
    before = bool(_module.simd())
    _module.set_simd(bool(enabled))
    return before


class DySampleCPUFunction(torch.autograd.Function):
    """Autograd wrapper: gradients for ``x`` and ``offset``."""

    @staticmethod
    def forward(ctx, x: Tensor, offset: Tensor, scale_factor: int,
                groups: int) -> Tensor:
        ctx.save_for_backward(x, offset)
        ctx.args = (scale_factor, groups)
        return _module.forward(x, offset, *ctx.args)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, offset = ctx.saved_tensors
        need_x, need_offset = ctx.needs_input_grad[:2]
        # Plain offsets: no initial positions, scale 1, no scope factors.
        grad_x, grad_offset = _module.backward(grad_out.contiguous(), x,
                                               offset, x.new_empty(0), 1.0,
                                               False, *ctx.args, need_x,
                                               need_offset, False)
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


class FusedDySampleCPUFunction(torch.autograd.Function):
    """The whole layer: projection, scope and sampling (one C++ pass).

    Backward: the kernel returns the input gradient of the sampling and the
    gradient of the projection (scope logits included); the projection's
    own input gradient is then added into the same tensor by one in-place
    matrix product, so the two paths to ``x`` cost no second buffer.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                init: Tensor, scale: float, dyscope: bool, subpixels: int,
                scale_factor: int, groups: int, save: bool) -> Tensor:
        out, raw = _module.forward_fused(
            x, weight, bias if bias is not None else x.new_empty(0), init,
            scale, dyscope, subpixels, scale_factor, groups, save)
        if save:
            ctx.save_for_backward(x, weight, raw, init)
        ctx.args = (scale, dyscope, scale_factor, groups)
        ctx.subpixels = subpixels
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight, raw, init = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_x, grad_raw = _module.backward(grad_out.contiguous(), x, raw,
                                            init, *ctx.args, need_x, True,
                                            True)
        # The projection on views: (N, P, nb * H * W) = W @ (N, Cin, ...).
        n, c, h, w = x.shape
        nb, p = ctx.subpixels, weight.shape[0]
        grad_raw = grad_raw.reshape(n, p, nb * h * w)
        matrix = weight.reshape(p, c // nb)
        grad_weight = grad_bias = None
        if need_weight:
            flat_x = x.reshape(n, c // nb, nb * h * w)
            grad_weight = torch.bmm(grad_raw, flat_x.transpose(1, 2)).sum(
                0).reshape(weight.shape)
        if need_bias:
            grad_bias = grad_raw.sum((0, 2))
        if need_x:
            flat = grad_x.view(n, c // nb, nb * h * w)
            if n == 1:
                flat[0].addmm_(matrix.t(), grad_raw[0])
            elif n > 1:
                flat.baddbmm_(matrix.t().expand(n, -1, -1), grad_raw)
        return (grad_x, grad_weight, grad_bias) + (None, ) * 7


def fused_sample_cpu(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                     style: str, scale_factor: int, groups: int,
                     init_pos: Tensor, scope_factor: float,
                     dyscope: bool) -> Tensor:
    """DySample's forward with the offsets predicted inside the kernel.

    The kernel projects each input row (the stacked offset and scope
    weights of :func:`~.offsets.stacked_weights`, in the layout of
    :func:`~.offsets.project`), applies the scope (paper eq. 4, or eq. 5
    with ``dyscope``: the second half of the projection are scope logits)
    and the initial positions, and samples that row's ``s`` output rows; no
    offset tensor is allocated unless a gradient needs it.

    Args:
        x (Tensor): ``(N, C, H, W)`` features, float32 or float64.
        weight (Tensor): ``(P, Cin, 1, 1)`` stacked projection in the dtype
            of ``x``; ``P = 2 * g * s**2`` (doubled with ``dyscope``),
            ``Cin = C`` for ``'lp'``; ``P = 2 * g`` (doubled), ``Cin = C /
            s**2`` for ``'pl'``.
        bias (Tensor, optional): ``(P, )``.
        style (str): ``'lp'`` or ``'pl'``.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.
        init_pos (Tensor): ``2 * g * s**2`` initial positions (any shape);
            no gradient.
        scope_factor (float): The static scope factor; ``2 * scope_factor``
            bounds the dynamic one.
        dyscope (bool): Whether the projection holds scope logits.

    Returns:
        Tensor: ``(N, C, s * H, s * W)``, with gradients for ``x``,
        ``weight`` and ``bias``.
    """
    scale = 2 * scope_factor if dyscope else scope_factor
    init = init_pos.detach().to(x.dtype).reshape(-1).contiguous()
    save = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias))
    subpixels = scale_factor**2 if style == 'pl' else 1
    return FusedDySampleCPUFunction.apply(x.contiguous(), weight, bias, init,
                                          float(scale), dyscope, subpixels,
                                          scale_factor, groups, save)
