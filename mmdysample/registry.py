# Copyright (c) mmdysample contributors. All rights reserved.
"""The ``mmdysample`` scope: ``mmdysample::`` config bases.

A user config may inherit one of ours by its path under ``configs/``,
e.g. ``_base_ = 'mmdysample::segformer/<name>.py'``.

mmengine resolves the ``mmdysample::`` prefix only for names in
``mmengine.config.utils.MODULE2PACKAGE``, which ``import mmdysample`` extends
(:func:`register_config_prefix`). Since that lookup happens while the config
file is parsed, before its ``custom_imports`` run, ``import mmdysample``
must come first: our tools and ``mim`` do it; a script that calls
``Config.fromfile`` itself imports mmdysample before.

mmengine then tags every typed dict of the inherited file that has no scope
yet with ``_scope_='mmdysample'`` and, when building it, looks for registries
of scope ``mmdysample`` (importing this module). mmdysample is a plugin of
two hosts, not a toolbox: its configs mean the run's host (the config's
``default_scope``, ``mmdet`` or ``mmseg``). So each mmengine root registry
gets a child of scope ``mmdysample`` that looks every name up in the host's
registry, e.g. ``CocoDataset`` in mmdet's ``DATASETS``.
"""
from importlib import import_module
from typing import Optional, Type

import mmengine.registry as root_registries
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import DefaultScope, Registry

SCOPE = 'mmdysample'

# mmengine passes the value to ``is_installed`` and ``get_installed_path``.
# The package's own name would point them at ``<site-packages>/mmdysample``,
# which an editable install does not have; a module name that is no
# distribution makes both fall back to ``importlib.util.find_spec``, which
# finds the package wherever it is imported from.
CONFIG_PACKAGE = 'mmdysample.version'


def register_config_prefix() -> None:
    """Let mmengine resolve ``_base_ = 'mmdysample::<path>'``.

    mmengine reads ``MODULE2PACKAGE`` at parse time, so this takes effect
    for every config parsed after ``import mmdysample``.
    """
    MODULE2PACKAGE.setdefault(SCOPE, CONFIG_PACKAGE)


def host_scope() -> str:
    """The scope a ``_scope_='mmdysample'`` dict is built in.

    It is the innermost default scope that is not ``mmdysample`` itself:
    mmengine pushes a temporary default scope of ``mmdysample`` while it
    builds such a dict (and everything built inside it), on top of the
    run's default scope that the Runner set from the config.

    Returns:
        str: The host scope, e.g. ``'mmdet'`` or ``'mmseg'``.

    Raises:
        KeyError: If no default scope other than ``mmdysample`` is set.
    """
    for instance in reversed(list(DefaultScope._instance_dict.values())):
        if instance.scope_name != SCOPE:
            return instance.scope_name
    raise KeyError(
        'A config reached through an `mmdysample::` base builds in the '
        "host's scope, but no default scope is set: give the config "
        "`default_scope = 'mmdet'` (or 'mmseg') and build it with a Runner, "
        'or inside `DefaultScope.get_instance(name, scope_name=...)`.')


class HostScopeRegistry(Registry):
    """A registry of scope ``mmdysample`` that looks names up in the host.

    Args:
        root (Registry): The mmengine root registry it becomes a child of.
    """

    def __init__(self, root: Registry):
        super().__init__(root.name, parent=root, scope=SCOPE)

    def host_registry(self) -> Registry:
        """The host scope's registry of this kind (the root if it has
        none)."""
        scope = host_scope()
        try:
            import_module(f'{scope}.registry')
        except ImportError as e:
            raise KeyError(
                f'The host scope {scope!r} of an `mmdysample::` config '
                'cannot be imported') from e
        registry = self.parent._search_child(scope)
        # not `or`: a registry whose modules are not imported yet is empty,
        # and Registry defines __len__
        return self.parent if registry is None else registry

    def get(self, key: str) -> Optional[Type]:
        """Look ``key`` up in the host registry (which searches its own
        parents and, for a ``scope.Name`` key, that scope)."""
        return self.host_registry().get(key)


def _register_host_scope() -> dict:
    children = {}
    for name in root_registries.__all__:
        root = getattr(root_registries, name)
        if isinstance(root, Registry) and root.parent is None:
            children[name] = HostScopeRegistry(root)
    return children


HOST_SCOPE_REGISTRIES = _register_host_scope()
