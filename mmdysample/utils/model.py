# Copyright (c) mmdysample contributors. All rights reserved.
"""Build a config's model offline, for analysis, export and visualisation."""
import copy
from typing import Any

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope


def _is_pretrained(init_cfg: Any) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def drop_pretrained(cfg: Any) -> Any:
    """A copy of a model config without ``Pretrained`` initialisation.

    Every ``init_cfg=dict(type='Pretrained', ...)`` becomes None (or leaves a
    list of init configs) and every string ``pretrained`` becomes None, so a
    model builds without downloading weights.

    Args:
        cfg (Any): A model config (nested dicts and lists).

    Returns:
        Any: The cleaned copy.

    Example:
        >>> drop_pretrained(dict(backbone=dict(
        ...     init_cfg=dict(type='Pretrained', checkpoint='x.pth'))))
        {'backbone': {'init_cfg': None}}
    """
    if isinstance(cfg, dict):
        out = {}
        for key, value in cfg.items():
            if key == 'init_cfg' and _is_pretrained(value):
                out[key] = None
            elif key == 'init_cfg' and isinstance(value, (list, tuple)):
                kept = [v for v in value if not _is_pretrained(v)]
                out[key] = [drop_pretrained(v) for v in kept] or None
            elif key == 'pretrained' and isinstance(value, str):
                out[key] = None
            else:
                out[key] = drop_pretrained(value)
        return type(cfg)(out) if type(cfg) is not dict else out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(drop_pretrained(v) for v in cfg)
    return copy.deepcopy(cfg)


def _sync_bn_to_bn(cfg: Any) -> Any:
    """SyncBN needs a process group; in one process BN computes the same."""
    if isinstance(cfg, dict):
        return type(cfg)((key, 'BN' if key == 'type' and value == 'SyncBN'
                          else _sync_bn_to_bn(value))
                         for key, value in cfg.items())
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_sync_bn_to_bn(v) for v in cfg)
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in its scope, in eval mode, without downloads.

    ``Pretrained`` initialisation is dropped (see :func:`drop_pretrained`)
    and SyncBN becomes BN. The default scope is set only while building.
    """
    scope = cfg.get('default_scope', 'mmdet')
    model_cfg = _sync_bn_to_bn(drop_pretrained(cfg.model))
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    return model.eval()
