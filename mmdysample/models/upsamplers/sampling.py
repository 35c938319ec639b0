# Copyright (c) mmdysample contributors. All rights reserved.
"""The sampling maths of DySample, free of any module state.

DySample predicts, for every low-resolution position, ``groups * s**2`` points
(one per sub-pixel of the ``s x s`` output block and per channel group) and
reads the input at those points with bilinear interpolation (paper eq. 1-3).
Offsets are expressed in input pixels, relative to the centre of the
low-resolution pixel they belong to, in the channel layout of the authors'
code: ``(xy, group, sub_row, sub_col)`` flattened, i.e. ``2 * g * s * s``
channels where the first half holds x offsets and the second half y offsets.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from . import fast_cpu, fast_triton

INIT_MODES = ('bilinear', 'nearest')


def initial_positions(scale_factor: int,
                      groups: int,
                      init_mode: str = 'bilinear',
                      dtype: torch.dtype = torch.float64) -> Tensor:
    """Initial sampling positions relative to each low-resolution pixel.

    With ``'bilinear'`` the ``s x s`` points of a block sit at the centres of
    the output pixels they produce, so zero learned offsets reproduce
    bilinear interpolation (paper Fig. 3b). With ``'nearest'`` all points sit
    at the centre of the low-resolution pixel, which reproduces nearest
    interpolation (Fig. 3a).

    Args:
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.
        init_mode (str): ``'bilinear'`` or ``'nearest'``.
            Defaults to ``'bilinear'``.
        dtype (torch.dtype): Dtype of the result. Defaults to float64, which
            keeps the thirds of ``s=3`` exact to float32 precision after a
            cast.

    Returns:
        Tensor: Shape ``(1, 2 * g * s * s, 1, 1)``.
    """
    if init_mode not in INIT_MODES:
        raise ValueError(f'init_mode must be one of {INIT_MODES}, '
                         f'got {init_mode!r}')
    s = scale_factor
    if init_mode == 'bilinear':
        steps = (torch.arange(s, dtype=torch.float64) - (s - 1) / 2) / s
    else:
        steps = torch.zeros(s, dtype=torch.float64)
    # x varies along the sub-column, y along the sub-row.
    pos_x = steps.view(1, s).expand(s, s)
    pos_y = steps.view(s, 1).expand(s, s)
    pos = torch.stack([pos_x, pos_y]).unsqueeze(1).expand(2, groups, s, s)
    return pos.reshape(1, -1, 1, 1).to(dtype)


def pixel_shuffle(x: Tensor, scale_factor: int) -> Tensor:
    """``F.pixel_shuffle`` whose backward also handles an empty batch.

    The gradient of ``F.pixel_shuffle`` comes from ``F.pixel_unshuffle``,
    which returns an empty tensor unchanged (torch 2.13), so backward through
    an empty batch fails with a shape error.
    """
    n, c, h, w = x.shape
    s = scale_factor
    x = x.reshape(n, c // (s * s), s, s, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // (s * s), h * s, w * s)


def pixel_unshuffle(x: Tensor, scale_factor: int) -> Tensor:
    """``F.pixel_unshuffle`` that also handles an empty batch.

    ``F.pixel_unshuffle`` returns an empty input unchanged (torch 2.13), with
    the wrong channel count.
    """
    n, c, h, w = x.shape
    s = scale_factor
    x = x.reshape(n, c, h // s, s, w // s, s).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * s * s, h // s, w // s)


def coordinate_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype in which sampling coordinates are computed for ``dtype`` input.

    Half-precision coordinates on a map of a few hundred pixels round to a
    fraction of a pixel, as large as the offsets themselves, so reduced
    precision features keep float32 coordinates.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def sampling_grid(offset: Tensor, scale_factor: int,
                  groups: int) -> Tensor:
    """Turn per-pixel offsets into a ``grid_sample`` grid.

    Args:
        offset (Tensor): ``(N, 2 * g * s * s, H, W)`` offsets in input
            pixels, initial positions included.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.

    Returns:
        Tensor: ``(N * g, s * H, s * W, 2)`` normalised ``(x, y)``
        coordinates for ``align_corners=False``.
    """
    n, _, h, w = offset.shape
    s, g = scale_factor, groups
    offset = offset.reshape(n, 2, g * s * s, h, w)
    # ``h`` and ``w`` must reach the arithmetic straight from ``.shape``:
    # tracers record them as sizes (tensors under torch.jit.trace and the
    # TorchScript ONNX exporter, symbols under torch.export / compile), so
    # ``arange(w)`` and ``2.0 / w`` stay dynamic. ``float(w)``, ``int(w)`` or
    # ``torch.tensor([w, h])`` (the authors' normaliser) would freeze the
    # trace size into the graph; tests/models/upsamplers/test_export.py
    # runs exported graphs at other sizes to catch that.
    # Centres of the low-resolution pixels, in pixels.
    xs = torch.arange(w, dtype=offset.dtype, device=offset.device) + 0.5
    ys = torch.arange(h, dtype=offset.dtype, device=offset.device) + 0.5
    grid_x = (offset[:, 0] + xs.view(1, 1, 1, w)) * (2.0 / w) - 1
    grid_y = (offset[:, 1] + ys.view(1, 1, h, 1)) * (2.0 / h) - 1
    grid = torch.stack([grid_x, grid_y], dim=1)  # (N, 2, g*s*s, H, W)
    grid = pixel_shuffle(grid.reshape(n, 2 * g * s * s, h, w), s)
    grid = grid.reshape(n, 2, g, s * h, s * w).permute(0, 2, 3, 4, 1)
    return grid.reshape(n * g, s * h, s * w, 2)


# torch.compiler.is_compiling came with torch 2.3; torch._dynamo's is older.
_is_compiling = getattr(getattr(torch, 'compiler', None), 'is_compiling',
                        None)
if _is_compiling is None:  # torch < 2.3
    import torch._dynamo
    _is_compiling = torch._dynamo.is_compiling


def is_eager() -> bool:
    """False under tracing, scripting, ONNX export and ``torch.compile``.

    Those need the graph of plain torch ops, so they take the reference
    formulations; the fused kernels run in eager mode only.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return not (torch.onnx.is_in_onnx_export() or _is_compiling())


