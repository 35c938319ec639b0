# Copyright (c) mmdysample contributors. All rights reserved.
"""The whole figure for one upsampler: the paper's Fig. 7 for any layer.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085 (Fig. 7, Sec. 3.3).

The figure has two rows. Offsets: the whole image with arrows from the
initial (bilinear) to the learned position of the sampling points of a few
low-resolution pixels on edges of the feature, a zoom on a region (red box)
with the low-resolution grid and every point in it, and a close view of one
low-resolution pixel (yellow box) showing how its bottom-right output pixel is
interpolated from four input pixels. Features: the input feature, its
DySample upsampling and its bilinear upsampling, all three as colours of the
same PCA projection (or as channel means), aligned with the image above.
"""
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.upsamplers import DySample
from .common import ArrayLike, Box, Point, _as_numpy
from .drawing import (_check_group, _new_axes, draw_features, draw_offsets,
                      save_figure)
from .feature_colours import FEATURE_MODES, feature_to_rgb
from .geometry import sampling_positions
from .points import POINT_MODES, _cell_box, select_points

#: Low-resolution pixels drawn around the close-view pixel in the zoom panel
#: when no region is given (a window of ``2 * ZOOM_RADIUS + 1`` pixels).
ZOOM_RADIUS = 3
#: The zoom panel draws every low-resolution pixel of its region up to this
#: many, and only the chosen points beyond.
MAX_DENSE_POINTS = 256


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
