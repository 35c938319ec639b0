# Copyright (c) mmdysample contributors. All rights reserved.
"""``make gpu-check`` on the CPU: its plan, its test selection, its runner
and its refusal without CUDA (the GPU run itself needs a GPU)."""
import importlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from mmdysample.models.upsamplers import fast_triton

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOLS_MISC = osp.join(REPO, 'tools', 'misc')
TOOL = osp.join(TOOLS_MISC, 'gpu_check.py')
DEVICE_SITE = '/opt/torch/.venv/lib/python3.12/site-packages'
#: The base python of the project's GPU machines, as its probe reads it.
DEVICE_PROBE = dict(
    executable='/opt/torch/.venv/bin/python3', version=[3, 12],
    site_dirs=[DEVICE_SITE], torch='2.11.0+cu130', torch_cuda='13.0',
    cuda_available=True, gpu='NVIDIA H200',
    modules=dict(numpy=True, pytest=True, setuptools=True, yaml=True,
                 rich=True, matplotlib=True, cv2=True, pytest_timeout=True,
                 pip=True, triton=True, mmengine=False, addict=False,
                 termcolor=False, platformdirs=False, yapf=False,
                 mmcv=False, mmdet=False, mmseg=False))


@pytest.fixture(scope='module')
def tools():
    """The orchestrator's modules, imported as it imports them."""
    sys.path.insert(0, TOOLS_MISC)
    try:
        yield (importlib.import_module('gpu_check'),
               importlib.import_module('gpu_check_plan'),
               importlib.import_module('gpu_test_selection'))
    finally:
        sys.path.remove(TOOLS_MISC)


def settings(plan, **kwargs):
    return plan.Settings(repo='/repo', venv='/repo/.venv-gpu',
                         out='/repo/out', **kwargs)


def pip_installs(steps):
    return {s.name: list(s.argv) for s in steps
            if s.argv[1:4] == ['-m', 'pip', 'install']}


# --------------------------------------------------------------------------
# The plan


def test_offline_plan_reuses_the_base_torch_and_reads_only_the_wheels(
        tools):
    _, plan, _ = tools
    s = settings(plan, python='python3', wheels='/repo/.whl',
                 pip_args=['--index-url', 'http://unused'])
    assert plan.torch_source(DEVICE_PROBE, []) == 'inherit'
    venv, base_site = plan.environment_steps(s, 'inherit', DEVICE_PROBE)
    assert venv.argv == ['python3', '-m', 'venv', '--without-pip',
                         '/repo/.venv-gpu']
    path, text = base_site.write
    assert path == ('/repo/.venv-gpu/lib/python3.12/site-packages/'
                    '_gpu_check_base_site.pth')
    assert text == f'import site; site.addsitedir({DEVICE_SITE!r})\n'
    steps = plan.install_steps(s, DEVICE_PROBE['modules'])
    installs = pip_installs(steps)
    assert list(installs) == ['packages', 'mmengine', 'package']
    for argv in installs.values():  # nothing from a registry, no deps
        assert '--no-index' in argv and '--no-deps' in argv
        assert 'http://unused' not in argv
    assert installs['packages'][-7:] == [
        '--no-index', '--find-links', '/repo/.whl', 'addict==2.4.0',
        'termcolor==3.3.0', 'platformdirs==4.14.9', 'yapf==0.43.0'
    ]
    assert installs['mmengine'][-1] == 'mmengine==0.10.7'
    assert installs['package'][-2:] == ['-e', '/repo']
    assert '--no-build-isolation' in installs['package']
    # make gpu-wheels fetches exactly what this install reads.
    wanted = installs['packages'][installs['packages'].index('/repo/.whl')
                                  + 1:] + [installs['mmengine'][-1]]
    assert sorted(wanted) == sorted(plan.WHEELS)


