# Copyright (c) mmdysample contributors. All rights reserved.
"""A training run killed with SIGKILL loses nothing.

``tools/train.py`` runs in a subprocess through a small launcher that can
stop it at a chosen point (after an iteration, or half-way through writing
a checkpoint file), so the kill lands in the same place every time. Then
``--resume`` finishes the run, and the weights must equal those of a run
that was never interrupted, bit for bit on the CPU.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import (FASTER_RCNN, ITERS, NO_BUILD, REPO,
                           assert_same_weights, run_options, tool_env, train,
                           weights)

from mmdysample.engine.atomic_backend import temp_target

# data_root and uninterrupted (ITERS iterations, checkpoints at 2 and 4,
# without the fused CPU kernel, see NO_BUILD): tests/tools/conftest.py
pytestmark = pytest.mark.slow

# Runs tools/train.py; I12_STALL_AFTER_ITER=N stops after iteration N (its
# checkpoint written), I12_STALL_WRITING=NAME stops after writing half of
# the first file whose name contains NAME. Either way it touches
# I12_MARKER and sleeps until killed.
LAUNCHER = r'''
import builtins, os, runpy, sys, time

def stall():
    open(os.environ['I12_MARKER'], 'w').close()
    time.sleep(3600)

after_iter = int(os.environ.get('I12_STALL_AFTER_ITER', '0'))
if after_iter:
    from mmengine.runner import IterBasedTrainLoop
    run_iter = IterBasedTrainLoop.run_iter

    def stalling_run_iter(self, data_batch):
        run_iter(self, data_batch)
        if self._iter == after_iter:
            stall()

    IterBasedTrainLoop.run_iter = stalling_run_iter

writing = os.environ.get('I12_STALL_WRITING')
if writing:
    real_open = builtins.open

    class HalfWriter:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            stall()
        def __getattr__(self, name):
            return getattr(self.f, name)

    def stalling_open(file, mode='r', *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if ('w' in mode or 'x' in mode) and writing in os.path.basename(
                str(file)):
            return HalfWriter(f)
        return f

    builtins.open = stalling_open

sys.argv = ['tools/train.py'] + sys.argv[1:]
runpy.run_path('tools/train.py', run_name='__main__')
'''


def options(data_root, **extra):
    return run_options(data_root, ITERS, **extra)


@pytest.fixture(scope='session')
def final_weights(uninterrupted):
    return weights(uninterrupted / f'iter_{ITERS}.pth')


def train_until_killed(data_root, work_dir, extra=None, **stall):
    """Start a run, wait for it to reach the stall point, SIGKILL it."""
    marker = work_dir.parent / f'{work_dir.name}.stalled'
    env = tool_env(I12_MARKER=str(marker), **NO_BUILD, **stall)
    proc = subprocess.Popen(
        [
            sys.executable, '-c', LAUNCHER, FASTER_RCNN, '--work-dir',
            str(work_dir), *options(data_root, **(extra or {}))
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.monotonic() + 540
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail('the run ended before the stall point:\n' +
                            proc.stdout.read()[-4000:])
            if time.monotonic() > deadline:
                pytest.fail('the run did not reach the stall point')
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def last_checkpoint(work_dir):
    return os.path.basename(
        (work_dir / 'last_checkpoint').read_text().strip())


def resume(data_root, work_dir):
    log = train(
        FASTER_RCNN, work_dir, options(data_root), '--resume', env=NO_BUILD)
    assert 'resumed' in log.lower()
    return log


def test_killed_between_checkpoints_resumes_exactly(data_root, tmp_path,
                                                    final_weights):
    work_dir = tmp_path / 'run'
    train_until_killed(data_root, work_dir, I12_STALL_AFTER_ITER='3')
    assert last_checkpoint(work_dir) == 'iter_2.pth'
    assert not (work_dir / 'iter_4.pth').exists()

    log = resume(data_root, work_dir)
    assert 'iter_2.pth' in log
    assert_same_weights(weights(work_dir / 'iter_4.pth'), final_weights)


def test_killed_while_writing_a_checkpoint_resumes_exactly(
        data_root, tmp_path, final_weights):
    work_dir = tmp_path / 'run'
    train_until_killed(data_root, work_dir, I12_STALL_WRITING='iter_4.pth')
    # The atomic backend wrote half of a temporary file; the final name
    # never existed and last_checkpoint still names the previous file.
    names = os.listdir(work_dir)
    assert 'iter_4.pth' not in names
    temps = [n for n in names if temp_target(n) == 'iter_4.pth']
    assert len(temps) == 1
    assert last_checkpoint(work_dir) == 'iter_2.pth'

    resume(data_root, work_dir)
    assert_same_weights(weights(work_dir / 'iter_4.pth'), final_weights)
    # SafeResumeHook removed the killed write's leftovers.
    assert not [n for n in os.listdir(work_dir) if temp_target(n)]


def test_truncated_latest_checkpoint_is_never_resumed(data_root, tmp_path,
                                                      final_weights):
    """mmengine's own in-place writer, killed mid-write, leaves a truncated
    iter_4.pth; after a crash without fsync, last_checkpoint may name it.
    SafeResumeHook resumes from iter_2.pth instead."""
    work_dir = tmp_path / 'run'
    train_until_killed(
        data_root,
        work_dir, {'default_hooks.checkpoint.backend_args.backend': 'local'},
        I12_STALL_WRITING='iter_4.pth')
    partial = work_dir / 'iter_4.pth'
    whole = (work_dir / 'iter_2.pth').stat().st_size
    assert 0 < partial.stat().st_size < whole  # mmengine wrote in place
    (work_dir / 'last_checkpoint').write_text(str(partial))

    log = resume(data_root, work_dir)
    assert 'missing or incomplete; resuming from' in log
    assert_same_weights(weights(work_dir / 'iter_4.pth'), final_weights)
