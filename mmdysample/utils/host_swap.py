# Copyright (c) mmdysample contributors. All rights reserved.
"""Swap the stock modules of an mmdet / mmseg config for their drop-in hosts.

A *drop-in host* is a class this package registers in mmdet's or mmseg's
``MODELS`` that subclasses a stock class registered in the same registry
(``DySampleFPN`` -> mmdet's ``FPN``, ``DySampleSegformerHead`` -> mmseg's
``SegformerHead``, ...): same arguments, same state-dict keys and, with its
default ``upsample_cfg``, the stock output. The table of drop-ins is derived
from the registries (:func:`drop_in_hosts`), never written down, so a host
added later is found without a change here.

:func:`swap_in_hosts` rewrites ``cfg.model`` in place:

- ``upsampler=None`` (``tools/train.py`` / ``tools/test.py`` without
  ``--upsampler``): only the modules that *need* their host are swapped,
  those whose ``upsample_cfg`` the stock class cannot take (mmseg's
  ``UPerHead`` has no such argument; mmdet's ``FPN`` takes only
  ``F.interpolate`` keywords, not a name or a dict with ``type``), and the
  enclosing modules that have a drop-in too (a pixel decoder's MaskFormer
  head). A config that needs nothing is left as it is.
- ``upsampler='DySample'`` (``--upsampler``): every module with a drop-in
  is swapped, and every host's ``upsample_cfg`` becomes the name
  (:data:`STOCK`: the host's own default, hence the stock model). A model
  with no host is a ``ValueError`` that says where the model upsamples and
  which hosts exist.
- ``every=True`` (``compare_upsamplers``): every module with a drop-in is
  swapped, and a host without an ``upsample_cfg`` key gets its default, so
  the sweep finds it; ``upsample_cfg`` values already set stay.

A stock checkpoint then loads into the swapped model with exactly the new
upsamplers' keys missing (none with :data:`STOCK`).
"""
import copy
import functools
import inspect
import logging
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

from mmengine.config import Config
from mmengine.logging import print_log

#: The pseudo upsampler name of every host's own upsampling: the default
#: ``upsample_cfg`` of its class (nearest in ``DySampleFPN``, the one-step
#: bilinear resize in ``DySampleSegformerHead``, ...).
STOCK = 'stock'

#: Registries whose drop-ins are looked for (the child registries of
#: mmengine's root ``MODELS`` that the hosts register in).
HOST_SCOPES = ('mmdet', 'mmseg')

#: Calls by which a stock module's source file upsamples a feature map;
#: what :func:`where_it_upsamples` looks for.
_UPSAMPLING = re.compile(
    r'\b(?:F\.interpolate|interpolate|resize|nn\.Upsample|Upsample|'
    r'upsample|build_upsample_layer)\(')

Path = Tuple[Any, ...]


def _package(cls: type) -> str:
    return (cls.__module__ or '').split('.')[0]


def _registry(scope: str):
    """The ``MODELS`` registry of ``scope`` (importing its package's
    registry module), or None when the package is not installed."""
    from mmengine.registry import MODELS
    try:
        with MODELS.switch_scope_and_registry(scope) as registry:
            return registry if registry.scope == scope else None
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def _drop_ins() -> Tuple[Tuple[type, type, str], ...]:
    found = []
    for scope in HOST_SCOPES:
        registry = _registry(scope)
        if registry is None:
            continue
        registry.import_from_location()
        classes = {
            obj
            for obj in registry.module_dict.values() if inspect.isclass(obj)
        }
        for host in classes:
            if _package(host) != 'mmdysample':
                continue
            stock = next(
                (c for c in host.__mro__[1:] if _package(c) != 'mmdysample'),
                None)
            if stock in classes:
                found.append((stock, host, scope))
    return tuple(found)


def drop_in_hosts() -> Dict[type, type]:
    """The stock class -> host class table, read off the registries.

    A host is a class of this package registered in mmdet's or mmseg's
    ``MODELS`` whose first base class from another package is registered
    in the same registry. The upsamplers (root registry only) and the
    hooks are not hosts.

    Raises:
        ValueError: Two hosts claim one stock class (the swap would be
            ambiguous).

    Example:
        >>> import mmdysample  # noqa: F401 (registers the hosts)
        >>> from mmdet.models.necks import FPN
        >>> drop_in_hosts()[FPN].__name__
        'DySampleFPN'
    """
    import mmdysample.models  # noqa: F401 (registers the hosts)
    table: Dict[type, type] = {}
    for stock, host, _ in _drop_ins():
        other = table.setdefault(stock, host)
        if other is not host:
            raise ValueError(
                f'two drop-in hosts for {stock.__name__}: {other.__name__} '
                f'and {host.__name__}')
    return table


