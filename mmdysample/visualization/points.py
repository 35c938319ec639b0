# Copyright (c) mmdysample contributors. All rights reserved.
"""Choosing the low-resolution pixels whose sampling points are drawn.

:func:`select_points` picks them on the strongest feature gradients
(``'edge'``) or on a regular grid (``'grid'``), inside a box of the map.
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .common import Box, Point

POINT_MODES = ('edge', 'grid')


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
