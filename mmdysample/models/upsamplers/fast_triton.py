# Copyright (c) mmdysample contributors. All rights reserved.
"""A fused Triton kernel for DySample's sampling step on CUDA.

:func:`dysample_sample_triton` computes what
:func:`~.sampling.dysample_sample_reference` computes (bilinear sampling
with border padding, ``grid_sample`` with ``align_corners=False``) in one
kernel per pass, straight from the offsets in pixels: no normalised grid,
no pixel shuffle of coordinates, no grouped copy of the features. Each
program takes a block of output pixels of one image and group, computes
their bilinear taps once and loops over the group's channels. The backward
pass scatters the input gradient with atomic adds and writes the offset
gradient directly (each output pixel owns one offset element).

Triton is optional: without it, with a Triton older than
:data:`TRITON_MIN` (torch 2.1 brings Triton 2.1, whose language and
interpreter differ), or with ``MMDYSAMPLE_FAST_CUDA=0``, :func:`available`
is False (:func:`unavailable_reason` says why) and CUDA tensors take the
``grid_sample`` formulation. With ``TRITON_INTERPRET=1`` the same kernels run in Triton's
interpreter on CPU tensors, which is how the tests check them on machines
without a GPU.
"""
from __future__ import annotations
import os
from typing import Dict, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_ENV = 'MMDYSAMPLE_FAST_CUDA'
#: The oldest Triton the kernel is tested with (its compiler and its CPU
#: interpreter).
TRITON_MIN = '3.4'
#: Output pixels per program.
BLOCK = 256

triton = tl = None  # imported on first use: Triton is optional
_kernels: Dict[bool, object] = {}


def _version_tuple(version: str) -> tuple:
    parts = []
    for part in version.split('+')[0].split('.')[:3]:
        digits = ''.join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _installed_triton() -> Optional[str]:
    """The installed Triton's version, or None when there is none."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version('triton')
    except PackageNotFoundError:
        return None


def supported_triton() -> bool:
    """Whether a Triton >= :data:`TRITON_MIN` is installed."""
    found = _installed_triton()
    return found is not None and (_version_tuple(found) >=
                                  _version_tuple(TRITON_MIN))


def unavailable_reason() -> Optional[str]:
    """Why the kernel cannot run here, or None when it can."""
    if not enabled():
        return f'{_ENV}=0'
    found = _installed_triton()
    if found is None:
        return 'triton is not installed'
    if _version_tuple(found) < _version_tuple(TRITON_MIN):
        return f'needs triton >= {TRITON_MIN}, found {found}'
    return None


def _import_triton() -> bool:
    global triton, tl
    if triton is None:
        if not supported_triton():
            return False
        try:
            import triton as _triton
            import triton.language as _tl
        except ImportError:
            return False
        triton, tl = _triton, _tl
    return True


def enabled() -> bool:
    """False when ``MMDYSAMPLE_FAST_CUDA=0`` switches the kernel off."""
    return os.environ.get(_ENV, '1') != '0'


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET=1`` asks for Triton's CPU interpreter."""
    return os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')


def available() -> bool:
    """Whether the kernel is switched on and a Triton >= :data:`TRITON_MIN`
    can be imported."""
    return unavailable_reason() is None and _import_triton()


