# Copyright (c) mmdysample contributors. All rights reserved.
"""The safe-unpickling guard of ``mmdysample.utils.checkpoint``.

Checkpoints are loaded the way ``--resume`` and ``tools/test.py`` load them:
mmengine's ``_load_checkpoint`` and a bare ``torch.load``, neither passing
``weights_only``, so torch's default (True) and the types
:func:`allow_mmengine_checkpoint_types` adds decide. Hostile payloads are
built with ``__reduce__`` and written with ``torch.save``, so they sit in a
real checkpoint archive; the ones that would run a command only touch a
marker file, which must not appear.
"""
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import save_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

import mmdysample  # noqa: F401 (registers the allowed types)
from mmdysample.utils.checkpoint import (WEIGHTS_ONLY_DEFAULT_TORCH,
                                         weights_only_by_default)

#: The refusals are torch's default weights_only=True, which the guard
#: extends; an older torch unpickles in full (mmdysample.utils.checkpoint).
needs_weights_only_default = pytest.mark.skipif(
    not weights_only_by_default(),
    reason=f'torch {torch.__version__} unpickles checkpoints in full by '
    f'default; the guard needs torch >= {WEIGHTS_ONLY_DEFAULT_TORCH}')


def load_with_mmengine(path):
    return _load_checkpoint(str(path), map_location='cpu')


def load_with_torch(path):
    return torch.load(str(path), map_location='cpu')


LOADERS = [
    pytest.param(load_with_mmengine, id='mmengine'),
    pytest.param(load_with_torch, id='torch')
]


