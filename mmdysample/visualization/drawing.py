# Copyright (c) mmdysample contributors. All rights reserved.
"""Drawing sampling points and feature maps into matplotlib axes.

:func:`draw_offsets` draws initial and learned sampling points over an image
(with the low-resolution grid and bilinear taps), :func:`draw_features` a
feature map before and after upsampling, and :func:`save_figure` writes a
figure. Figures are drawn with matplotlib's object-oriented API and saved with
the Agg canvas, so no display and no global backend switch is needed.
"""
import math
import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from .common import ArrayLike, Box, Point, _as_numpy, _check_index
from .feature_colours import feature_to_rgb

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