def takes_upsample_cfg(cls: type) -> bool:
    """Whether ``cls.__init__`` has an ``upsample_cfg`` parameter."""
    try:
        return 'upsample_cfg' in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def default_upsample_cfg(cls: type) -> Any:
    """The default ``upsample_cfg`` of a host class: its own upsampling.

    Raises:
        ValueError: The class has no ``upsample_cfg`` with a default.
    """
    param = inspect.signature(cls).parameters.get('upsample_cfg')
    if param is None or param.default is inspect.Parameter.empty:
        raise ValueError(f'{cls.__name__} has no default upsample_cfg to '
                         f'fall back to (upsampler {STOCK!r})')
    return copy.deepcopy(param.default)


def _split(type_name: str, scope: Optional[str]) -> Tuple[Optional[str],
                                                           str]:
    if '.' in type_name:
        prefix, name = type_name.split('.', 1)
        return prefix, name
    return scope, type_name


def _resolve(type_value: Any, scope: Optional[str]) -> Optional[type]:
    """The class a config's ``type`` names in ``scope`` (None if none)."""
    if inspect.isclass(type_value):
        return type_value
    if not isinstance(type_value, str):
        return None
    prefix, name = _split(type_value, scope)
    for where in dict.fromkeys((prefix, scope, None)):
        registry = _registry(where) if where else None
        if registry is None:
            from mmengine.registry import MODELS as registry
        found = registry.get(name)
        if found is not None:
            return found
    return None


def _walk(node: Any, path: Path, scope: Optional[str]):
    """``(path, dict, class, scope)`` of every dict with a ``type`` in a
    model config, parents first; ``scope`` is where its type resolves."""
    if isinstance(node, dict):
        here = scope
        cls = None
        if 'type' in node:
            cls = _resolve(node['type'], scope)
            if isinstance(node['type'], str) and '.' in node['type']:
                here = node['type'].split('.', 1)[0]
            yield path, node, cls, scope
        for key, value in node.items():
            if key != 'type':
                yield from _walk(value, path + (key, ), here)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk(value, path + (index, ), scope)


def format_path(path: Path) -> str:
    """``('decode_head', 'pixel_decoder')`` -> ``'model.decode_head.pixel_
    decoder'``; list indices as ``[i]``.

    Example:
        >>> format_path(('roi_head', 'mask_head', 0))
        'model.roi_head.mask_head[0]'
    """
    text = 'model'
    for part in path:
        text += f'[{part}]' if isinstance(part, int) else f'.{part}'
    return text


def _needs_host(node: dict, stock: type) -> bool:
    """A stock module whose ``upsample_cfg`` only its host understands."""
    if 'upsample_cfg' not in node:
        return False
    if not takes_upsample_cfg(stock):
        return True
    value = node['upsample_cfg']
    # mmdet's form of the FPN / PAFPN argument: F.interpolate keywords.
    return isinstance(value, str) or (isinstance(value, dict)
                                      and 'type' in value)


def _host_type(type_value: Any, host: type) -> Any:
    if isinstance(type_value, str):
        prefix = type_value.split('.', 1)[0] + '.' if '.' in type_value \
            else ''
        return prefix + host.__name__
    return host


def where_it_upsamples(model_cfg: dict,
                       scope: Optional[str] = None) -> List[str]:
    """Modules of a model config whose class's source file upsamples.

    A static look, for an error message: every module below the model
    (the data preprocessor, which resizes images, left out) whose class's
    own source file calls ``interpolate``, ``resize``, ``Upsample`` or
    ``build_upsample_layer``, as ``'model.decode_head (PSPHead:
    mmseg/models/decode_heads/psp_head.py)'``.
    """
    found = []
    for path, _, cls, _ in _walk(model_cfg, (), scope):
        if (not path or path[0] == 'data_preprocessor'
                or not inspect.isclass(cls)):
            continue
        module = inspect.getmodule(cls)
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        if _UPSAMPLING.search(source):
            name = module.__name__.replace('.', '/') + '.py'
            found.append(f'{format_path(path)} ({cls.__name__}: {name})')
    return found


