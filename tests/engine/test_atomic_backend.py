# Copyright (c) mmdysample contributors. All rights reserved.
import os
import os.path as osp
import stat

import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner import save_checkpoint

from mmdysample.engine import AtomicLocalBackend, atomic_write
from mmdysample.engine.atomic_backend import temp_path_for, temp_target
from mmdysample.utils import load_config


def test_registered_with_mmengine(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    assert isinstance(backend, LocalBackend)  # reads, lists, removes


def test_put_writes_whole_file_and_no_temp(tmp_path):
    path = tmp_path / 'deep' / 'iter_2.pth'
    AtomicLocalBackend().put(b'x' * 1000, str(path))
    assert path.read_bytes() == b'x' * 1000
    assert os.listdir(path.parent) == ['iter_2.pth']
    AtomicLocalBackend().put_text('iter_2.pth', str(tmp_path / 'last'))
    assert (tmp_path / 'last').read_text() == 'iter_2.pth'


def test_permissions_match_a_plain_write(tmp_path):
    atomic_write(b'a', tmp_path / 'a')
    LocalBackend().put(b'b', str(tmp_path / 'b'))
    mode = [stat.S_IMODE(os.stat(tmp_path / n).st_mode) for n in 'ab']
    assert mode[0] == mode[1]


def test_mmengine_save_checkpoint_goes_through_it(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(AtomicLocalBackend, 'put',
                        lambda self, obj, path: written.append(path) or
                        atomic_write(obj, path))
    path = str(tmp_path / 'iter_1.pth')
    save_checkpoint({'state_dict': {'w': torch.arange(3)}},
                    path,
                    backend_args=dict(backend='atomic_local'))
    assert written == [path]
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.arange(3))


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    """An error before the rename (here: fsync) keeps the previous content
    under the name, and removes the temporary file."""
    path = tmp_path / 'last_checkpoint'
    atomic_write(b'iter_2.pth', path)

    def broken_fsync(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='No space'):
        atomic_write(b'iter_4.pth', path)
    assert path.read_bytes() == b'iter_2.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']


def test_fsyncs_file_then_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f'/proc/self/fd/{fd}'))
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    path = tmp_path / 'iter_2.pth'
    atomic_write(b'data', path)
    assert len(synced) == 2
    assert temp_target(osp.basename(synced[0])) == 'iter_2.pth'
    assert synced[1] == str(tmp_path)


def test_temp_names_round_trip():
    tmp = temp_path_for('/w/epoch_12.pth')
    assert osp.dirname(tmp) == '/w'
    assert temp_target(osp.basename(tmp)) == 'epoch_12.pth'
    assert temp_target('.epoch_12.pth') is None
    assert temp_path_for('/w/a') != temp_path_for('/w/a')


def _write_config(tmp_path, checkpoint):
    path = tmp_path / 'cfg.py'
    path.write_text(f'default_hooks = dict(checkpoint={checkpoint!r})\n')
    return str(path)


def test_load_config_makes_checkpoints_atomic_and_resume_safe(tmp_path):
    cfg = load_config(
        _write_config(tmp_path, dict(type='CheckpointHook', interval=1)))
    assert cfg.default_hooks.checkpoint.backend_args == dict(
        backend='atomic_local')
    types = [h['type'] for h in cfg.custom_hooks]
    assert types.count('SafeResumeHook') == 1
    assert types.count('RNGStateHook') == 1
    # Loading twice (tools/test.py after train.py) adds nothing twice.
    again = load_config(
        _write_config(tmp_path,
                      dict(type='CheckpointHook', interval=1)),
        cfg_options={'custom_hooks': cfg.custom_hooks})
    assert [h['type'] for h in again.custom_hooks] == types


@pytest.mark.parametrize('checkpoint', [
    dict(type='CheckpointHook', backend_args=dict(backend='petrel')),
    dict(type='CheckpointHook', out_dir='s3://bucket/ckpts'),
    dict(type='MyCheckpointHook'),
])
def test_load_config_keeps_other_backends(tmp_path, checkpoint):
    cfg = load_config(_write_config(tmp_path, checkpoint))
    assert cfg.default_hooks.checkpoint.to_dict() == checkpoint
