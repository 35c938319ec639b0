# Copyright (c) mmdysample contributors. All rights reserved.
"""Type aliases and argument checks shared by the visualisation modules."""
from typing import Tuple, Union

import numpy as np
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]
#: ``(x0, y0, x1, y1)`` in image pixels.
Box = Tuple[float, float, float, float]
#: A low-resolution pixel as ``(row, col)``.
Point = Tuple[int, int]


def _check_index(name: str, value: int, size: int, what: str) -> int:
    """``value`` if it indexes ``size`` items, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if not 0 <= value < size:
        raise ValueError(f'{name}={value} is out of range: {what}, so valid '
                         f'values are 0..{size - 1}')
    return int(value)


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
