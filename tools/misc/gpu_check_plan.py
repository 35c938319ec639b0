# Copyright (c) mmdysample contributors. All rights reserved.
"""What ``make gpu-check`` runs: its steps, as commands, from what it found.

Pure functions of the facts that ``gpu_check.py`` probes (the base
python's torch, CUDA and packages; later the new environment's packages)
and of the settings; nothing here runs anything, so the plan is tested on
any machine and printed by ``gpu_check.py --dry-run``.

The environment (``.venv-gpu``) holds the upsampler family's needs only:
torch with CUDA and the triton it pins, mmengine, numpy, pytest and this
package; no mmcv, mmdet or mmseg. Its torch comes from one of two places:

* **inherit**: the base python's torch already sees CUDA (a GPU image, as
  on the project's device machines). The environment is made
  ``--without-pip`` and a ``.pth`` file adds the base python's
  site-packages after its own, so torch, triton and pip are reused rather
  than downloaded. (``--system-site-packages`` would not do: where the base
  python is itself a virtual environment, as there, it exposes the
  interpreter's site-packages, not that environment's.)
* **install**: an empty environment, and ``pip install TORCH_SPEC`` (on
  Linux the registry's default build is the CUDA one, with its triton).

The pure-Python packages missing from the environment come from the
registry (``PIP_ARGS`` added), or, with a wheel folder (``make gpu-wheels``
fills ``.whl``), from it alone (``--no-index --find-links``). mmengine is
installed ``--no-deps``: it asks for opencv-python, and
opencv-python-headless (on the device images already) provides the same
``cv2`` without the GUI libraries.
"""
import os.path as osp
import shlex
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: mmengine, installed on its own with ``--no-deps`` (see the module).
MMENGINE = 'mmengine==0.10.7'
#: ``(module, requirement)`` the family, its tests and the editable install
#: need besides torch and mmengine: mmengine's own needs (``cv2`` from the
#: headless build), numpy, pytest and setuptools. Pins: the versions the
#: project's ``.venv`` runs.
NEEDS: Tuple[Tuple[str, str], ...] = (
    ('numpy', 'numpy'),
    ('pytest', 'pytest'),
    ('setuptools', 'setuptools>=77,<81'),
    ('yaml', 'pyyaml'),
    ('rich', 'rich'),
    ('matplotlib', 'matplotlib'),
    ('cv2', 'opencv-python-headless'),
    ('addict', 'addict==2.4.0'),
    ('termcolor', 'termcolor==3.3.0'),
    ('platformdirs', 'platformdirs==4.14.9'),
    ('yapf', 'yapf==0.43.0'),
)
#: Installed from the registry only: a per-test time limit where present.
OPTIONAL = (('pytest_timeout', 'pytest-timeout'), )
#: What ``make gpu-wheels`` downloads: the packages the device's python
#: lacks (its image has torch, triton, numpy, pytest, pyyaml, rich,
#: matplotlib and opencv-python-headless), all pure Python.
WHEELS = (MMENGINE, 'addict==2.4.0', 'termcolor==3.3.0',
          'platformdirs==4.14.9', 'yapf==0.43.0')
#: Modules the probes report on.
PROBED = tuple(m for m, _ in NEEDS + OPTIONAL) + (
    'mmengine', 'pip', 'triton', 'mmcv', 'mmdet', 'mmseg')
#: The family's paper shape (C, H, W) and ratio (Fig. 1 and 8).
PAPER_SHAPE = ('256', '120', '120')
#: Seconds a single test may take (pytest-timeout, where installed).
TEST_TIMEOUT = 120
PTH_NAME = '_gpu_check_base_site.pth'