def test_online_plan_installs_cuda_torch_into_an_empty_environment(tools):
    _, plan, _ = tools
    probe = dict(torch=None, cuda_available=False, modules={})
    assert plan.torch_source(probe, ['nvidia-smi: GPU 0: H200']) == 'install'
    s = settings(plan, python='python3', pip_args=['--retries', '1'])
    venv, torch_step = plan.environment_steps(s, 'install', probe)
    assert venv.argv == ['python3', '-m', 'venv', '/repo/.venv-gpu']
    assert torch_step.argv[-3:] == ['--retries', '1', 'torch']
    assert venv.required and torch_step.required
    installs = pip_installs(plan.install_steps(s, {'pip': True}))
    packages = installs['packages']
    assert '--no-index' not in packages and '--no-deps' not in packages
    assert packages[-len(plan.NEEDS) - 1:] == [
        req for _, req in plan.NEEDS] + ['pytest-timeout']
    assert packages[-len(plan.NEEDS) - 3:-len(plan.NEEDS) - 1] == [
        '--retries', '1']
    assert 'opencv-python-headless' in packages
    # mmengine without its opencv-python (the headless cv2 serves it).
    assert installs['mmengine'][-4:] == ['--no-deps', '--retries', '1',
                                         'mmengine==0.10.7']


def test_plan_installs_nothing_the_environment_has(tools):
    _, plan, _ = tools
    modules = {m: True for m in plan.PROBED}
    steps = plan.install_steps(settings(plan, wheels='/w'), modules)
    assert [s.name for s in steps] == ['package']
    with pytest.raises(ValueError, match="'conda'"):
        plan.environment_steps(settings(plan), 'conda', DEVICE_PROBE)


def test_checks_run_the_selection_and_the_paper_shape_benchmark(tools):
    _, plan, _ = tools
    steps = {s.name: s for s in plan.check_steps(
        settings(plan), ['tests/a.py', 'tests/b.py'])}
    assert list(steps) == ['environment', 'tests', 'benchmark', 'summary']
    tests = steps['tests'].argv
    assert tests[1:5] == ['-m', 'pytest', '-m', 'gpu']
    assert '--junitxml=/repo/out/junit.xml' in tests
    assert tests[-2:] == ['tests/a.py', 'tests/b.py']
    bench = ' '.join(steps['benchmark'].argv)
    assert ('benchmark_upsamplers.py --device cuda --shape 256 120 120 '
            '--scale-factor 2 --grid-sample-paths') in bench
    assert '--out-json /repo/out/benchmark.json' in bench
    assert steps['summary'].argv[1:] == [
        '-m', 'mmdysample.benchmark.gpu_summary', '/repo/out']
    # Designed to finish in 8 minutes: every step runs inside the budget.
    assert tools[0].parse_args([]).budget <= 8 * 60


# --------------------------------------------------------------------------
# The test selection


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_selection_leaves_out_files_that_import_a_host(tools, tmp_path):
    select = tools[2].select_gpu_test_files
    gpu = 'import pytest\n\n@pytest.mark.gpu\ndef test_x():\n    pass\n'
    write(tmp_path / 'test_plain.py', 'import torch\n' + gpu)
    write(tmp_path / 'test_lazy.py',
          'try:\n    import mmcv\nexcept ImportError:\n    mmcv = None\n'
          'def helper():\n    import mmdet\n' + gpu)
    write(tmp_path / 'test_cpu_only.py', 'import mmdet\n')
    write(tmp_path / 'test_import.py', 'from mmcv.ops import carafe\n' + gpu)
    write(tmp_path / 'test_skip.py',
          'import pytest\nmmseg = pytest.importorskip("mmseg")\n' + gpu)
    write(tmp_path / 'helper.py', 'from mmdet.apis import init_detector\n')
    write(tmp_path / 'test_helper.py', 'from helper import x\n' + gpu)
    write(tmp_path / 'sub' / 'conftest.py', 'import mmseg.registry\n')
    write(tmp_path / 'sub' / 'test_under.py', gpu)
    selected, excluded = select(str(tmp_path))
    assert selected == [str(tmp_path / 'test_lazy.py'),
                        str(tmp_path / 'test_plain.py')]
    reasons = {osp.relpath(p, tmp_path): r for p, r in excluded.items()}
    assert reasons.keys() == {'test_import.py', 'test_skip.py',
                              'test_helper.py', 'sub/test_under.py'}
    assert reasons['test_import.py'] == 'imports mmcv.ops at module level'
    assert reasons['test_skip.py'] == 'imports mmseg at module level'
    assert 'mmdet.apis (via helper.py)' in reasons['test_helper.py']
    assert 'conftest.py' in reasons['sub/test_under.py']
    with pytest.raises(ValueError, match='nope'):
        select(str(tmp_path / 'nope'))


