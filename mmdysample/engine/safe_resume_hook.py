# Copyright (c) mmdysample contributors. All rights reserved.
"""Resume only from a complete checkpoint."""
import logging
import os
import os.path as osp
import re
import zipfile
from typing import Optional

from mmengine.dist import barrier, is_distributed, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from .atomic_backend import atomic_write, temp_target

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'  # torch's legacy format is a bare pickle
_CKPT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def checkpoint_is_complete(path: str) -> bool:
    """Whether ``path`` is a whole checkpoint rather than a partial write.

    ``torch.save`` writes a zip archive whose directory is at the end, so a
    truncated file has the zip magic at the start and no readable
    directory. Files in torch's legacy (non-zip) format and checkpoint
    directories (DeepSpeed) are taken as complete, anything else as not.
    Reads the zip directory only, not the tensors.

    Args:
        path (str): A checkpoint file or directory.

    Returns:
        bool: False for a missing, empty or truncated checkpoint.

    Example:
        >>> import io, tempfile, torch
        >>> buf = io.BytesIO()
        >>> torch.save({'w': torch.zeros(3)}, buf)
        >>> path = osp.join(tempfile.mkdtemp(), 'iter_2.pth')
        >>> _ = open(path, 'wb').write(buf.getvalue())
        >>> checkpoint_is_complete(path)
        True
        >>> _ = open(path, 'wb').write(buf.getvalue()[:200])
        >>> checkpoint_is_complete(path)
        False
    """
    if osp.isdir(path):
        return True
    if not osp.isfile(path):
        return False
    with open(path, 'rb') as f:
        head = f.read(len(_ZIP_MAGIC))
    if head.startswith(_PICKLE_PROTO):
        return True  # legacy torch format: nothing to check cheaply
    if head != _ZIP_MAGIC:
        return False  # empty, cut inside the magic, or not torch's
    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                name.endswith('data.pkl') for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def newest_complete_checkpoint(dirname: str) -> Optional[str]:
    """The complete ``iter_N.pth`` / ``epoch_N.pth`` with the largest N.

    Args:
        dirname (str): The directory the checkpoints are in.

    Returns:
        str | None: Its path, or None when there is none.
    """
    if not osp.isdir(dirname):
        return None
    found = []
    for name in os.listdir(dirname):
        match = _CKPT_NAME.match(name)
        if match:
            found.append((int(match.group(2)), name))
    for _, name in sorted(found, reverse=True):
        path = osp.join(dirname, name)
        if checkpoint_is_complete(path):
            return path
    return None


@HOOKS.register_module()
class SafeResumeHook(Hook):
    """Resume from the newest complete checkpoint, never a partial one.

    With ``resume=True`` and no ``load_from``, mmengine resumes from the
    file that ``<work_dir>/last_checkpoint`` names and fails if that file
    is missing or truncated: a run killed while ``CheckpointHook`` rewrote
    ``last_checkpoint`` in place, a file written without
    :class:`~mmdysample.engine.AtomicLocalBackend` and cut short, a data
    loss after a crash, or an old checkpoint that ``max_keep_ckpts`` removed
    before the new one was complete. Before mmengine resumes, this hook
    checks the named file (:func:`checkpoint_is_complete`); if it is not
    whole, it points ``last_checkpoint`` at the newest complete
    ``iter_N.pth`` / ``epoch_N.pth`` beside it (or removes it when there is
    none, so training starts afresh) and logs what it did. It also removes
    the temporary files of writes that were killed. An explicit resume path
    (``--resume PATH``) that is not whole raises a ``ValueError`` instead.

    :func:`mmdysample.utils.load_config` adds it to every config.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        cfg = runner.cfg
        resume = cfg.get('resume', getattr(runner, '_resume', False))
        if not resume:
            return
        load_from = cfg.get('load_from', getattr(runner, '_load_from', None))
        if load_from is not None:
            if '://' not in str(load_from) and not checkpoint_is_complete(
                    load_from):
                newest = newest_complete_checkpoint(osp.dirname(load_from))
                raise ValueError(
                    f'resume checkpoint {load_from!r} is missing or '
                    f'incomplete (a partial write?); the newest complete '
                    f'checkpoint beside it is {newest!r}')
            return
        if is_main_process():
            self._repair_last_checkpoint(runner.work_dir)
        if is_distributed():
            barrier()

    @staticmethod
    def _repair_last_checkpoint(work_dir: str) -> None:
        save_file = osp.join(work_dir, 'last_checkpoint')
        if not osp.exists(save_file):
            return
        with open(save_file) as f:
            named = f.read().strip()
        if '://' in named:
            return  # a remote out_dir: not ours to check
        ckpt_dir = osp.dirname(named) if named else work_dir
        _remove_stale_temp_files(ckpt_dir)
        if named and checkpoint_is_complete(named):
            return
        newest = newest_complete_checkpoint(ckpt_dir)
        if newest is None:
            os.remove(save_file)
            print_log(
                f'last_checkpoint names {named!r}, which is missing or '
                f'incomplete, and {ckpt_dir} holds no complete checkpoint: '
                'training starts from the beginning',
                logger='current',
                level=logging.WARNING)
            return
        atomic_write(newest.encode(), save_file)
        print_log(
            f'last_checkpoint named {named!r}, which is missing or '
            f'incomplete; resuming from {newest} instead',
            logger='current',
            level=logging.WARNING)


def _remove_stale_temp_files(dirname: str) -> None:
    """Remove the temporary files of checkpoint writes that were killed."""
    if not osp.isdir(dirname):
        return
    for name in os.listdir(dirname):
        target = temp_target(name)
        if target is not None and _CKPT_NAME.match(target):
            os.remove(osp.join(dirname, name))
