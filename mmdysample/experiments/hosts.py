# Copyright (c) mmdysample contributors. All rights reserved.
"""Where a config's model takes ``upsample_cfg``, and the config of a run.

A *host* is any dict inside ``cfg.model`` that has an ``upsample_cfg`` key:
the :class:`~mmdysample.models.DySampleFPN` neck, the
:class:`~mmdysample.models.DySampleSegformerHead` decode head, the pixel
decoder inside a MaskFormer head, or a module of another package that
follows the same convention. No table of host types: the key is the
contract, so any of our configs (and a user's) is found by walking. A stock
module that has a drop-in host (mmdet's ``FPN``, mmseg's ``SegformerHead``,
...) is swapped for it first (:func:`require_hosts`), so an unmodified mmdet
/ mmseg config works too.
"""
import copy
import hashlib
import json
from typing import Any, List, Sequence, Tuple

from mmengine.config import Config

# STOCK: the pseudo name of every host's own upsampling, the default
# ``upsample_cfg`` of the host's class (DySampleFPN: mmdet's nearest
# ``dict(mode='nearest')``; DySampleSegformerHead: None, one bilinear
# resize per level, the paper's SegFormer baseline; the pixel decoders:
# None, mmdet's nearest).
from ..utils.host_swap import (STOCK, default_upsample_cfg, format_path,
                               no_host_error, swap_in_hosts)

#: Names :func:`~mmdysample.models.build_upsampler` builds that
#: :func:`~mmdysample.models.list_upsamplers` does not list (transposed
#: convolutions upsample through ``stride``, not ``scale_factor``).
UNLISTED_UPSAMPLERS = ('deconv', )

#: Keys of a run's config that say where and how it runs, not what it
#: computes; left out of :func:`config_digest`.
_PLACE_KEYS = ('work_dir', 'launcher', 'experiment_name')

Path = Tuple[Any, ...]


def _walk(node: Any, path: Path):
    if isinstance(node, dict):
        if 'upsample_cfg' in node:
            yield path
        for key, value in node.items():
            yield from _walk(value, path + (key, ))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk(value, path + (index, ))


def find_upsample_hosts(model_cfg: Any) -> List[Path]:
    """The paths of every dict in a model config with an ``upsample_cfg``.

    Args:
        model_cfg (dict): ``cfg.model`` (nested dicts and lists).

    Returns:
        list[tuple]: Key / index paths from ``model_cfg``, in the order of
        the config; empty when no part of the model takes ``upsample_cfg``.

    Example:
        >>> find_upsample_hosts(dict(
        ...     backbone=dict(type='ResNet'),
        ...     decode_head=dict(pixel_decoder=dict(upsample_cfg=None))))
        [('decode_head', 'pixel_decoder')]
    """
    return list(_walk(model_cfg, ()))


def _node(root: Any, path: Path) -> Any:
    for part in path:
        root = root[part]
    return root


def require_hosts(cfg: Config, config_path: str) -> List[Path]:
    """Swap every stock module with a drop-in host for it, then
    :func:`find_upsample_hosts` of ``cfg.model``; none is an error.

    An unmodified mmdet / mmseg config works: its ``FPN``,
    ``SegformerHead``, ... become their hosts (with their default, stock
    ``upsample_cfg``) by
    :func:`~mmdysample.utils.host_swap.swap_in_hosts`.

    Raises:
        ValueError: No module of the model can take an upsampler (the
            message says where the model upsamples and which hosts exist).
    """
    swap_in_hosts(cfg, every=True, config=config_path)
    hosts = find_upsample_hosts(cfg.get('model', {}))
    if not hosts:
        raise no_host_error(cfg, config_path, 'no upsampler to compare')
    return hosts


def known_upsamplers() -> List[str]:
    """Every name :func:`~mmdysample.models.build_upsampler` builds, and
    :data:`STOCK` (the hosts' own upsampling)."""
    from ..models import list_upsamplers
    return sorted(
        set(list_upsamplers()) | set(UNLISTED_UPSAMPLERS) | {STOCK})