class Reduce:
    """Pickles as ``func(*args)``, like any hostile ``__reduce__``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def history_buffer_with(methods, monkeypatch):
    """Save-time stand-in: a HistoryBuffer whose pickled state carries
    ``methods`` as its statistics table (``__getstate__`` is patched only
    while the returned context is open)."""
    buf = HistoryBuffer([1.0, 1.0], [1, 1])
    context = monkeypatch.context()
    patch = context.__enter__()
    patch.setattr(HistoryBuffer, '__getstate__',
                  lambda self: dict(self.__dict__,
                                    statistics_methods=methods))
    return buf, context


def write_buffer(tmp_path, monkeypatch, methods, name):
    buf, context = history_buffer_with(methods, monkeypatch)
    try:
        return write(tmp_path,
                     {'message_hub': {'log_scalars': {'loss': buf}}}, name)
    finally:
        context.__exit__(None, None, None)


def write(tmp_path, obj, name='evil.pth'):
    path = tmp_path / name
    torch.save(obj, str(path))
    return path


@pytest.fixture
def statistics_methods():
    """Leave ``HistoryBuffer``'s class-level method table as it was: a
    checkpoint that loads writes into it."""
    saved = dict(HistoryBuffer._statistics_methods)
    yield
    HistoryBuffer._statistics_methods.clear()
    HistoryBuffer._statistics_methods.update(saved)


# ----------------------------------------------------------------------------
# The getattr guard
# ----------------------------------------------------------------------------


@needs_weights_only_default
@pytest.mark.parametrize('load', LOADERS)
def test_getattr_on_another_type_is_refused(tmp_path, load):
    # numpy.ndarray is an allowed global, so torch alone would let a
    # checkpoint fetch any of its attributes.
    path = write(tmp_path, {'x': Reduce(getattr, np.ndarray, 'tofile')})
    with pytest.raises(pickle.UnpicklingError, match=r"'tofile'"):
        load(path)


@needs_weights_only_default
@pytest.mark.parametrize('load', LOADERS)
@pytest.mark.parametrize('name', ['update', '__init__', '__class__'])
def test_getattr_on_history_buffer_non_statistics_is_refused(
        tmp_path, load, name):
    path = write(tmp_path, {'x': Reduce(getattr, HistoryBuffer, name)})
    with pytest.raises(pickle.UnpicklingError, match=repr(name)):
        load(path)


@needs_weights_only_default
@pytest.mark.parametrize('load', LOADERS)
def test_history_buffer_smuggling_a_method_is_refused(
        tmp_path, load, statistics_methods, monkeypatch):
    """A HistoryBuffer's state updates the class-wide method table, which
    ``statistics()`` later calls: it must only ever hold statistics."""
    path = write_buffer(tmp_path, monkeypatch,
                        {'mean': Reduce(getattr, np.ndarray, 'tofile')},
                        'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match=r"'tofile'"):
        load(path)
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean


@pytest.mark.parametrize('load', LOADERS)
def test_history_buffer_statistics_load(tmp_path, load, statistics_methods,
                                        monkeypatch):
    """The same structure with HistoryBuffer's own methods is what mmengine
    writes, and loads."""
    path = write_buffer(tmp_path, monkeypatch, {'mean': HistoryBuffer.mean},
                        'good.pth')
    buf = load(path)['message_hub']['log_scalars']['loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == 1.0


# ----------------------------------------------------------------------------
# Classic payloads: nothing they name is allowed
# ----------------------------------------------------------------------------


def marker_command(marker):
    return f'touch {marker}'


PAYLOADS = {
    'os.system': (lambda m: Reduce(os.system, marker_command(m)), 'system'),
    'builtins.eval': (lambda m: Reduce(
        eval, f'open({str(m)!r}, "w").close()'), 'eval'),
    'builtins.exec': (lambda m: Reduce(
        exec, f'open({str(m)!r}, "w").close()'), 'exec'),
    'subprocess.Popen': (lambda m: Reduce(subprocess.Popen,
                                          ['touch', str(m)]), 'Popen'),
}


@needs_weights_only_default
@pytest.mark.parametrize('load', LOADERS)
@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_code_execution_payloads_are_refused(tmp_path, load, payload):
    make, global_name = PAYLOADS[payload]
    marker = tmp_path / 'pwned'
    path = write(tmp_path, {'state_dict': {}, 'meta': make(marker)})
    # Control: unpickled without weights_only, the payload does run.
    control = tmp_path / 'control'
    result = torch.load(
        str(write(tmp_path, make(control), 'control.pth')),
        weights_only=False)
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=60)
    assert control.exists()
    with pytest.raises(pickle.UnpicklingError, match=global_name):
        load(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------
# Real checkpoints still load
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('load', LOADERS)
def test_mmengine_checkpoint_with_message_hub_loads(tmp_path, load,
                                                    statistics_methods):
    """Written by mmengine's save_checkpoint with the message hub and
    numpy state a Runner stores (what ``--resume`` reads)."""
    hub = MessageHub.get_instance(f'i12-{tmp_path.name}')
    for step, loss in enumerate([1.0, 0.5, 0.25]):
        hub.update_scalar('train/loss', np.float64(loss))
        hub.update_scalar('train/lr', 0.01 / (step + 1))
    hub.update_info('iter', 3)
    hub.update_info('np_state', np.random.default_rng(0).random(4))
    hub.update_info('dtype', np.dtype('float32'))
    hub.update_info('keep_ckpt_ids', [2, 3])
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optim.step()
    checkpoint = dict(
        meta=dict(
            epoch=0,
            iter=3,
            seed=np.int64(42),
            experiment_name='i12',
            mmengine_version='0.10.7',
            dataset_meta=dict(classes=('a', 'b'))),
        state_dict=model.state_dict(),
        optimizer=optim.state_dict(),
        message_hub=hub.state_dict(),
        rng_state=dict(torch=torch.get_rng_state()))
    path = str(tmp_path / 'iter_3.pth')
    save_checkpoint(checkpoint, path)

    loaded = load(path)
    scalars = loaded['message_hub']['log_scalars']
    assert isinstance(scalars['train/loss'], HistoryBuffer)
    assert scalars['train/loss'].mean() == pytest.approx(1.75 / 3)
    assert scalars['train/loss'].current() == 0.25
    assert scalars['train/lr'].statistics('min') == pytest.approx(0.01 / 3)
    info = loaded['message_hub']['runtime_info']
    np.testing.assert_array_equal(info['np_state'],
                                  hub.get_info('np_state'))
    assert info['dtype'] == np.dtype('float32')
    assert loaded['meta']['seed'] == 42
    torch.testing.assert_close(loaded['state_dict']['weight'],
                               model.weight)
    assert loaded['optimizer']['param_groups'][0]['momentum'] == 0.9
    assert torch.equal(loaded['rng_state']['torch'], torch.get_rng_state())


@pytest.mark.parametrize('load', LOADERS)
def test_mmdet2_checkpoint_loads(tmp_path, load):
    """The layout mmcv 1.x wrote for mmdet 2.x / mmseg 0.x: state_dict,
    optimizer and a meta with CLASSES, versions, the config text and hook
    messages."""
    model = torch.nn.Conv2d(3, 4, 1)
    optim = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9,
                            weight_decay=1e-4)
    model(torch.ones(1, 3, 2, 2)).sum().backward()
    optim.step()
    checkpoint = dict(
        meta=dict(
            mmcv_version='1.7.1',
            time='Mon Jan  2 10:00:00 2023',
            mmdet_version='2.28.2',
            CLASSES=('person', 'bicycle', 'car'),
            config="model = dict(type='FasterRCNN')\n",
            env_info='sys.platform: linux',
            seed=0,
            exp_name='faster_rcnn_r50_fpn_1x_coco.py',
            epoch=12,
            iter=87960,
            # mmcv's EvalHook stored the metric as computed: a numpy
            # scalar for mmseg 0.x's mIoU.
            hook_msgs=dict(
                last_ckpt='work_dirs/x/epoch_12.pth',
                best_score=np.float64(0.4125),
                best_ckpt='work_dirs/x/best_mIoU_epoch_12.pth')),
        state_dict=OrderedDict(
            (k, v.cpu()) for k, v in model.state_dict().items()),
        optimizer=optim.state_dict())
    path = write(tmp_path, checkpoint, 'epoch_12.pth')
    loaded = load(path)
    assert loaded['meta']['CLASSES'] == ('person', 'bicycle', 'car')
    hook_msgs = loaded['meta']['hook_msgs']
    assert hook_msgs['last_ckpt'].endswith('epoch_12.pth')
    assert hook_msgs['best_score'] == np.float64(0.4125)
    assert list(loaded['state_dict']) == ['weight', 'bias']
    torch.testing.assert_close(loaded['state_dict']['weight'], model.weight)
    assert loaded['optimizer']['param_groups'][0]['weight_decay'] == 1e-4


@needs_weights_only_default
def test_guard_is_active_in_a_fresh_interpreter(tmp_path):
    """``import mmdysample`` alone installs the guard (no test fixture)."""
    path = write(tmp_path, {'x': Reduce(getattr, np.ndarray, 'tofile')})
    code = ('import pickle, sys, torch, mmdysample\n'
            'try:\n'
            f'    torch.load({str(path)!r})\n'
            'except pickle.UnpicklingError as e:\n'
            '    sys.exit(0 if "tofile" in str(e) else 2)\n'
            'sys.exit(1)\n')
    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.abspath(repo),
             os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-c', code],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