#: Run by the test below: hide the hosts, import the package, then collect
#: the selection as make gpu-check runs it.
COLLECT_WITHOUT_HOSTS = '''
import importlib.util, sys
class Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmcv', 'mmdet', 'mmseg'):
            return None
        return self.finder.find_spec(name, path, target)
sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
assert importlib.util.find_spec('mmcv') is None
import mmdysample, pytest
assert not {'mmcv', 'mmdet', 'mmseg'} & set(sys.modules)
sys.exit(pytest.main(['--collect-only', '-q', '-m', 'gpu',
                      '-p', 'no:cacheprovider'] + sys.argv[1:]))
'''


def test_selection_collects_gpu_tests_without_mmcv_mmdet_mmseg(tools):
    selected, excluded = tools[2].select_gpu_test_files(
        osp.join(REPO, 'tests'))
    files = [osp.relpath(p, REPO) for p in selected]
    assert 'tests/models/upsamplers/test_fast_triton.py' in files
    assert 'tests/models/necks/test_dysample_fpn.py' not in files
    assert any(p.endswith('test_dysample_fpn.py') for p in excluded)
    proc = subprocess.run(
        [sys.executable, '-c', COLLECT_WITHOUT_HOSTS, *files], cwd=REPO,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [line for line in proc.stdout.splitlines() if '::' in line]
    assert len(ids) >= 20, proc.stdout[-3000:]
    # Below TRITON_MIN (torch 2.1 brings triton 2.1) the file skips whole.
    assert any('test_fast_triton.py::test_cuda_kernel_matches' in i
               for i in ids) == fast_triton.supported_triton()
    assert 'error' not in proc.stdout.splitlines()[-1].lower()


# --------------------------------------------------------------------------
# The runner: limits, records, a failure does not hide the rest


def test_runner_limits_each_step_and_runs_the_rest(tools, tmp_path):
    gpu_check, plan, _ = tools
    py = sys.executable
    with open(tmp_path / 'log', 'w') as log:
        runner = gpu_check.Runner(str(tmp_path), 60, log, dict(os.environ))
        assert not runner.run(plan.Step('fails', [py, '-c', 'exit(3)']))
        assert not runner.run(plan.Step(
            'hangs', [py, '-c', 'import time; time.sleep(30)'], limit=0.5))
        assert runner.run(plan.Step('ok', [py, '-c', 'print("hi")']))
        assert not runner.run(plan.Step(
            'needed', [py, '-c', 'exit(1)'], required=True))
        assert not runner.run(plan.Step('after', [py, '-c', 'pass']))
    records = json.loads((tmp_path / 'steps.json').read_text())
    assert [(r['name'], r['status'].split(' after')[0]) for r in records
            ] == [('fails', 'failed (exit 3)'), ('hangs', 'timed out'),
                  ('ok', 'ok'), ('needed', 'failed (exit 1)'),
                  ('after', 'not run')]
    assert records[1]['seconds'] < 10
    assert "step 'needed' failed" in records[-1]['note']
    assert 'hi\n' in (tmp_path / 'log').read_text()


# --------------------------------------------------------------------------
# No CUDA: stop at once, create nothing


@pytest.mark.skipif(
    torch.cuda.is_available() or shutil.which('nvidia-smi') is not None
    or osp.exists('/proc/driver/nvidia/version'),
    reason='checks the refusal on a machine without CUDA')
def test_refuses_without_cuda_and_creates_nothing(tmp_path):
    venv, out = tmp_path / 'venv', tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, TOOL, '--python', sys.executable, '--venv',
         str(venv), '--out', str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'no CUDA here' in proc.stderr
    assert "torch.cuda.is_available() is False" in proc.stderr
    assert not venv.exists() and not out.exists()