def no_host_error(cfg: Config, config: str, what: str) -> ValueError:
    """The error of a model with no host: where it upsamples, which hosts
    exist."""
    table = drop_in_hosts()
    hosts = ', '.join(
        sorted(f'{s.__name__} -> {h.__name__}' for s, h in table.items()
               if takes_upsample_cfg(h)))
    where = where_it_upsamples(cfg.model, cfg.get('default_scope'))
    places = ('; '.join(where) if where else
              'nowhere that a source file shows (no interpolate / resize / '
              'Upsample call in the classes of its modules)')
    return ValueError(
        f'{what}: no module of the model of {config!r} can '
        f'take an upsampler. The model upsamples in: {places}. Drop-in '
        f'hosts exist for: {hosts}. Use a model with one of those modules, '
        'or write a host for yours (docs/user_guides/add_dysample.md)')


def swap_in_hosts(cfg: Config,
                  upsampler: Optional[str] = None,
                  every: bool = False,
                  config: str = 'the config',
                  log: bool = True) -> List[str]:
    """Swap stock modules of ``cfg.model`` for their drop-in hosts.

    Args:
        cfg (Config): A loaded config (changed in place).
        upsampler (str, optional): Set every host's ``upsample_cfg`` to
            this name (:data:`STOCK`: the host's default), swapping every
            module that has a drop-in. Defaults to None: swap only the
            modules whose ``upsample_cfg`` their stock class cannot take.
        every (bool): Swap every module that has a drop-in, and give a
            host without an ``upsample_cfg`` key its default. Defaults to
            False.
        config (str): The config's name, for messages.
        log (bool): Print the one line that lists what was swapped.
            Defaults to True.

    Returns:
        list[str]: What changed, as ``'model.neck: FPN -> DySampleFPN'``
        and ``"model.neck.upsample_cfg='DySample'"`` lines.

    Raises:
        TypeError: ``upsampler`` is not a string.
        ValueError: ``upsampler`` is given (or ``every``) and the config
            has no model, or no module of the model has a host (the
            message says where the model upsamples and which hosts
            exist).

    Example:
        >>> import mmdysample  # noqa: F401
        >>> cfg = Config(dict(default_scope='mmdet', model=dict(
        ...     type='FasterRCNN', neck=dict(type='FPN', in_channels=[8, 16],
        ...                                  out_channels=8, num_outs=2))))
        >>> swap_in_hosts(cfg, 'DySample', log=False)
        ['model.neck: FPN -> DySampleFPN', "model.neck.upsample_cfg='DySample'"]
        >>> cfg.model.neck.type, cfg.model.neck.upsample_cfg
        ('DySampleFPN', 'DySample')
    """
    if upsampler is not None and not isinstance(upsampler, str):
        raise TypeError(f'--upsampler must be a name, got {upsampler!r}')
    model = cfg.get('model')
    if not isinstance(model, dict):
        if upsampler is not None or every:
            raise ValueError(f'{config}: no model dict to swap hosts in '
                             f'(model={model!r})')
        return []
    table = drop_in_hosts()
    hosts = set(table.values())
    swap_all = every or upsampler is not None
    nodes = list(_walk(model, (), cfg.get('default_scope')))
    chosen = set()
    for index, (path, node, cls, _) in enumerate(nodes):
        if cls in table and (swap_all or _needs_host(node, cls)):
            chosen.add(index)
            # the enclosing modules that have a drop-in come along
            for j, (outer, _, outer_cls, _) in enumerate(nodes[:index]):
                if outer_cls in table and path[:len(outer)] == outer:
                    chosen.add(j)
    changes = []
    # swapped modules whose upsample_cfg (if any) the stock class reads:
    # their stock upsampling is what they already have
    as_stock = {i for i in chosen if not _needs_host(nodes[i][1], nodes[i][2])}
    for index in sorted(chosen):
        path, node, cls, _ = nodes[index]
        host = table[cls]
        node['type'] = _host_type(node['type'], host)
        changes.append(f'{format_path(path)}: {cls.__name__} -> {host.__name__}')
    targets = []
    for index, (path, node, cls, _) in enumerate(nodes):
        host = table[cls] if index in chosen else cls
        if host in hosts and takes_upsample_cfg(host):
            targets.append((index, path, node, host))
    if upsampler is not None:
        if not targets:
            raise no_host_error(cfg, config, f'--upsampler {upsampler!r}')
        for index, path, node, host in targets:
            if upsampler != STOCK:
                node['upsample_cfg'] = upsampler
            elif index not in as_stock:
                node['upsample_cfg'] = default_upsample_cfg(host)
            changes.append(f'{format_path(path)}.upsample_cfg={upsampler!r}')
    elif every:
        for _, path, node, host in targets:
            if 'upsample_cfg' not in node:
                node['upsample_cfg'] = default_upsample_cfg(host)
    if log and changes:
        print_log(
            f'{config}: drop-in hosts swapped in: {"; ".join(changes)}',
            logger='current',
            level=logging.INFO)
    return changes

