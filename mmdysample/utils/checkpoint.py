# Copyright (c) mmdysample contributors. All rights reserved.
"""Load mmengine checkpoints with ``torch.load(weights_only=True)``.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and mmengine
0.10 calls ``torch.load`` without the argument. A checkpoint that mmengine
itself wrote holds more than tensors (the message hub's ``HistoryBuffer``
objects and their numpy arrays), so ``--resume`` and ``tools/test.py`` fail
with ``UnpicklingError: Weights only load failed``. Turning ``weights_only``
off would let a checkpoint file run arbitrary code; instead we allow exactly
the types mmengine writes.

One of them needs care: a ``HistoryBuffer`` pickles its statistics methods
as ``getattr(buffer, 'mean')``. Allowing ``getattr`` itself would let a
checkpoint fetch any attribute of any allowed type (``ndarray.tofile``, for
one); we register a ``getattr`` that only returns those statistics methods.

On torch < 2.6 (:data:`WEIGHTS_ONLY_DEFAULT_TORCH`) ``torch.load`` unpickles
in full by default, and mmengine's loaders with it: there is no guard to
extend, a checkpoint file can run code as with mmdet itself, and only
trusted checkpoints should be loaded (:func:`weights_only_by_default`).
"""
import functools
import pickle
from typing import List

import numpy as np
import torch

#: The first torch whose ``torch.load`` defaults to ``weights_only=True``.
WEIGHTS_ONLY_DEFAULT_TORCH = '2.6'


def weights_only_by_default() -> bool:
    """Whether this torch's ``torch.load`` (and so mmengine's checkpoint
    loading) refuses pickled code by default."""
    return torch.__version__ >= WEIGHTS_ONLY_DEFAULT_TORCH


def _numpy_types() -> List:
    """numpy objects needed to rebuild arrays, scalars and dtypes."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    types = [np.ndarray, np.dtype, _reconstruct, scalar]
    # Concrete dtype classes (numpy >= 1.25), e.g. ``Float64DType``.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return types


_STATISTICS = frozenset(('min', 'max', 'current', 'mean'))


def _history_buffer_getattr(obj, name: str):
    """``getattr`` limited to a HistoryBuffer's statistics methods."""
    from mmengine.logging import HistoryBuffer
    is_buffer = isinstance(obj, HistoryBuffer) or obj is HistoryBuffer
    # The built-in four, plus any registered with register_statistics().
    allowed = _STATISTICS.union(HistoryBuffer._statistics_methods)
    if not (is_buffer and name in allowed):
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({obj!r}, {name!r}); '
            'only HistoryBuffer statistics methods are allowed')
    return getattr(obj, name)


@functools.lru_cache(maxsize=None)
def allow_mmengine_checkpoint_types() -> None:
    """Add the types in mmengine checkpoints to torch's safe globals.

    Idempotent. Called by ``import mmdysample``, so configs that import the
    package through ``custom_imports`` resume and test with any torch.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4 has no weights_only default
        return
    from mmengine.logging import HistoryBuffer
    add_safe_globals([
        HistoryBuffer, *_numpy_types(),
        (_history_buffer_getattr, 'builtins.getattr')
    ])