def use_fast_cpu(x: Tensor) -> bool:
    """Whether the fused CPU kernel may run for ``x``."""
    return x.device.type == 'cpu' and is_eager() and fast_cpu.available()


def use_triton(x: Tensor) -> bool:
    """Whether the fused Triton kernel may run for ``x`` (a CUDA tensor)."""
    return (x.device.type == 'cuda' and is_eager()
            and fast_triton.available())


def dysample_sample(x: Tensor, offset: Tensor, scale_factor: int,
                    groups: int) -> Tensor:
    """Re-sample ``x`` at ``pixel centre + offset`` (paper eq. 1 and 3).

    Bilinear sampling with border padding, as ``grid_sample`` with
    ``align_corners=False``. On the CPU a fused C++ kernel
    (:mod:`.fast_cpu`) computes it, on CUDA a fused Triton kernel
    (:mod:`.fast_triton`); under tracing, export or ``torch.compile``,
    without Triton, where the C++ kernel cannot be built, or with
    ``MMDYSAMPLE_FAST_CPU=0`` / ``MMDYSAMPLE_FAST_CUDA=0``,
    :func:`dysample_sample_reference` does.

    Args:
        x (Tensor): ``(N, C, H, W)`` features, ``C`` divisible by ``groups``.
        offset (Tensor): ``(N, 2 * g * s * s, H, W)`` offsets in input
            pixels, initial positions included.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.

    Returns:
        Tensor: ``(N, C, s * H, s * W)`` in the dtype of ``x``.
    """
    if use_triton(x):
        return fast_triton.dysample_sample_triton(x, offset, scale_factor,
                                                  groups)
    if not use_fast_cpu(x):
        return dysample_sample_reference(x, offset, scale_factor, groups)
    # Half features are sampled in float32, as on the reference path.
    coord_dtype = coordinate_dtype(x.dtype)
    out = fast_cpu.dysample_sample_cpu(
        x.to(coord_dtype), offset.to(coord_dtype), scale_factor, groups)
    return out.to(x.dtype)


def dysample_sample_reference(x: Tensor, offset: Tensor,
                              scale_factor: int, groups: int) -> Tensor:
    """:func:`dysample_sample` in its straightforward formulation.

    Coordinates, pixel shuffle and ``grid_sample`` with border padding and
    ``align_corners=False``: the same function as the authors' public code,
    kept as the readable reference that the fast paths are tested against, and
    used where the fast paths do not apply (tracing, export, compile).

    Args:
        x (Tensor): ``(N, C, H, W)`` features, ``C`` divisible by ``groups``.
        offset (Tensor): ``(N, 2 * g * s * s, H, W)`` offsets in input
            pixels, initial positions included.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of offset groups ``g``.

    Returns:
        Tensor: ``(N, C, s * H, s * W)`` in the dtype of ``x``.
    """
    n, c, h, w = x.shape
    s, g = scale_factor, groups
    coord_dtype = coordinate_dtype(x.dtype)
    grid = sampling_grid(offset.to(coord_dtype), s, g)
    # grid_sample wants input and grid in one dtype; half features are
    # sampled in float32 (CPU half grid_sample is also unreliable).
    feats = x.reshape(n * g, c // g, h, w).to(coord_dtype)
    out = F.grid_sample(
        feats,
        grid,
        mode='bilinear',
        padding_mode='border',
        align_corners=False)
    return out.reshape(n, c, s * h, s * w).to(x.dtype)


def reference_dysample_sample(x: Tensor, offset: Tensor, scale_factor: int,
                              groups: int) -> Tensor:
    """A slow, loop-based version of :func:`dysample_sample` for tests.

    Every output pixel is computed on its own with the textbook bilinear
    formula and border clamping, in float64. Use it on tiny inputs only.
    """
    n, c, h, w = x.shape
    s, g = scale_factor, groups
    cg = c // g
    xd = x.double()
    off = offset.double().reshape(n, 2, g, s, s, h, w)
    out = torch.zeros(n, c, s * h, s * w, dtype=torch.float64)

    def clamp(v: float, hi: int) -> float:
        return min(max(v, 0.0), float(hi - 1))

    for b in range(n):
        for gi in range(g):
            chans = slice(gi * cg, (gi + 1) * cg)
            for i in range(h):
                for j in range(w):
                    for si in range(s):
                        for sj in range(s):
                            # Continuous position, in index space where
                            # pixel k covers [k - 0.5, k + 0.5].
                            px = j + float(off[b, 0, gi, si, sj, i, j])
                            py = i + float(off[b, 1, gi, si, sj, i, j])
                            px, py = clamp(px, w), clamp(py, h)
                            x0, y0 = int(px // 1), int(py // 1)
                            x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                            ax, ay = px - x0, py - y0
                            val = ((1 - ay) * (1 - ax) * xd[b, chans, y0, x0]
                                   + (1 - ay) * ax * xd[b, chans, y0, x1]
                                   + ay * (1 - ax) * xd[b, chans, y1, x0]
                                   + ay * ax * xd[b, chans, y1, x1])
                            out[b, chans, i * s + si, j * s + sj] = val
    return out
