# Copyright (c) mmdysample contributors. All rights reserved.
"""The wheel as a new user gets it: built, installed into a fresh virtual
environment and used from a directory outside the checkout.

The fresh environment is first one a user of mmdet / mmseg already has:
the same torch, numpy, mmengine, mmdet and mmseg as this one (torch from
pip's cache, mmcv the wheel `make install` built for this torch) and openmim
without its dataset-download dependency (README.md, "mim"). Installing our
wheel into it must change none of their versions (``pip list`` before and
after). Then, from a temporary directory: a config with an
``mmdysample::`` base loads and builds; ``mim train mmdysample`` runs a few
iterations of a synthetic config from the wheel's ``.mim/configs``; ``mim
test`` evaluates its checkpoint; ``mim run`` runs a tool from the wheel.
"""
import glob
import importlib.metadata as metadata
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip('mmdet')

from mmdysample.datasets import generate_synthetic_dataset  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
SYNTHETIC = 'faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py'
#: openmim 0.3.9's requirements but opendatalab, which pulls openxlab and
#: its setuptools~=60.2.0 pin (used only by `mim download --dataset`).
MIM_DEPS = [
    'click', 'colorama', 'model-index', 'pandas', 'requests', 'rich',
    'tabulate'
]


def run(cmd, cwd, env=None, timeout=600):
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, f'{cmd}\n{proc.stdout[-6000:]}'
    return proc.stdout


def checkout_state():
    """Every path git reports, ignored ones included (None: not a clone)."""
    if shutil.which('git') is None or not (ROOT / '.git').exists():
        return None
    return run(['git', 'status', '--porcelain', '--ignored'], ROOT)


def mmcv_wheel_dir():
    """Where ``make install`` keeps the mmcv wheels built for this torch
    and python (its ``MMCV_WHEELS`` / ``MMCV_TAG``)."""
    import torch
    root = os.environ.get(
        'MMCV_WHEELS', osp.expanduser('~/.cache/mmdysample-wheels'))
    tag = f'torch-{torch.__version__}-py{sys.version_info[0]}' \
        f'{sys.version_info[1]}'
    return osp.join(root, tag)


def cached_wheel(name):
    """The wheel of the installed ``name``: the one ``make install`` built
    (mmcv), else the one in pip's cache."""
    version = metadata.version(name)
    built = glob.glob(osp.join(mmcv_wheel_dir(), f'{name}-{version}-*.whl'))
    if built:
        return built[0]
    out = run([
        sys.executable, '-m', 'pip', 'cache', 'list', f'{name}-{version}-*',
        '--format=abspath'
    ], ROOT)
    wheels = [line for line in out.splitlines() if line.endswith('.whl')]
    assert wheels, (f'no {name} {version} wheel in {mmcv_wheel_dir()} or '
                    "pip's cache; `make install` builds it there")
    return wheels[0]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    before = checkout_state()
    run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-w', out, ROOT
    ], ROOT)
    # A non-editable build leaves no build/ or *.egg-info in the checkout.
    assert checkout_state() == before
    (path, ) = glob.glob(str(out / 'mmdysample-*.whl'))
    return path


#: What an existing mmdet / mmseg environment pins, as this one has them.
STACK = ('torch', 'numpy', 'mmengine', 'mmdet', 'mmsegmentation',
         'setuptools')


def installed(python):
    """``{name: version}`` of an environment (``pip list``)."""
    out = run([python, '-m', 'pip', 'list', '--format=json'], ROOT)
    return {p['name'].lower(): p['version'] for p in json.loads(out)}


@pytest.fixture(scope='module')
def existing_env(wheel, tmp_path_factory):
    """An environment with a user's stack, then our wheel installed into
    it: its directory and ``pip list`` before and after the wheel."""
    env_dir = tmp_path_factory.mktemp('venv')
    run([sys.executable, '-m', 'venv', env_dir], env_dir)
    python = env_dir / 'bin' / 'python'
    pip = [python, '-m', 'pip', 'install', '-q', '--no-compile']
    pins = [f'{name}=={metadata.version(name)}' for name in STACK]
    run(pip + pins + [cached_wheel('mmcv')] + MIM_DEPS, env_dir)
    run(pip + ['--no-deps', 'openmim==0.3.9'], env_dir)
    before = installed(python)
    run(pip + [f'{wheel}[mmdet,mmseg]'], env_dir)
    return env_dir, before, installed(python)


@pytest.fixture(scope='module')
def venv(existing_env):
    """The environment with the wheel and mim; its ``bin`` directory."""
    return existing_env[0] / 'bin'


