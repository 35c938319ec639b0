# Copyright (c) mmdysample contributors. All rights reserved.
"""Which ``gpu`` test files ``make gpu-check`` runs: those that need no host.

``make gpu-check`` runs the upsampler family without mmcv, mmdet or mmseg
(the hosts). A test file that imports a host unconditionally at module
level, itself or through a conftest or local helper module it imports, is a
*host file*: collecting it would skip it as a whole (``importorskip``) or
fail the collection (a plain import), so it is left out of the selection
instead. A test inside a selected file that needs a host only in its body
says so with ``pytest.importorskip`` and is reported as skipped.

The rule reads the files' syntax (``ast``) and imports nothing, so the
selection is known before any environment exists; ``pytest -m gpu`` then
picks the ``gpu`` tests of the selected files. Standard library only: the
orchestrator (``gpu_check.py``) runs before its environment exists.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Optional, Set, Tuple

#: Packages the gpu check runs without.
HOSTS = ('mmcv', 'mmdet', 'mmseg')


def _top(name: str) -> str:
    return name.split('.')[0]


def _module_level_imports(tree: ast.Module) -> List[str]:
    """Modules imported unconditionally by the module's own statements.

    Direct statements of the module body only: an import inside ``try``,
    ``if`` or a function is optional or lazy. ``pytest.importorskip('m')``
    anywhere in such a statement counts as importing ``m``.
    """
    names = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            names += [alias.name for alias in stmt.names]
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.module and not stmt.level:
                names.append(stmt.module)
        elif isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign)):
            for node in ast.walk(stmt):
                if (isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr == 'importorskip' and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    names.append(node.args[0].value)
    return names


def _parse(path: str) -> ast.Module:
    with open(path, encoding='utf-8') as f:
        return ast.parse(f.read(), filename=path)


def has_gpu_mark(path: str) -> bool:
    """Whether the file uses ``pytest.mark.gpu`` (a decorator, pytestmark).
    """
    for node in ast.walk(_parse(path)):
        if (isinstance(node, ast.Attribute) and node.attr == 'gpu'
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == 'mark'):
            return True
    return False


def host_import(path: str,
                seen: Optional[Set[str]] = None) -> Optional[str]:
    """The first host a module imports unconditionally, with the way there.

    Local modules (a ``name.py`` beside ``path``, where pytest's default
    import mode puts test helpers on ``sys.path``) are followed.

    Returns:
        str or None: e.g. ``'mmdet'`` or ``'mmdet (via train_helpers.py)'``;
        None if the module needs no host.
    """
    seen = set() if seen is None else seen
    seen.add(osp.abspath(path))
    here = osp.dirname(path)
    for name in _module_level_imports(_parse(path)):
        if _top(name) in HOSTS:
            return name
        local = osp.join(here, _top(name) + '.py')
        if osp.isfile(local) and osp.abspath(local) not in seen:
            found = host_import(local, seen)
            if found is not None:
                return f'{found} (via {osp.basename(local)})'
    return None


def _conftests(path: str, tests_root: str) -> List[str]:
    """conftest.py files pytest runs before ``path``: tests_root down."""
    found = []
    folder = osp.dirname(osp.abspath(path))
    root = osp.abspath(tests_root)
    while True:
        conftest = osp.join(folder, 'conftest.py')
        if osp.isfile(conftest):
            found.append(conftest)
        if folder == root or osp.dirname(folder) == folder:
            break
        folder = osp.dirname(folder)
    return found[::-1]


def needs_host(path: str, tests_root: str) -> Optional[str]:
    """Why ``path`` is a host file (its conftests count), or None."""
    for module in _conftests(path, tests_root) + [path]:
        found = host_import(module)
        if found is not None:
            where = '' if module == path else ' in ' + osp.relpath(module)
            return f'imports {found} at module level{where}'
    return None


def select_gpu_test_files(
        tests_root: str) -> Tuple[List[str], Dict[str, str]]:
    """The ``gpu`` test files to run without a host, and those left out.

    Args:
        tests_root (str): The tests folder (``tests``).

    Returns:
        tuple: Sorted paths of the selected files, and ``{path: reason}``
        for the ``gpu`` test files left out (paths as found under
        ``tests_root``).

    Raises:
        ValueError: If ``tests_root`` is not a folder.
    """
    if not osp.isdir(tests_root):
        raise ValueError(f'tests_root must be a folder, got {tests_root!r}')
    selected, excluded = [], {}
    for folder, dirs, files in os.walk(tests_root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(('.', '__')))
        for name in sorted(files):
            if not (name.startswith('test_') and name.endswith('.py')):
                continue
            path = osp.join(folder, name)
            if not has_gpu_mark(path):
                continue
            reason = needs_host(path, tests_root)
            if reason is None:
                selected.append(path)
            else:
                excluded[path] = reason
    return sorted(selected), excluded