#: Run by the base python and the new environment's: facts as JSON.
PROBE = r'''
import importlib.util, json, os, site, sys
def has(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
info = dict(
    executable=sys.executable, version=list(sys.version_info[:2]),
    prefix=sys.prefix, base_prefix=sys.base_prefix,
    site_dirs=[p for p in getattr(site, 'getsitepackages', list)()
               if os.path.isdir(p)],
    modules={name: has(name) for name in sys.argv[1].split(',')})
try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                cuda_available=torch.cuda.is_available())
    if info['cuda_available']:
        info['gpu'] = torch.cuda.get_device_name()
except Exception as err:  # no torch, or a broken one
    info.update(torch=None, torch_error=repr(err), cuda_available=False)
print(json.dumps(info))
'''

#: Run in the new environment: what it holds, and that CUDA works there.
ENVIRONMENT_CHECK = r'''
import importlib.util, sys
import torch
print('python', sys.executable)
print('torch', torch.__version__, 'CUDA', torch.version.cuda)
if not torch.cuda.is_available():
    sys.exit('torch.cuda.is_available() is False in this environment')
print('device', torch.cuda.get_device_name(),
      torch.ones(2, device='cuda').sum().item())
try:
    import triton
    print('triton', triton.__version__)
except ImportError as err:
    print('triton missing: DySample takes grid_sample on CUDA', err)
import mmengine
import mmdysample
from mmdysample.models.upsamplers import fast_triton
print('mmengine', mmengine.__version__, 'mmdysample', mmdysample.__version__,
      'from', mmdysample.__file__)
print('fused Triton kernel available:', fast_triton.available(),
      fast_triton.unavailable_reason() or '')
hosts = [m for m in ('mmcv', 'mmdet', 'mmseg') if importlib.util.find_spec(m)]
print('hosts present (expected none):', hosts or 'none')
'''


@dataclass
class Settings:
    """What the user chose (``gpu_check.py``'s arguments)."""
    repo: str
    venv: str
    out: str
    python: str = 'python3'
    wheels: Optional[str] = None
    torch_spec: str = 'torch'
    pip_args: Sequence[str] = ()


@dataclass
class Step:
    """One command with a time limit (seconds), or a file to write.

    ``required``: the later steps are not run if this one fails.
    """
    name: str
    argv: Sequence[str] = ()
    limit: float = 60
    write: Optional[Tuple[str, str]] = None
    required: bool = False
    env: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """The command as a shell line (a script argument abbreviated)."""
        if self.write is not None:
            path, text = self.write
            return f'write {path}:\n' + text
        return shlex.join(
            f'<script of {arg.count(chr(10))} lines>' if '\n' in arg else arg
            for arg in self.argv)


def venv_python(settings: Settings) -> str:
    return osp.join(settings.venv, 'bin', 'python')


def torch_source(probe: Dict, driver_evidence: Sequence[str]) -> Optional[str]:
    """``'inherit'``, ``'install'`` or None (no CUDA here: refuse).

    Args:
        probe: The base python's facts (:data:`PROBE`).
        driver_evidence: Signs of an NVIDIA driver (``gpu_check.py``), used
            where the base python's torch sees no CUDA (or is missing).
    """
    if probe.get('cuda_available'):
        return 'inherit'
    return 'install' if driver_evidence else None


def _pip(settings: Settings, *args: str) -> List[str]:
    return [venv_python(settings), '-m', 'pip', 'install',
            '--disable-pip-version-check', '--no-input', *args]


def _sources(settings: Settings) -> List[str]:
    if settings.wheels:
        return ['--no-index', '--find-links', settings.wheels]
    return list(settings.pip_args)