def _sample_kernel(x_ptr, off_ptr, out_ptr, gout_ptr, gx_ptr, goff_ptr, C,
                   H, W, CG, G, S: tl.constexpr, BACKWARD: tl.constexpr,
                   NEED_X: tl.constexpr, NEED_OFF: tl.constexpr,
                   BLOCK: tl.constexpr):
    """One block of output pixels of one (image, group), all its channels.

    Forward writes ``out``; backward reads ``gout`` and adds into ``gx``
    (if NEED_X) and writes ``goff`` (if NEED_OFF). Coordinates and sums are
    in the dtype of the offsets; features are read in theirs.

    Only builtins of ``triton.language.core`` are used: the helpers of
    ``triton.language.standard`` (``tl.zeros``, ``tl.cdiv``, ...) are jitted
    when Triton is imported, in whichever mode ``TRITON_INTERPRET`` said
    then, and a compiled helper cannot be called from an interpreted kernel.
    """
    ng = tl.program_id(1)
    n = ng // G
    gi = ng % G
    OW = W * S
    HW = H * W
    OHW = HW * S * S
    GSS = G * S * S
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = p < OHW
    oy = p // OW
    ox = p % OW
    i = oy // S
    j = ox // S
    # Offset element of this output pixel: channel (gi, oy % S, ox % S).
    pos = ((gi * S + oy % S) * S + ox % S) * HW + i * W + j
    img = n.to(tl.int64) * 2 * GSS * HW
    off_x = tl.load(off_ptr + img + pos, mask=mask, other=0.0)
    off_y = tl.load(off_ptr + img + GSS * HW + pos, mask=mask, other=0.0)
    px = j + off_x
    py = i + off_y
    # Border padding; the borders count as clamped (zero gradient), and a
    # NaN coordinate reads pixel 0, as in grid_sample.
    inside_x = (px > 0) & (px < W - 1)
    inside_y = (py > 0) & (py < H - 1)
    px = tl.minimum(tl.where(px > 0, px, 0.0), W - 1)
    py = tl.minimum(tl.where(py > 0, py, 0.0), H - 1)
    # The last cell starts at size - 2 (fraction 1 at the last pixel); every
    # operation keeps a block operand, as sizes of 1 arrive as constants.
    x0 = tl.maximum(tl.minimum(px.to(tl.int32), W - 2), 0)
    y0 = tl.maximum(tl.minimum(py.to(tl.int32), H - 2), 0)
    ax = px - x0
    ay = py - y0
    x1 = tl.minimum(x0 + 1, W - 1)
    y1 = tl.minimum(y0 + 1, H - 1)
    k00 = y0 * W + x0
    k01 = y0 * W + x1
    k10 = y1 * W + x0
    k11 = y1 * W + x1
    gdx = tl.full([BLOCK], 0.0, off_x.dtype)
    gdy = tl.full([BLOCK], 0.0, off_x.dtype)
    for c in range(0, CG):
        plane = (n * C + gi * CG + c).to(tl.int64)
        base = x_ptr + plane * HW
        v00 = tl.load(base + k00, mask=mask, other=0.0).to(off_x.dtype)
        v01 = tl.load(base + k01, mask=mask, other=0.0).to(off_x.dtype)
        v10 = tl.load(base + k10, mask=mask, other=0.0).to(off_x.dtype)
        v11 = tl.load(base + k11, mask=mask, other=0.0).to(off_x.dtype)
        if BACKWARD:
            g = tl.load(gout_ptr + plane * OHW + p, mask=mask,
                        other=0.0).to(off_x.dtype)
            if NEED_X:
                gbase = gx_ptr + plane * HW
                tl.atomic_add(gbase + k00, (1 - ay) * (1 - ax) * g, mask=mask)
                tl.atomic_add(gbase + k01, (1 - ay) * ax * g, mask=mask)
                tl.atomic_add(gbase + k10, ay * (1 - ax) * g, mask=mask)
                tl.atomic_add(gbase + k11, ay * ax * g, mask=mask)
            if NEED_OFF:
                gdx += g * ((1 - ay) * (v01 - v00) + ay * (v11 - v10))
                gdy += g * ((1 - ax) * (v10 - v00) + ax * (v11 - v01))
        else:
            top = v00 + ax * (v01 - v00)
            bot = v10 + ax * (v11 - v10)
            val = top + ay * (bot - top)
            tl.store(out_ptr + plane * OHW + p,
                     val.to(out_ptr.dtype.element_ty), mask=mask)
    if BACKWARD:
        if NEED_OFF:
            # Clamped coordinates pass no gradient (on a size-1 axis every
            # coordinate is clamped).
            gdx = tl.where(inside_x, gdx, 0.0)
            gdy = tl.where(inside_y, gdy, 0.0)
            tl.store(goff_ptr + img + pos, gdx, mask=mask)
            tl.store(goff_ptr + img + GSS * HW + pos, gdy, mask=mask)


