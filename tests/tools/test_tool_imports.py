# Copyright (c) mmdysample contributors. All rights reserved.
"""Which mmdysample the tools import: the installed one whenever there is
one, the checkout they sit in otherwise.

Each tool runs from a copy in a fake checkout; that checkout's package and
the "installed" one are stubs that say which was imported.
"""
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TOOLS = ['tools/train.py', 'tools/analysis_tools/get_flops.py']


def stub(where, name):
    """A ``mmdysample`` package that says which one it is and exits."""
    (where / 'mmdysample').mkdir(parents=True)
    (where / 'mmdysample' / '__init__.py').write_text(
        f'import sys\nprint({name!r} + " stub imported")\nsys.exit(3)\n')


pytestmark = pytest.mark.slow


def fake_checkout(tmp_path, tool):
    checkout = tmp_path / 'checkout'
    stub(checkout, 'checkout')
    copy = checkout / tool
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / tool, copy)
    return copy


def run(cmd, cwd, pythonpath):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
    return subprocess.run([sys.executable] + cmd,
                          cwd=cwd,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=120)


@pytest.mark.parametrize('tool', TOOLS)
def test_installed_package_wins_over_the_checkout(tool, tmp_path):
    installed = tmp_path / 'site'
    stub(installed, 'installed')
    proc = run([str(fake_checkout(tmp_path, tool)), '--help'], tmp_path,
               [installed])
    assert proc.returncode == 3, proc.stdout
    assert 'installed stub imported' in proc.stdout


@pytest.mark.parametrize('tool', TOOLS)
def test_checkout_is_used_when_nothing_is_installed(tool, tmp_path):
    # -S: no site processing, so no editable-install finder; the
    # site-packages directories (torch, mmengine) go on PYTHONPATH instead.
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    check = run([
        '-S', '-c', 'import importlib.util as u, sys; '
        "sys.exit(u.find_spec('mmdysample') is not None)"
    ], tmp_path, site_dirs)
    if check.returncode != 0:
        pytest.skip('a non-editable mmdysample is in site-packages')
    proc = run(['-S', str(fake_checkout(tmp_path, tool)), '--help'],
               tmp_path, site_dirs)
    assert proc.returncode == 3, proc.stdout
    assert 'checkout stub imported' in proc.stdout