def test_installing_the_wheel_keeps_the_existing_stack(existing_env):
    _, before, after = existing_env
    for name in STACK + ('mmcv', 'openmim'):
        assert name in before, f'{name} missing from the existing env'
    changed = {
        name: (version, after.get(name))
        for name, version in before.items() if after.get(name) != version
    }
    assert not changed, f'installing mmdysample changed {changed}'
    assert 'mmdysample' in after and 'mmdysample' not in before


@pytest.fixture(scope='module')
def user_dir(tmp_path_factory):
    """A directory outside the checkout with a tiny copy of the built-in
    data where the synthetic configs look for it."""
    work = tmp_path_factory.mktemp('user')
    generate_synthetic_dataset(
        str(work / 'data' / 'synthetic'),
        num_train=4,
        num_val=2,
        img_size=96,
        tasks=('coco', ))
    return work


def fresh_env(bin_dir):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHONPATH', 'VIRTUAL_ENV')
    }
    env['PATH'] = f'{bin_dir}{os.pathsep}{env["PATH"]}'
    # grid_sample instead of compiling the fused kernel for this torch
    # (tests/models covers the kernel; its build would dominate here)
    env['MMDYSAMPLE_FAST_CPU'] = '0'
    return env


def test_wheel_carries_mim_files_and_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ('mmdysample/.mim/model-index.yml',
                 'mmdysample/.mim/configs/faster_rcnn/metafile.yml',
                 f'mmdysample/.mim/configs/faster_rcnn/{SYNTHETIC}',
                 'mmdysample/.mim/tools/train.py',
                 'mmdysample/.mim/tools/test.py',
                 'mmdysample/models/upsamplers/csrc/dysample_cpu.cpp'):
        assert name in names, name
    from mmdysample.models.upsamplers import fast_cpu
    for header in fast_cpu._HEADERS:  # what the kernel includes
        name = f'mmdysample/models/upsamplers/csrc/{header}'
        assert name in names, name
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in names)


def test_mmdysample_base_loads_and_builds(venv, user_dir):
    (user_dir / 'my_detector.py').write_text(
        "_base_ = 'mmdysample::faster_rcnn/"
        "faster-rcnn_r50_fpn-dysample-lpg4_1x_coco.py'\n"
        "model = dict(backbone=dict(init_cfg=None),\n"
        "             neck=dict(upsample_cfg=dict(type='DySample-S')))\n")
    script = (
        'import mmdysample, os.path as osp\n'
        'from mmengine.config import Config\n'
        'from mmengine.registry import MODELS, init_default_scope\n'
        "cfg = Config.fromfile('my_detector.py')\n"
        'init_default_scope(cfg.default_scope)\n'
        'model = MODELS.build(cfg.model)\n'
        'print(mmdysample.__file__)\n'
        'print(type(model.neck).__name__,'
        ' model.neck.upsample_modules[0].style)\n')
    out = run([venv / 'python', '-c', script], user_dir,
              fresh_env(venv)).splitlines()
    assert f'{os.sep}site-packages{os.sep}mmdysample' in out[-2]
    assert out[-1] == 'DySampleFPN pl'


def test_mim_train_test_and_run(venv, user_dir):
    env = fresh_env(venv)
    assert 'mmdysample' in run([venv / 'mim', 'list'], user_dir, env)
    work_dir = user_dir / 'work_dirs' / 'mim'
    options = [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False'
    ]
    # A config name, not a path: mim finds it in the wheel's .mim/configs.
    out = run([
        venv / 'mim', 'train', 'mmdysample', SYNTHETIC, '--work-dir',
        work_dir, '--cfg-options'
    ] + options, user_dir, env)
    assert 'Training finished successfully' in out, out[-3000:]
    checkpoint = work_dir / 'iter_2.pth'
    assert checkpoint.is_file()

    out = run([
        venv / 'mim', 'test', 'mmdysample', SYNTHETIC, '--checkpoint',
        checkpoint, '--work-dir', work_dir / 'test', '--cfg-options'
    ] + options, user_dir, env)
    assert 'Testing finished successfully' in out, out[-3000:]
    (scalars, ) = glob.glob(str(work_dir / 'test' / '*' / '*.json'))
    metrics = json.loads(Path(scalars).read_text())
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0

    run([
        venv / 'mim', 'run', 'mmdysample', 'generate_synthetic_data', '--out',
        'from_mim_run', '--num-train', 1, '--num-val', 1, '--img-size', 32,
        '--tasks', 'coco', '--quiet'
    ], user_dir, env)
    assert (user_dir / 'from_mim_run' / 'coco' / 'annotations').is_dir()
    assert not osp.exists(user_dir / 'tools')  # all from the wheel