def _kernel():
    """The jitted kernel: compiled, or interpreted under TRITON_INTERPRET.

    Decorated on first use rather than at import so that Triton stays an
    optional import, and per mode so that the interpreter (chosen by
    Triton when it decorates) can be switched on in a running process
    (see :func:`_sample_kernel` for what that asks of the kernel).
    """
    mode = interpreting()
    if mode not in _kernels:
        if not _import_triton():
            raise RuntimeError(
                f'dysample_sample_triton needs triton >= {TRITON_MIN} '
                f'({unavailable_reason() or "triton failed to import"})')
        _kernels[mode] = triton.jit(_sample_kernel)
    return _kernels[mode]


def _launch(x: Tensor, off: Tensor, s: int, g: int, out=None, gout=None,
            gx=None, goff=None) -> None:
    kernel = _kernel()
    n, c, h, w = x.shape
    grid = ((h * w * s * s + BLOCK - 1) // BLOCK, n * g)
    dummy = off  # unused pointer arguments
    kernel[grid](
        x, off, dummy if out is None else out,
        dummy if gout is None else gout, dummy if gx is None else gx,
        dummy if goff is None else goff, c, h, w, c // g, g,
        S=s, BACKWARD=gout is not None, NEED_X=gx is not None,
        NEED_OFF=goff is not None, BLOCK=BLOCK)


class DySampleTritonFunction(torch.autograd.Function):
    """Autograd wrapper: gradients for ``x`` and ``offset``."""

    @staticmethod
    def forward(ctx, x: Tensor, offset: Tensor, scale_factor: int,
                groups: int) -> Tensor:
        ctx.save_for_backward(x, offset)
        ctx.args = (scale_factor, groups)
        n, c, h, w = x.shape
        s = scale_factor
        out = x.new_empty(n, c, s * h, s * w)
        if out.numel():
            _launch(x, offset, s, groups, out=out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, offset = ctx.saved_tensors
        need_x, need_offset = ctx.needs_input_grad[:2]
        # The input gradient is summed in the coordinate dtype (atomic adds
        # of half values would round at every add), then cast.
        gx = torch.zeros_like(x, dtype=offset.dtype) if need_x else None
        goff = torch.empty_like(offset) if need_offset else None
        if grad_out.numel() and (need_x or need_offset):
            _launch(x, offset, *ctx.args, gout=grad_out.contiguous(), gx=gx,
                    goff=goff)
        elif goff is not None:
            goff.zero_()
        return (gx.to(x.dtype) if need_x else None, goff, None, None)


def dysample_sample_triton(x: Tensor, offset: Tensor, scale_factor: int,
                           groups: int) -> Tensor:
    """The fused Triton kernel; same contract as ``dysample_sample``.

    Args:
        x (Tensor): ``(N, C, H, W)`` features, float16, bfloat16, float32
            or float64, ``C`` divisible by ``groups``; any layout (made
            contiguous).
        offset (Tensor): ``(N, 2 * g * s * s, H, W)`` offsets in input
            pixels, initial positions included; computed in float32
            (float64 for float64 features).
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.

    Returns:
        Tensor: ``(N, C, s * H, s * W)`` in the dtype of ``x``.

    CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``.
    """
    n, c, h, w = x.shape
    s, g = scale_factor, groups
    if offset.shape != (n, 2 * g * s * s, h, w):
        raise ValueError(f'offset must have shape {(n, 2 * g * s * s, h, w)}'
                         f' for x of shape {tuple(x.shape)}, got '
                         f'{tuple(offset.shape)}')
    if c % g:
        raise ValueError(f'channels ({c}) must be divisible by groups ({g})')
    if x.device.type != 'cuda' and not interpreting():
        raise ValueError('dysample_sample_triton runs on CUDA tensors (or '
                         f'under TRITON_INTERPRET=1), got {x.device}')
    coord = torch.float64 if x.dtype == torch.float64 else torch.float32
    return DySampleTritonFunction.apply(x.contiguous(),
                                        offset.to(coord).contiguous(), s, g)
