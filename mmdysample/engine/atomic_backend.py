# Copyright (c) mmdysample contributors. All rights reserved.
"""A local file backend whose writes are atomic.

mmengine's ``LocalBackend.put`` opens the destination with ``'wb'`` and
writes into it, so a job killed (or a node lost) mid-write leaves a truncated
``iter_N.pth`` under the final name, and without ``fsync`` a power loss can
leave a checkpoint that ``last_checkpoint`` names but whose data never
reached the disk. :class:`AtomicLocalBackend` writes to a temporary file in
the same directory, flushes and fsyncs it, renames it over the destination
with :func:`os.replace` and fsyncs the directory: a reader sees either the
old file or the whole new one.

``CheckpointHook`` and ``Runner.save_checkpoint`` write through the backend
named by ``backend_args``, so ``default_hooks.checkpoint.backend_args =
dict(backend='atomic_local')`` is all a config needs;
:func:`mmdysample.utils.load_config` sets it by default.
"""
import os
import os.path as osp
import re
import uuid
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend

#: Temporary files are ``.<name>.<pid>.<random>.tmp`` beside ``<name>``.
TMP_SUFFIX = '.tmp'
_TEMP_NAME = re.compile(r'^\.(.+)\.\d+\.[0-9a-f]{8}\.tmp$')


def temp_path_for(filepath: str) -> str:
    """A fresh temporary path in ``filepath``'s directory.

    Args:
        filepath (str): The destination file.

    Returns:
        str: ``<dir>/.<name>.<pid>.<random>.tmp``.

    Example:
        >>> path = temp_path_for('/ckpts/iter_4.pth')
        >>> path.startswith('/ckpts/.iter_4.pth.') and path.endswith('.tmp')
        True
    """
    dirname, name = osp.split(filepath)
    unique = f'{os.getpid()}.{uuid.uuid4().hex[:8]}'
    return osp.join(dirname, f'.{name}.{unique}{TMP_SUFFIX}')


def temp_target(tmp_name: str) -> Optional[str]:
    """The destination name a temporary file of :func:`atomic_write` was
    for, or None when ``tmp_name`` is not one.

    Example:
        >>> temp_target('.iter_4.pth.123.0a1b2c3d.tmp')
        'iter_4.pth'
        >>> temp_target('iter_4.pth') is None
        True
    """
    match = _TEMP_NAME.match(tmp_name)
    return match.group(1) if match else None


def _fsync_dir(dirname: str) -> None:
    """Make a rename in ``dirname`` durable (POSIX; a no-op elsewhere)."""
    if os.name != 'posix':
        return
    fd = os.open(dirname, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that no reader sees a partial file.

    The bytes go to a temporary file beside ``filepath`` (same file system,
    so the rename is atomic), which is flushed, fsynced and renamed over
    ``filepath``; the directory is then fsynced so the rename survives a
    power loss. On any error the temporary file is removed and
    ``filepath`` is left as it was.

    Args:
        data (bytes): The content.
        filepath (str | Path): The destination; missing parent directories
            are created.

    Example:
        >>> import tempfile
        >>> path = osp.join(tempfile.mkdtemp(), 'sub', 'a.bin')
        >>> atomic_write(b'abc', path)
        >>> open(path, 'rb').read(), os.listdir(osp.dirname(path))
        (b'abc', ['a.bin'])
    """
    filepath = osp.abspath(os.fspath(filepath))
    dirname = osp.dirname(filepath)
    os.makedirs(dirname, exist_ok=True)
    tmp = temp_path_for(filepath)
    try:
        # ``open`` (not mkstemp) so the file gets the usual umask
        # permissions, as mmengine's own writes do.
        with open(tmp, 'xb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(dirname)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` with atomic :meth:`put` / :meth:`put_text`.

    Reading, listing and removing are ``LocalBackend``'s. Select it with
    ``backend_args=dict(backend='atomic_local')`` wherever mmengine takes
    ``backend_args`` (``CheckpointHook``, ``Runner.save_checkpoint``,
    ``mmengine.fileio.dump``).

    Example:
        >>> import tempfile
        >>> from mmengine.fileio import get_file_backend
        >>> backend = get_file_backend(
        ...     backend_args=dict(backend='atomic_local'))
        >>> path = osp.join(tempfile.mkdtemp(), 'last_checkpoint')
        >>> backend.put_text('iter_4.pth', path)
        >>> backend.get_text(path)
        'iter_4.pth'
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes atomically; see :func:`atomic_write`.

        Args:
            obj (bytes): Data to be written.
            filepath (str | Path): Path to write data.
        """
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text atomically; see :func:`atomic_write`.

        Args:
            obj (str): Text to be written.
            filepath (str | Path): Path to write data.
            encoding (str): The encoding. Defaults to 'utf-8'.
        """
        atomic_write(obj.encode(encoding), filepath)