def check_upsampler_names(names: Sequence[str]) -> List[str]:
    """The names as a list, or an error naming what is wrong with them.

    Raises:
        ValueError: No name, a repeated one, or a name no registered
            upsampler has (the message lists the known names).
        TypeError: A name is not a string.
    """
    names = list(names)
    if not names:
        raise ValueError('--upsamplers needs at least one name')
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f'upsampler names must be strings, got {name!r}')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'--upsamplers names {repeated} more than once')
    known = known_upsamplers()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f'--upsamplers: unknown upsampler(s) {unknown}; the registered '
            f'ones are {known}')
    return names


def config_for_run(cfg: Config, hosts: Sequence[Path], upsampler: str,
                   seed: int) -> Config:
    """A copy of ``cfg`` with only the upsampler and the seed changed.

    Every host's ``upsample_cfg`` becomes ``upsampler`` (a name, as
    :func:`~mmdysample.models.build_upsampler` takes it: extra arguments
    of the original dict, such as DySample's ``groups``, are dropped) and
    ``randomness.seed`` becomes ``seed`` (its other keys kept). For
    :data:`STOCK`, a host keeps an ``upsample_cfg`` in the stock module's
    own form (None, or interpolation keywords such as mmdet's
    ``dict(mode='bilinear')``) and otherwise takes
    :func:`stock_upsample_cfg`, its class's default.

    Example:
        >>> cfg = Config(dict(model=dict(neck=dict(
        ...     type='DySampleFPN', upsample_cfg=dict(type='DySample',
        ...                                           groups=2))),
        ...     randomness=dict(seed=0, deterministic=True),
        ...     default_scope='mmdet'))
        >>> run = config_for_run(cfg, [('neck', )], 'bilinear', 3)
        >>> run.model.neck.upsample_cfg, run.randomness.seed
        ('bilinear', 3)
        >>> run.randomness.deterministic, cfg.model.neck.upsample_cfg.groups
        (True, 2)
        >>> config_for_run(cfg, [('neck', )], 'stock', 3).model.neck
        {'type': 'DySampleFPN', 'upsample_cfg': {'mode': 'nearest'}}
        >>> cfg.model.neck.upsample_cfg = dict(mode='bilinear')
        >>> config_for_run(cfg, [('neck', )], 'stock', 3).model.neck
        {'type': 'DySampleFPN', 'upsample_cfg': {'mode': 'bilinear'}}
    """
    cfg = copy.deepcopy(cfg)
    for path in hosts:
        host = _node(cfg.model, path)
        if upsampler != STOCK:
            host['upsample_cfg'] = upsampler
        elif not _is_stock_form(host.get('upsample_cfg')):
            host['upsample_cfg'] = stock_upsample_cfg(
                host, cfg.get('default_scope'))
    randomness = dict(cfg.get('randomness') or {})
    randomness['seed'] = seed
    cfg.randomness = randomness
    return cfg


def _is_stock_form(upsample_cfg: Any) -> bool:
    """None or interpolation keywords: the stock module's own resize."""
    return upsample_cfg is None or (isinstance(upsample_cfg, dict)
                                    and 'type' not in upsample_cfg)


def stock_upsample_cfg(host: dict, scope: Any = None) -> Any:
    """The default ``upsample_cfg`` of a host's class: its own upsampling.

    Args:
        host (dict): The host's config (with ``type``).
        scope (str, optional): The registry scope its type is looked up
            in (the config's ``default_scope``).

    Raises:
        ValueError: The type is not registered, or its constructor has no
            default for ``upsample_cfg``.
    """
    from mmengine.registry import MODELS
    host_type = host.get('type')
    if isinstance(host_type, str):
        # the registry a build in that scope reads (mmdet's, mmseg's, ...)
        with MODELS.switch_scope_and_registry(scope) as registry:
            cls = registry.get(host_type)
    else:
        cls = host_type
    if cls is None:
        raise ValueError(f'upsampler {STOCK!r}: the host type {host_type!r} '
                         f'is not registered (scope {scope!r})')
    return default_upsample_cfg(cls)


def config_digest(cfg: Config) -> str:
    """A short hash of what a run's config computes.

    The place it runs in (``work_dir``, ``launcher``, ``experiment_name``)
    is left out, so a sweep moved to another directory or relaunched under
    ``torchrun`` still matches its finished runs; the number of processes
    (hence the total batch size under a launcher) is not part of it.
    """
    data = {k: v for k, v in cfg.to_dict().items() if k not in _PLACE_KEYS}
    text = json.dumps(data, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
