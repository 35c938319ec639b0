# Copyright (c) mmdysample contributors. All rights reserved.
"""Params and FLOPs of each upsampler's model, cached in the work dir.

The counts are those of ``tools/analysis_tools/get_flops.py``
(:func:`~mmdysample.utils.complexity.model_complexity`: mmengine's
``FlopAnalyzer``, one multiply-add = one FLOP, ``grid_sample`` counted, at
the host's usual input size unless a shape is given). They do not depend on
the seed, so they are measured once per upsampler and stored in
``<work_dir>/<upsampler>/complexity.json`` beside the config digest and the
shape they were measured for; the sweep reports them relative to the first
upsampler named.
"""
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from ..utils.complexity import model_complexity
from ..utils.model import build_model
from .records import COMPLEXITY_FILE, read_json, write_json


def measure(cfg: Config, shape: Optional[Sequence[int]] = None) -> Dict:
    """``params``, ``flops`` and ``shape`` of ``cfg.model``.

    A model whose forward cannot be traced still gets its Params (the
    model is built and counted); ``flops`` is then None and ``error`` says
    why.
    """
    try:
        result = model_complexity(cfg, shape)
        return dict(
            params=int(result['params']),
            flops=float(result['flops']),
            shape=list(result['shape']))
    except Exception as err:  # a tracing failure must not stop the sweep
        error = f'{type(err).__name__}: {err}'.splitlines()[0]
    try:
        params = sum(p.numel() for p in build_model(cfg).parameters())
    except Exception:  # the run itself will report a broken model
        params = None
    return dict(
        params=params,
        flops=None,
        shape=list(shape) if shape else None,
        error=error)


def cached_complexity(cfg: Config, upsampler_dir: str, digest: str,
                      shape: Optional[Sequence[int]] = None) -> Dict:
    """:func:`measure`, read from / written to ``complexity.json`` in
    ``upsampler_dir``; a cache of another config digest or shape is
    measured again."""
    path = osp.join(upsampler_dir, COMPLEXITY_FILE)
    wanted = list(shape) if shape else None
    cached = read_json(path)
    if (cached is not None and cached.get('digest') == digest
            and cached.get('requested_shape') == wanted):
        return cached
    result = dict(measure(cfg, shape), digest=digest, requested_shape=wanted)
    write_json(result, path)
    return result
