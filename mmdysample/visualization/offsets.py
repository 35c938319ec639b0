# Copyright (c) mmdysample contributors. All rights reserved.
"""Draw where DySample samples: the paper's Fig. 7 for any model or layer.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085 (Fig. 7, Sec. 3.3).

Every output pixel ``(i * s + si, j * s + sj)`` of group ``gi`` reads the
input at ``x = j + 0.5 + offset_x``, ``y = i + 0.5 + offset_y`` in *input
pixels*, a coordinate system where input pixel ``k`` covers ``[k, k + 1]``
(see :meth:`~mmdysample.DySample.sampling_offsets`). With zero learned offsets
(bilinear initialisation) these are the centres of the output pixels,
``(j * s + sj + 0.5) / s``. A feature map of ``h x w`` pixels computed from an
``H x W`` network input has a stride of ``H / h`` by ``W / w`` image pixels,
so ``position * stride`` places a sampling point on the image.

The figure has two rows. Offsets: the whole image with arrows from the
initial (bilinear) to the learned position of the sampling points of a few
low-resolution pixels on edges of the feature, a zoom on a region (red box)
with the low-resolution grid and every point in it, and a close view of one
low-resolution pixel (yellow box) showing how its bottom-right output pixel is
interpolated from four input pixels. Features: the input feature, its
DySample upsampling and its bilinear upsampling, all three as colours of the
same PCA projection (or as channel means), aligned with the image above.

Figures are drawn with matplotlib's object-oriented API and saved with the
Agg canvas, so no display and no global backend switch is needed.
"""
import copy
import math
import os
import os.path as osp
from typing import (Any, Dict, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..models.upsamplers import DySample
from ..utils.model import build_model

ArrayLike = Union[Tensor, np.ndarray]
#: ``(x0, y0, x1, y1)`` in image pixels.
Box = Tuple[float, float, float, float]
#: A low-resolution pixel as ``(row, col)``.
Point = Tuple[int, int]

POINT_MODES = ('edge', 'grid')
FEATURE_MODES = ('pca', 'mean')

#: Low-resolution pixels drawn around the close-view pixel in the zoom panel
#: when no region is given (a window of ``2 * ZOOM_RADIUS + 1`` pixels).
ZOOM_RADIUS = 3
#: The zoom panel draws every low-resolution pixel of its region up to this
#: many, and only the chosen points beyond.
MAX_DENSE_POINTS = 256


# --------------------------------------------------------------------------
# Finding the upsamplers and their inputs
# --------------------------------------------------------------------------
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


def _check_index(name: str, value: int, size: int, what: str) -> int:
    """``value`` if it indexes ``size`` items, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if not 0 <= value < size:
        raise ValueError(f'{name}={value} is out of range: {what}, so valid '
                         f'values are 0..{size - 1}')
    return int(value)


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


# --------------------------------------------------------------------------
# Sampling positions
# --------------------------------------------------------------------------
def positions_from_offsets(offsets: Tensor, scale_factor: int,
                           groups: int) -> Tensor:
    """Absolute sampling positions from DySample offsets.

    Args:
        offsets (Tensor): ``(N, 2 * g * s * s, H, W)`` offsets in input
            pixels from the centre of each input pixel, initial positions
            included, laid out as ``(xy, group, sub_row, sub_col)``.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of groups ``g``.

    Returns:
        Tensor: ``(N, g, s * H, s * W, 2)`` float64 ``(x, y)`` positions in
        input pixels (pixel ``k`` covers ``[k, k + 1]``); entry
        ``[n, gi, i * s + si, j * s + sj]`` is where output pixel
        ``(i * s + si, j * s + sj)`` of group ``gi`` samples.

    Example:
        >>> import torch
        >>> pos = positions_from_offsets(torch.zeros(1, 8, 1, 1), 2, 1)
        >>> pos[0, 0, :, :, 0]  # zero offsets: every point at the centre
        tensor([[0.5000, 0.5000],
                [0.5000, 0.5000]], dtype=torch.float64)
    """
    n, c, h, w = offsets.shape
    s, g = scale_factor, groups
    if c != 2 * g * s * s:
        raise ValueError(f'offsets have {c} channels, expected 2 * groups * '
                         f'scale_factor**2 = {2 * g * s * s} for '
                         f'groups={g}, scale_factor={s}')
    off = offsets.detach().double().reshape(n, 2, g, s, s, h, w)
    centres_x = torch.arange(w, dtype=torch.float64,
                             device=off.device) + 0.5
    centres_y = torch.arange(h, dtype=torch.float64,
                             device=off.device) + 0.5
    pos_x = off[:, 0] + centres_x.view(1, 1, 1, 1, 1, w)
    pos_y = off[:, 1] + centres_y.view(1, 1, 1, 1, h, 1)
    pos = torch.stack([pos_x, pos_y], dim=-1)  # (N, g, s, s, H, W, 2)
    pos = pos.permute(0, 1, 4, 2, 5, 3, 6)  # (N, g, H, s, W, s, 2)
    return pos.reshape(n, g, h * s, w * s, 2)


def sampling_positions(layer: DySample,
                       feat: Tensor,
                       learned: bool = True) -> Tensor:
    """Where ``layer`` samples ``feat``, in input pixels.

    Args:
        layer (DySample): The upsampler.
        feat (Tensor): Its input, ``(N, C, H, W)``.
        learned (bool): The positions the layer samples at (initial positions
            plus the offsets it predicts from ``feat``); False gives the
            initial positions alone (for ``init_mode='bilinear'`` the
            output pixel centres ``(j * s + sj + 0.5) / s``).
            Defaults to True.

    Returns:
        Tensor: ``(N, g, s * H, s * W, 2)`` float64 ``(x, y)`` positions,
        see :func:`positions_from_offsets`. ``grid_sample`` clamps positions
        outside ``[0.5, W - 0.5]`` (``[0.5, H - 0.5]``) to the border pixel
        centres; the positions returned are not clamped.

    Example:
        >>> import torch
        >>> from mmdysample import DySample
        >>> layer = DySample(8, scale_factor=2, groups=2)
        >>> sampling_positions(layer, torch.rand(1, 8, 3, 5)).shape
        torch.Size([1, 2, 6, 10, 2])
        >>> init = sampling_positions(layer, torch.rand(1, 8, 3, 5), False)
        >>> init[0, 0, 0, :4, 0]
        tensor([0.2500, 0.7500, 1.2500, 1.7500], dtype=torch.float64)
    """
    if learned:
        with torch.no_grad():
            offsets = layer.sampling_offsets(feat)
    else:
        n, _, h, w = feat.shape
        offsets = layer.init_pos.expand(n, -1, h, w)
    return positions_from_offsets(offsets, layer.scale_factor, layer.groups)


# --------------------------------------------------------------------------
# Choosing points and colouring features
# --------------------------------------------------------------------------
def _cell_box(box: Optional[Box], stride: Tuple[float, float],
              size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """Low-res pixels ``(r0, c0, r1, c1)`` (ends exclusive) inside ``box``.

    A pixel is inside when its centre is.
    """
    h, w = size
    if box is None:
        return 0, 0, h, w
    sy, sx = stride
    x0, y0, x1, y1 = box
    c0 = max(0, math.ceil(x0 / sx - 0.5))
    r0 = max(0, math.ceil(y0 / sy - 0.5))
    c1 = min(w, math.floor(x1 / sx - 0.5) + 1)
    r1 = min(h, math.floor(y1 / sy - 0.5) + 1)
    return r0, c0, max(r0, r1), max(c0, c1)


def _grid_points(num_points: int, cells: Tuple[int, int, int, int]
                 ) -> List[Point]:
    r0, c0, r1, c1 = cells
    rows, cols = r1 - r0, c1 - c0
    if rows <= 0 or cols <= 0 or num_points <= 0:
        return []
    n_rows = min(rows, max(1, round(math.sqrt(num_points * rows / cols))))
    n_cols = min(cols, max(1, math.ceil(num_points / n_rows)))
    # Centred in equal bands, so the points keep away from the borders.
    row_idx = [r0 + int((k + 0.5) * rows / n_rows) for k in range(n_rows)]
    col_idx = [c0 + int((k + 0.5) * cols / n_cols) for k in range(n_cols)]
    return [(r, c) for r in row_idx for c in col_idx][:num_points]


def select_points(feat: Tensor,
                  num_points: int,
                  mode: str = 'edge',
                  cells: Optional[Tuple[int, int, int, int]] = None
                  ) -> List[Point]:
    """Low-resolution pixels to draw the sampling points of.

    Args:
        feat (Tensor): A feature map ``(C, H, W)``.
        num_points (int): How many pixels to choose (fewer when the map or
            ``cells`` holds fewer).
        mode (str): ``'edge'`` picks the pixels of largest feature gradient
            (the norm over channels of the central differences), strongest
            first and at least about half the grid spacing apart, away from
            the border of ``cells``; a flat map is filled up with grid
            points. ``'grid'`` spreads them on a regular grid.
            Defaults to ``'edge'``.
        cells (tuple[int, int, int, int], optional): Only pixels in rows
            ``r0 <= row < r1`` and columns ``c0 <= col < c1`` (e.g. those
            of the unpadded image). Defaults to None, the whole map.

    Returns:
        list[tuple[int, int]]: ``(row, col)`` pixels.

    Example:
        >>> import torch
        >>> feat = torch.zeros(2, 8, 8)
        >>> feat[:, :, 4:] = 1  # a vertical edge between columns 3 and 4
        >>> select_points(feat, 3)  # on the edge, 2 pixels apart
        [(1, 3), (3, 3), (5, 3)]
        >>> select_points(feat, 4, mode='grid')
        [(2, 2), (2, 6), (6, 2), (6, 6)]
    """
    if mode not in POINT_MODES:
        raise ValueError(f'mode must be one of {POINT_MODES}, got {mode!r}')
    if isinstance(num_points, bool) or not isinstance(num_points, int) \
            or num_points < 1:
        raise ValueError(f'num_points must be a positive int, '
                         f'got {num_points!r}')
    if feat.dim() != 3:
        raise ValueError('feat must be (C, H, W), got shape '
                         f'{tuple(feat.shape)}')
    _, h, w = feat.shape
    cells = (0, 0, h, w) if cells is None else cells
    if mode == 'grid':
        return _grid_points(num_points, cells)

    r0, c0, r1, c1 = cells
    f = feat.detach().double()
    score = torch.zeros(h, w, dtype=torch.float64)
    # Central differences need both neighbours inside ``cells``, which keeps
    # the zero padding of a detector's input from passing for an edge.
    if r1 - r0 >= 3 and c1 - c0 >= 3:
        dx = f[:, r0 + 1:r1 - 1, c0 + 2:c1] - f[:, r0 + 1:r1 - 1, c0:c1 - 2]
        dy = f[:, r0 + 2:r1, c0 + 1:c1 - 1] - f[:, r0:r1 - 2, c0 + 1:c1 - 1]
        score[r0 + 1:r1 - 1, c0 + 1:c1 - 1] = (dx.pow(2) + dy.pow(2)).sum(
            0).sqrt()
    area = max(1, (r1 - r0) * (c1 - c0))
    min_dist = max(1, int(0.5 * math.sqrt(area / num_points)))
    chosen: List[Point] = []
    order = torch.argsort(score.flatten(), descending=True, stable=True)
    for idx in order.tolist():
        r, c = divmod(idx, w)
        if score[r, c] <= 0 or len(chosen) == num_points:
            break
        if all(max(abs(r - pr), abs(c - pc)) >= min_dist
               for pr, pc in chosen):
            chosen.append((r, c))
    for point in _grid_points(num_points, cells):
        if len(chosen) == num_points:
            break
        if point not in chosen:
            chosen.append(point)
    return chosen


def feature_to_rgb(feats: Sequence[Tensor],
                   mode: str = 'pca') -> List[np.ndarray]:
    """Colour feature maps with one shared mapping.

    The mapping is fitted on ``feats[0]`` (the input of the upsampler) and
    applied to all of them, so equal features get equal colours in every
    map.

    Args:
        feats (Sequence[Tensor]): Maps ``(C, H_k, W_k)`` with one ``C``.
        mode (str): ``'pca'`` maps the first three principal components to
            red, green and blue; ``'mean'`` colours the channel mean with the
            ``viridis`` colormap. Each is stretched between the 1st and 99th
            percentile of ``feats[0]``. Defaults to ``'pca'``.

    Returns:
        list[np.ndarray]: ``(H_k, W_k, 3)`` float arrays in ``[0, 1]``.

    Example:
        >>> import torch
        >>> rgb = feature_to_rgb([torch.rand(8, 4, 5), torch.rand(8, 8, 10)])
        >>> [x.shape for x in rgb]
        [(4, 5, 3), (8, 10, 3)]
    """
    if mode not in FEATURE_MODES:
        raise ValueError(f'mode must be one of {FEATURE_MODES}, got {mode!r}')
    if not feats:
        raise ValueError('feats is empty')
    channels = {f.shape[0] for f in feats}
    if len(channels) != 1 or any(f.dim() != 3 for f in feats):
        raise ValueError('feats must be (C, H, W) maps with one C, got '
                         f'shapes {[tuple(f.shape) for f in feats]}')
    flats = [f.detach().double().flatten(1).T for f in feats]  # (HW, C)
    ref = flats[0]
    if mode == 'pca':
        mean = ref.mean(0, keepdim=True)
        cov = (ref - mean).T @ (ref - mean) / max(1, ref.shape[0] - 1)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        basis = vecs.flip(1)[:, :3]
        # Eigenvectors have no sign; make each one's largest entry positive
        # so the colours are reproducible.
        signs = torch.sign(basis.gather(0, basis.abs().argmax(0, True)))
        basis = basis * torch.where(signs == 0, 1.0, signs)
        if basis.shape[1] < 3:  # fewer than 3 channels
            basis = F.pad(basis, (0, 3 - basis.shape[1]))
        projected = [(x - mean) @ basis for x in flats]
    else:
        projected = [x.mean(1, keepdim=True) for x in flats]
    lo = torch.quantile(projected[0], 0.01, dim=0)
    hi = torch.quantile(projected[0], 0.99, dim=0)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    out = []
    for p, f in zip(projected, feats):
        v = ((p - lo) / span).clamp(0, 1).numpy()
        if mode == 'mean':
            from matplotlib import colormaps
            v = colormaps['viridis'](v[:, 0])[:, :3]
        out.append(v.reshape(f.shape[1], f.shape[2], 3))
    return out


# --------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------
def _new_axes(nrows: int = 1, ncols: int = 1,
              panel: Tuple[float, float] = (6.0, 6.0)):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig: Any, out_file: str) -> str:
    """Save a matplotlib figure, rendered by Agg; no display is needed.

    ``.png`` and ``.jpg`` files are written as 3-channel RGB images of the
    figure's size (matplotlib alone writes RGBA PNGs); other extensions
    (``.pdf``, ``.svg``) go through ``fig.savefig``.

    Args:
        fig (matplotlib.figure.Figure): The figure.
        out_file (str): The file to write; missing folders are created.

    Returns:
        str: ``out_file``.
    """
    import cv2
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    canvas = FigureCanvasAgg(fig)  # attaches itself; no pyplot involved
    fig.set_facecolor('white')
    if osp.splitext(out_file)[1].lower() in ('.png', '.jpg', '.jpeg'):
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]
        if not cv2.imwrite(out_file, np.ascontiguousarray(rgb[..., ::-1])):
            raise OSError(f'could not write {out_file!r}')
    else:
        fig.savefig(out_file, dpi=fig.dpi)
    return out_file


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_group(group: Optional[int], groups: int) -> List[int]:
    if group is None:
        return list(range(groups))
    return [
        _check_index('group', group, groups,
                     f'the layer has {groups} groups (omit it to draw all)')
    ]


def _colours(n: int) -> List[Tuple[float, ...]]:
    from matplotlib import colormaps
    cmap = colormaps['tab10' if n <= 10 else 'tab20']
    return [cmap(k % cmap.N)[:3] for k in range(n)]


def _draw_grid(ax: Any, stride: Tuple[float, float], size: Tuple[int, int],
               view: Box, colour: str = 'white') -> None:
    """Low-resolution pixel borders inside ``view``, if not too dense."""
    sy, sx = stride
    h, w = size
    x0, y0, x1, y1 = view
    cols = range(max(0, math.floor(x0 / sx)), min(w, math.ceil(x1 / sx)) + 1)
    rows = range(max(0, math.floor(y0 / sy)), min(h, math.ceil(y1 / sy)) + 1)
    if len(cols) > 65 or len(rows) > 65:
        return
    kw = dict(color=colour, linewidth=0.6, alpha=0.6)
    for c in cols:
        ax.plot([c * sx, c * sx], [max(y0, 0), min(y1, h * sy)], **kw)
    for r in rows:
        ax.plot([max(x0, 0), min(x1, w * sx)], [r * sy, r * sy], **kw)


def _draw_bilinear_taps(ax: Any, point: np.ndarray, size: Tuple[int, int],
                        stride: Tuple[float, float], colour) -> None:
    """Lines from a sampling point to the four input pixels it mixes."""
    h, w = size
    sy, sx = stride
    # Index space of grid_sample (pixel k centred on k), border clamping.
    u = min(max(point[0] - 0.5, 0.0), w - 1.0)
    v = min(max(point[1] - 0.5, 0.0), h - 1.0)
    x0, y0 = int(math.floor(u)), int(math.floor(v))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax_, ay_ = u - x0, v - y0
    taps = {}
    for xx, wx in ((x0, 1 - ax_), (x1, ax_)):
        for yy, wy in ((y0, 1 - ay_), (y1, ay_)):
            taps[(xx, yy)] = taps.get((xx, yy), 0.0) + wx * wy
    px, py = point[0] * sx, point[1] * sy
    for (xx, yy), weight in taps.items():
        if weight < 0.005:
            continue
        cx, cy = (xx + 0.5) * sx, (yy + 0.5) * sy
        ax.plot([px, cx], [py, cy], '--', color=colour, linewidth=1.2)
        ax.plot(cx, cy, 's', color=colour, markersize=5)
        ax.annotate(
            f'{weight:.2f}', ((px + cx) / 2, (py + cy) / 2),
            color='black',
            fontsize=8,
            ha='center',
            bbox=dict(boxstyle='round,pad=0.15', fc='white', alpha=0.8))


def draw_offsets(image: ArrayLike,
                 positions: ArrayLike,
                 initial: ArrayLike,
                 scale_factor: int,
                 points: Sequence[Point],
                 stride: Optional[Tuple[float, float]] = None,
                 group: Optional[int] = None,
                 region: Optional[Box] = None,
                 highlight: Optional[int] = None,
                 grid: bool = True,
                 taps: bool = False,
                 title: Optional[str] = None,
                 ax: Optional[Any] = None,
                 out_file: Optional[str] = None) -> Any:
    """Draw initial and learned sampling points over an image (Fig. 7).

    For each low-resolution pixel in ``points`` and each drawn group, the
    ``s * s`` initial positions are hollow circles and arrows lead from them
    to the learned positions. With all groups drawn the colour tells the
    group, with one group it tells the sub-pixel ``(si, sj)``.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` RGB image, uint8 or
            float in ``[0, 1]``, stretched over the extent of the feature
            map, ``w * sx`` by ``h * sy`` image pixels (an image whose size
            defines the stride, or a coloured feature map).
        positions (Tensor | np.ndarray): ``(g, s * h, s * w, 2)`` learned
            positions in input pixels of one image, as
            :func:`sampling_positions` gives them.
        initial (Tensor | np.ndarray): The initial positions, same shape.
        scale_factor (int): Upsampling ratio ``s``.
        points (Sequence[tuple[int, int]]): Low-resolution ``(row, col)``
            pixels to draw.
        stride (tuple[float, float], optional): Image pixels per input pixel
            ``(sy, sx)``. Defaults to None: ``(H / h, W / w)``.
        group (int, optional): Draw only this group. Defaults to None (all).
        region (tuple, optional): ``(x0, y0, x1, y1)`` in image pixels to
            zoom on. Defaults to None, the whole image.
        highlight (int, optional): Index into ``points`` of a pixel to box in
            yellow. Defaults to None.
        grid (bool): Draw the low-resolution pixel borders (when at most 64
            fit in the view). Defaults to True.
        taps (bool): For the highlighted pixel, draw the bilinear taps of its
            bottom-right output pixel (first drawn group). Defaults to False.
        title (str, optional): Axes title. Defaults to None.
        ax (matplotlib.axes.Axes, optional): Draw into these axes. Defaults
            to None, a new figure.
        out_file (str, optional): Save the figure here. Defaults to None.

    Returns:
        matplotlib.axes.Axes: The axes drawn into.

    Raises:
        ValueError: ``group`` or ``highlight`` out of range, or shapes that
            do not match.
    """
    img = _as_numpy(image)
    pos = _as_numpy(positions).astype(np.float64)
    init = _as_numpy(initial).astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3), got {img.shape}')
    if pos.ndim != 4 or pos.shape[-1] != 2 or pos.shape != init.shape:
        raise ValueError('positions and initial must both be (g, sh, sw, 2),'
                         f' got {pos.shape} and {init.shape}')
    s = scale_factor
    groups, out_h, out_w, _ = pos.shape
    if out_h % s or out_w % s:
        raise ValueError(f'positions of {out_h}x{out_w} output pixels do not '
                         f'fit scale_factor={s}')
    h, w = out_h // s, out_w // s
    H, W = img.shape[:2]
    sy, sx = stride if stride is not None else (H / h, W / w)
    extent = (0.0, w * sx, h * sy, 0.0)
    drawn = _check_group(group, groups)
    if highlight is not None:
        highlight = _check_index('highlight', highlight, len(points),
                                 f'{len(points)} points are drawn')
    for r, c in points:
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f'point {(r, c)} is outside the {h}x{w} map')

    fig = None
    if ax is None:
        fig, axes = _new_axes()
        ax = axes[0, 0]
    ax.imshow(img, extent=extent, interpolation='nearest')
    view = region if region is not None else (0.0, 0.0, extent[1],
                                              extent[2])
    if grid:
        _draw_grid(ax, (sy, sx), (h, w), view)

    colours = _colours(groups if group is None else s * s)
    scale = np.array([sx, sy])
    starts, vectors, cols = [], [], []
    for r, c in points:
        block = np.s_[r * s:(r + 1) * s, c * s:(c + 1) * s]
        for gi in drawn:
            a = init[gi][block].reshape(-1, 2) * scale
            b = pos[gi][block].reshape(-1, 2) * scale
            starts.append(a)
            vectors.append(b - a)
            cols += ([colours[gi]] * (s * s) if group is None else colours)
    if starts:
        a, v = np.concatenate(starts), np.concatenate(vectors)
        centres = np.array([[(c + 0.5) * sx, (r + 0.5) * sy]
                            for r, c in points])
        ax.plot(centres[:, 0], centres[:, 1], '+', color='white',
                markersize=6, markeredgewidth=1.2)
        ax.scatter(a[:, 0], a[:, 1], s=14, facecolors='none',
                   edgecolors=cols, linewidths=0.9)
        ax.quiver(a[:, 0], a[:, 1], v[:, 0], v[:, 1], color=cols,
                  angles='xy', scale_units='xy', scale=1, width=0.004,
                  headwidth=4, headlength=5, headaxislength=4.5)
    if highlight is not None:
        from matplotlib.patches import Rectangle
        r, c = points[highlight]
        ax.add_patch(Rectangle((c * sx, r * sy), sx, sy, fill=False,
                               edgecolor='yellow', linewidth=2))
        if taps:
            last = pos[drawn[0], r * s + s - 1, c * s + s - 1]
            _draw_bilinear_taps(ax, last, (h, w), (sy, sx),
                                colours[drawn[0]] if group is None else
                                colours[-1])
    if group is None and groups > 1:
        from matplotlib.lines import Line2D
        handles = [Line2D([], [], color=colours[gi], marker='>',
                          linestyle='-', label=f'group {gi}')
                   for gi in range(groups)]
        ax.legend(handles=handles, loc='upper right', fontsize=7,
                  framealpha=0.7)
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[3], view[1])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if fig is not None and out_file is not None:
        save_figure(fig, out_file)
    return ax


def draw_features(feature: Tensor,
                  upsampled: Tensor,
                  baseline: Optional[Tensor] = None,
                  stride: Tuple[float, float] = (1.0, 1.0),
                  mode: str = 'pca',
                  titles: Optional[Sequence[str]] = None,
                  axes: Optional[Sequence[Any]] = None,
                  out_file: Optional[str] = None) -> List[Any]:
    """The feature map before and after upsampling, side by side.

    All maps are coloured with one mapping fitted on ``feature`` (see
    :func:`feature_to_rgb`) and drawn over the same image extent, so their
    pixels line up with each other and with the image.

    Args:
        feature (Tensor): The upsampler's input ``(C, h, w)``.
        upsampled (Tensor): Its output ``(C, s * h, s * w)``.
        baseline (Tensor, optional): A reference upsampling of ``feature``
            (e.g. bilinear), ``(C, s * h, s * w)``. Defaults to None.
        stride (tuple[float, float]): Image pixels ``(sy, sx)`` per input
            pixel. Defaults to ``(1.0, 1.0)``.
        mode (str): ``'pca'`` or ``'mean'``. Defaults to ``'pca'``.
        titles (Sequence[str], optional): One title per map. Defaults to
            None (sizes and names).
        axes (Sequence[matplotlib.axes.Axes], optional): One axes per map.
            Defaults to None, a new figure.
        out_file (str, optional): Save the figure here. Defaults to None.

    Returns:
        list[matplotlib.axes.Axes]: The axes drawn into.
    """
    maps = [feature, upsampled] + ([baseline] if baseline is not None else [])
    if titles is None:
        names = ['input', 'upsampled', 'baseline']
        titles = [
            f'{name} {m.shape[1]}x{m.shape[2]}' for name, m in zip(names, maps)
        ]
    if len(titles) != len(maps):
        raise ValueError(f'{len(maps)} maps need as many titles, got '
                         f'{len(titles)}')
    fig = None
    if axes is None:
        fig, grid = _new_axes(1, len(maps), panel=(5.0, 5.0))
        axes = list(grid[0])
    if len(axes) < len(maps):
        raise ValueError(f'{len(maps)} maps need as many axes, got '
                         f'{len(axes)}')
    sy, sx = stride
    extent = (0, feature.shape[2] * sx, feature.shape[1] * sy, 0)
    for ax, rgb, title in zip(axes, feature_to_rgb(maps, mode), titles):
        ax.imshow(rgb, extent=extent, interpolation='nearest')
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if fig is not None and out_file is not None:
        save_figure(fig, out_file)
    return list(axes[:len(maps)])


class OffsetFigure(NamedTuple):
    """What :func:`visualize_offsets` drew.

    Attributes:
        out_file (str): The PNG written.
        points (list[tuple[int, int]]): The low-resolution pixels drawn on the
            image, the first one in the close view.
        region (tuple): The zoomed region ``(x0, y0, x1, y1)``, image pixels.
        stride (tuple[float, float]): Image pixels ``(sy, sx)`` per input
            pixel.
        offset_rms (float): Root mean square length of the learned offsets
            (positions minus initial positions), in input pixels.
        offset_max (float): Their largest length.
    """
    out_file: str
    points: List[Point]
    region: Box
    stride: Tuple[float, float]
    offset_rms: float
    offset_max: float


def visualize_offsets(layer: DySample,
                      feat: Tensor,
                      image: ArrayLike,
                      out_file: str,
                      stride: Optional[Tuple[float, float]] = None,
                      group: Optional[int] = None,
                      num_points: int = 8,
                      point_mode: str = 'edge',
                      region: Optional[Box] = None,
                      valid_shape: Optional[Tuple[int, int]] = None,
                      feature_mode: str = 'pca',
                      title: Optional[str] = None) -> OffsetFigure:
    """Draw the whole figure for one upsampler and save it.

    Row 1: the image with the sampling points of ``num_points``
    low-resolution pixels; a zoom on ``region`` with the low-resolution grid
    and the points of every pixel in it; a close view of the first point over
    the input feature, with the bilinear taps of its bottom-right output
    pixel. Row 2: :func:`draw_features` of the input, the DySample output and
    a bilinear upsampling.

    Args:
        layer (DySample): The upsampler.
        feat (Tensor): Its input ``(N, C, h, w)``; the first image is drawn.
        image (Tensor | np.ndarray): ``(H, W, 3)`` RGB image the feature was
            computed from (the network input, padding included).
        out_file (str): The PNG to write.
        stride (tuple[float, float], optional): Image pixels ``(sy, sx)`` per
            input pixel. Defaults to None: ``(H / h, W / w)``.
        group (int, optional): Draw only this group. Defaults to None (all).
        num_points (int): Low-resolution pixels drawn on the whole image.
            Defaults to 8.
        point_mode (str): ``'edge'`` or ``'grid'``, see
            :func:`select_points`. Defaults to ``'edge'``.
        region (tuple, optional): ``(x0, y0, x1, y1)`` in image pixels to
            zoom on; points are chosen inside it. Defaults to None: a window
            of ``2 * ZOOM_RADIUS + 1`` low-resolution pixels around the first
            point.
        valid_shape (tuple[int, int], optional): ``(H, W)`` of the image
            without padding; points are chosen inside it. Defaults to None.
        feature_mode (str): ``'pca'`` or ``'mean'``, see
            :func:`feature_to_rgb`. Defaults to ``'pca'``.
        title (str, optional): A first line for the figure title. Defaults
            to None.

    Returns:
        OffsetFigure: The file and what was drawn.

    Raises:
        ValueError: ``group`` out of range, a bad mode, or a region with no
            low-resolution pixel in it.
    """
    if feat.dim() != 4 or feat.shape[0] < 1:
        raise ValueError('feat must be (N, C, H, W) with N >= 1, got shape '
                         f'{tuple(feat.shape)}')
    _check_group(group, layer.groups)
    if point_mode not in POINT_MODES:
        raise ValueError(f'point_mode must be one of {POINT_MODES}, got '
                         f'{point_mode!r}')
    if feature_mode not in FEATURE_MODES:
        raise ValueError(f'feature_mode must be one of {FEATURE_MODES}, got '
                         f'{feature_mode!r}')
    feat = feat[:1].detach()
    img = _as_numpy(image)
    H, W = img.shape[:2]
    h, w = feat.shape[-2:]
    stride = stride if stride is not None else (H / h, W / w)
    sy, sx = stride
    s = layer.scale_factor

    with torch.no_grad():
        pos = sampling_positions(layer, feat)[0]
        init = sampling_positions(layer, feat, learned=False)[0]
        upsampled = layer(feat)[0]
        bilinear = F.interpolate(
            feat, scale_factor=s, mode='bilinear', align_corners=False)[0]
    pos, init, upsampled, bilinear, feat = (
        t.cpu() for t in (pos, init, upsampled, bilinear, feat))
    lengths = (pos - init).norm(dim=-1)
    drawn = _check_group(group, layer.groups)
    lengths = lengths[drawn]
    rms = float(lengths.pow(2).mean().sqrt())
    peak = float(lengths.max())

    valid_box = None if valid_shape is None else (0.0, 0.0,
                                                  float(valid_shape[1]),
                                                  float(valid_shape[0]))
    cells = _cell_box(valid_box, stride, (h, w))
    if region is not None:
        x0, y0, x1, y1 = region
        if not (x1 > x0 and y1 > y0):
            raise ValueError('region must be (x0, y0, x1, y1) with x1 > x0 '
                             f'and y1 > y0, got {tuple(region)}')
        region_cells = _cell_box(region, stride, (h, w))
        if region_cells[2] <= region_cells[0] or \
                region_cells[3] <= region_cells[1]:
            raise ValueError(
                f'region {tuple(region)} holds no low-resolution pixel '
                f'centre (the {h}x{w} map has a stride of '
                f'{sy:.3g}x{sx:.3g} image pixels)')
        cells = region_cells
    points = select_points(feat[0], num_points, point_mode, cells)
    focus = points[0]
    if region is None:
        # A window of low-res pixels around the focus, shifted (not cut)
        # where it would cross the border of the map.
        size = 2 * ZOOM_RADIUS + 1
        rows, cols = min(size, h), min(size, w)
        top = min(max(focus[0] - ZOOM_RADIUS, 0), h - rows)
        left = min(max(focus[1] - ZOOM_RADIUS, 0), w - cols)
        region = (left * sx, top * sy, (left + cols) * sx,
                  (top + rows) * sy)
    r0, c0, r1, c1 = _cell_box(region, stride, (h, w))
    if (r1 - r0) * (c1 - c0) <= MAX_DENSE_POINTS:
        zoom_points = [(r, c) for r in range(r0, r1) for c in range(c0, c1)]
    else:
        zoom_points = [(r, c) for r, c in points
                       if r0 <= r < r1 and c0 <= c < c1]
    if focus not in zoom_points:
        zoom_points.append(focus)

    feat_rgb = feature_to_rgb([feat[0]], feature_mode)[0]
    fig, axes = _new_axes(2, 3, panel=(5.5, 5.5))
    which = 'all groups' if group is None else f'group {group}'
    draw_offsets(img, pos, init, s, points, stride, group,
                 highlight=0, grid=False, ax=axes[0, 0],
                 title=f'{len(points)} {point_mode} points, {which}')
    from matplotlib.patches import Rectangle
    axes[0, 0].add_patch(Rectangle(
        (region[0], region[1]), region[2] - region[0],
        region[3] - region[1], fill=False, edgecolor='red', linewidth=1.5))
    draw_offsets(img, pos, init, s, zoom_points, stride, group,
                 region=region, highlight=zoom_points.index(focus),
                 ax=axes[0, 1],
                 title='zoom (red box): initial o -> learned sampling point')
    r, c = focus
    close = ((c - 1) * sx, (r - 1) * sy, (c + 2) * sx, (r + 2) * sy)
    draw_offsets(feat_rgb, pos, init, s, [focus], stride, group,
                 region=close, highlight=0, taps=True, ax=axes[0, 2],
                 title=f'pixel (row {r}, col {c}) over the input feature;\n'
                 'dashed: bilinear taps of its bottom-right output pixel')

    zero = ' (= zero learned offsets)' if layer.init_mode == 'bilinear' else ''
    draw_features(
        feat[0],
        upsampled,
        bilinear,
        stride,
        feature_mode,
        titles=[
            f'input feature {h}x{w} ({feature_mode})',
            f'DySample x{s} {s * h}x{s * w}',
            f'bilinear x{s}{zero}',
        ],
        axes=list(axes[1]))

    lines = [title] if title else []
    lines.append(f'{layer.__class__.__name__}({layer.extra_repr()}); '
                 f'learned offsets ({which}): rms {rms:.3f}, '
                 f'max {peak:.3f} input px (stride {sy:.3g}x{sx:.3g} '
                 'image px)')
    fig.suptitle('\n'.join(lines), fontsize=11)
    fig.tight_layout()
    save_figure(fig, out_file)
    return OffsetFigure(out_file, points, tuple(float(v) for v in region),
                        (float(sy), float(sx)), rms, peak)


# --------------------------------------------------------------------------
# Inputs: a bare layer on an image, or a model from a config
# --------------------------------------------------------------------------
def image_feature(image: ArrayLike,
                  channels: int,
                  stride: int = 8,
                  seed: int = 0) -> Tensor:
    """A stand-in feature map of an image for a bare upsampler.

    The image's colour and grey-level gradients (Sobel), average-pooled by
    ``stride``, through a fixed random ``1x1`` projection to ``channels``
    channels: a map whose content, edges included, follows the image, so
    a layer's offsets vary with it.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` RGB image, uint8.
        channels (int): Channels ``C`` of the feature.
        stride (int): Image pixels per feature pixel; the map has
            ``ceil(H / stride) x ceil(W / stride)`` pixels. Defaults to 8.
        seed (int): Seed of the projection. Defaults to 0.

    Returns:
        Tensor: ``(1, C, ceil(H / stride), ceil(W / stride))`` float32.

    Example:
        >>> import numpy as np
        >>> image_feature(np.zeros((30, 40, 3), np.uint8), 16, 8).shape
        torch.Size([1, 16, 4, 5])
    """
    if isinstance(channels, bool) or not isinstance(channels, int) \
            or channels < 1:
        raise ValueError(f'channels must be a positive int, got {channels!r}')
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f'stride must be a positive int, got {stride!r}')
    img = torch.as_tensor(_as_numpy(image)).float().div(255)
    img = img.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    gray = img.mean(1, keepdim=True)
    sobel = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]) / 4
    kernels = torch.stack([sobel, sobel.T]).unsqueeze(1)
    grad = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode='replicate'), kernels)
    base = torch.cat([img - 0.5, grad, grad.norm(dim=1, keepdim=True)], 1)
    size = (math.ceil(img.shape[2] / stride), math.ceil(img.shape[3] / stride))
    base = F.adaptive_avg_pool2d(base, size)
    base = (base - base.mean((2, 3), keepdim=True)) / (
        base.std((2, 3), keepdim=True) + 1e-6)
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(channels, base.shape[1], generator=gen)
    return torch.einsum('oc,nchw->nohw', proj, base) / math.sqrt(
        base.shape[1])


def randomize_offsets(layer: DySample,
                      feat: Tensor,
                      rms: float = 0.3,
                      seed: int = 0) -> float:
    """Random offset weights scaled to a visible offset length.

    Untrained offsets are noise: this only shows how the drawing reads. The
    offset (and dynamic scope) weights are drawn from ``N(0, 1)`` and the
    offset weights rescaled so that the learned offsets on ``feat`` have a
    root mean square length of ``rms`` input pixels (the initial DySample
    weights give offsets of about 0.001 pixels, too short to see).

    Args:
        layer (DySample): The layer, changed in place.
        feat (Tensor): An input ``(N, C, H, W)``.
        rms (float): Target root mean square offset length, input pixels.
            Defaults to 0.3.
        seed (int): Seed of the weights. Defaults to 0.

    Returns:
        float: The root mean square length reached.
    """
    if not rms > 0:
        raise ValueError(f'rms must be positive, got {rms!r}')
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = layer.offset.weight
        weight.copy_(torch.randn(weight.shape, generator=gen))
        layer.offset.bias.zero_()
        if layer.dyscope:
            layer.scope.weight.copy_(
                torch.randn(layer.scope.weight.shape, generator=gen))
        reached = 0.0
        # Offsets are linear in the weights except under hard_scope's tanh,
        # which a few rescaling rounds bring close enough.
        for _ in range(4):
            learned = sampling_positions(layer, feat) - sampling_positions(
                layer, feat, learned=False)
            reached = float(learned.norm(dim=-1).pow(2).mean().sqrt())
            if reached == 0 or abs(reached / rms - 1) < 1e-3:
                break
            weight.mul_(rms / reached)
    return reached


def build_model_from_config(config: Any,
                            checkpoint: Optional[str] = None,
                            cfg_options: Optional[dict] = None,
                            device: str = 'cpu',
                            allow_partial_checkpoint: bool = False
                            ) -> Tuple[nn.Module, Any]:
    """Build a model from a config for inference, with its weights.

    Args:
        config (str | mmengine.Config): Config file or object; its
            ``default_scope`` becomes the default scope.
        checkpoint (str, optional): An mmengine checkpoint to load, after
            checking that it fits the model (see
            :mod:`mmdysample.utils.checkpoint_fit`). Defaults to None (the
            weights the model is built with).
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.
        device (str): Device of the model. Defaults to ``'cpu'``.
        allow_partial_checkpoint (bool): Load a checkpoint that leaves
            weights missing or shaped otherwise, with warnings (the DySample
            layers' offset weights are still required). Defaults to False.

    Returns:
        tuple[nn.Module, mmengine.Config]: The model in eval mode and the
        config.

    Raises:
        ValueError: The model has no DySample layer, or the checkpoint holds
            no weights for one of them.
    """
    from mmengine.config import Config

    from mmdysample.utils.checkpoint_fit import load_checked_checkpoint

    if isinstance(config, str):
        cfg = Config.fromfile(config)
    else:
        cfg = copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_model(cfg)
    layers = find_upsamplers(model)
    if checkpoint is not None:
        ckpt = load_checked_checkpoint(model, checkpoint,
                                       allow_partial_checkpoint)
        state = ckpt.get('state_dict', ckpt)
        keys = {k[len('module.'):] if k.startswith('module.') else k
                for k in state}
        missing = [
            name for name, _ in layers if f'{name}.offset.weight' not in keys
        ]
        if missing:
            raise ValueError(
                f'checkpoint {checkpoint} has no offset weights for the '
                f'DySample layers {missing}; drawing their initial offsets '
                'would pass for learned ones')
    return model.to(device).eval(), cfg


class ModelInput(NamedTuple):
    """An image prepared for a model.

    Attributes:
        inputs (Tensor): Preprocessed batch ``(1, 3, H, W)``.
        data_samples (Any): The data samples, or None.
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image as the model sees
            it (resized, padding included, before normalisation).
        valid_shape (tuple[int, int]): ``(h, w)`` of the image without
            padding.
    """
    inputs: Tensor
    data_samples: Any
    image: np.ndarray
    valid_shape: Tuple[int, int]


def _test_pipeline(cfg: Any) -> Optional[list]:
    for key in ('test_dataloader', 'val_dataloader'):
        pipeline = cfg.get(key, {}).get('dataset', {}).get('pipeline')
        if pipeline:
            return list(pipeline)
    return cfg.get('test_pipeline')


def prepare_image(model: nn.Module, cfg: Any, img_path: str) -> ModelInput:
    """Run an image file through the config's test pipeline and the model's
    data preprocessor.

    Annotation loading is dropped from the test pipeline. A config without a
    test pipeline feeds the image as it is (BGR, as ``LoadImageFromFile``
    reads it) to the data preprocessor, which normalises and pads it.

    Args:
        model (nn.Module): A model with a ``data_preprocessor``.
        cfg (mmengine.Config): Its config.
        img_path (str): The image file.

    Returns:
        ModelInput: The batch and the image to draw on.
    """
    import mmcv
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DefaultScope

    if not osp.isfile(img_path):
        raise FileNotFoundError(f'image {img_path!r} does not exist')
    pipeline = _test_pipeline(cfg)
    if pipeline:
        # Transforms are looked up in the config's scope (mmdet / mmseg).
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
            pipeline = Compose([
                t for t in pipeline
                if 'LoadAnnotations' not in str(t['type'])
            ])
        data = pipeline(dict(img_path=img_path, img_id=0))
    else:
        img = mmcv.imread(img_path)
        data = dict(inputs=torch.from_numpy(img).permute(2, 0, 1).contiguous())
    raw = data['inputs']  # (3, h, w) uint8, channel order of the loader
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    inputs = batch['inputs']
    data_samples = batch.get('data_samples')
    h, w = raw.shape[-2:]
    image = np.zeros((inputs.shape[-2], inputs.shape[-1], 3), np.uint8)
    raw = raw.permute(1, 2, 0).cpu().numpy()
    preprocessor = cfg.model.get('data_preprocessor') or {}
    if not preprocessor.get('rgb_to_bgr', False):
        raw = raw[..., ::-1]  # loaded as BGR
    image[:h, :w] = raw[:image.shape[0], :image.shape[1]]
    if data_samples and 'img_shape' in data_samples[0].metainfo:
        h, w = data_samples[0].metainfo['img_shape'][:2]
    return ModelInput(inputs, data_samples, image, (int(h), int(w)))
