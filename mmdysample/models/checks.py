# Copyright (c) mmdysample contributors. All rights reserved.
"""Argument checks shared by the upsamplers' constructors (and the guide
protocol's base class); imports nothing of the package."""
import numbers
from typing import Any


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and ``value``.

    Integral floats such as ``2.0`` (common in configs) are accepted.

    Raises:
        TypeError: ``value`` is not a real number (or is a bool).
        ValueError: ``value`` is not integral, or is below ``minimum``.

    Example:
        >>> check_int('groups', 4.0, minimum=1)
        4
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be an integer, got {value!r} '
                        f'of type {type(value).__name__}')
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif float(value).is_integer():
        value = int(value)
    else:
        raise ValueError(f'{name} must be an integer, got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return value


def check_odd(name: str, value: Any) -> int:
    """``check_int(name, value, 1)`` for a kernel size that must be odd."""
    value = check_int(name, value, 1)
    if value % 2 == 0:
        raise ValueError(f'{name} must be odd, got {value}')
    return value