def environment_steps(settings: Settings, source: str,
                      probe: Dict) -> List[Step]:
    """Create the environment (and, for ``'install'``, install torch)."""
    if source not in ('inherit', 'install'):
        raise ValueError(
            f"source must be 'inherit' or 'install', got {source!r}")
    if source == 'install':
        return [
            Step('venv', [settings.python, '-m', 'venv', settings.venv],
                 limit=60, required=True),
            Step('torch',
                 _pip(settings, '--progress-bar', 'off', *settings.pip_args,
                      settings.torch_spec),
                 limit=300, required=True)
        ]
    major, minor = probe['version']
    site = osp.join(settings.venv, 'lib', f'python{major}.{minor}',
                    'site-packages')
    lines = ''.join(f'import site; site.addsitedir({d!r})\n'
                    for d in probe['site_dirs'])
    return [
        Step('venv',
             [settings.python, '-m', 'venv', '--without-pip', settings.venv],
             limit=60, required=True),
        Step('base-site', write=(osp.join(site, PTH_NAME), lines),
             required=True)
    ]


def install_steps(settings: Settings, modules: Dict[str, bool]) -> List[Step]:
    """pip installs of what the environment lacks, then this package.

    Args:
        modules: ``{module: present}`` in the new environment (:data:`PROBE`
            run there); a module not named counts as missing.
    """
    missing = [req for mod, req in NEEDS if not modules.get(mod)]
    if not settings.wheels:
        missing += [req for mod, req in OPTIONAL if not modules.get(mod)]
    no_deps = ['--no-deps'] if settings.wheels else []
    steps = []
    if not modules.get('pip'):  # neither the base python nor the venv has it
        steps.append(
            Step('pip', [venv_python(settings), '-m', 'ensurepip'], limit=60))
    if missing:
        steps.append(
            Step('packages',
                 _pip(settings, *no_deps, *_sources(settings), *missing),
                 limit=180))
    if not modules.get('mmengine'):
        steps.append(
            Step('mmengine',
                 _pip(settings, '--no-deps', *_sources(settings), MMENGINE),
                 limit=120))
    # Editable, as `make install` does: setup.py links configs/ and tools/
    # into mmdysample/.mim; nothing to fetch (no deps, no build isolation).
    steps.append(
        Step('package',
             _pip(settings, '--no-deps', '--no-build-isolation', '--no-index',
                  '-e', settings.repo),
             limit=120))
    return steps


def check_steps(settings: Settings, test_files: Sequence[str]) -> List[Step]:
    """The environment check, the gpu tests, the benchmark, the summary."""
    python = venv_python(settings)
    out = settings.out
    return [
        Step('environment', [python, '-c', ENVIRONMENT_CHECK], limit=120),
        Step('tests', [
            python, '-m', 'pytest', '-m', 'gpu', '-p', 'no:cacheprovider',
            '-o', f'timeout={TEST_TIMEOUT}',
            # A file that fails to import is one error in the XML; the
            # other files still run.
            '--continue-on-collection-errors',
            '--junitxml=' + osp.join(out, 'junit.xml'), *test_files
        ],
             limit=300),
        Step('benchmark', [
            python,
            osp.join(settings.repo, 'tools', 'analysis_tools',
                     'benchmark_upsamplers.py'), '--device', 'cuda',
            '--shape', *PAPER_SHAPE, '--scale-factor', '2',
            '--grid-sample-paths', '--out-json',
            osp.join(out, 'benchmark.json'), '--out-png',
            osp.join(out, 'benchmark.png')
        ],
             limit=240),
        Step('summary',
             [python, '-m', 'mmdysample.benchmark.gpu_summary', out],
             limit=60),
    ]


def summary_fallback(settings: Settings) -> List[str]:
    """The summary by the orchestrator's own python, by the file's path:
    for an environment that cannot run it (it needs no package)."""
    return [sys.executable,
            osp.join(settings.repo, 'mmdysample', 'benchmark',
                     'gpu_summary.py'), settings.out]


def download_wheels_command(python: str, dest: str,
                            pip_args: Sequence[str] = ()) -> List[str]:
    """``make gpu-wheels``: :data:`WHEELS` into ``dest``, no dependencies.
    """
    return [python, '-m', 'pip', 'download', '--disable-pip-version-check',
            '--no-deps', '--only-binary=:all:', '--dest', dest, *pip_args,
            *WHEELS]
