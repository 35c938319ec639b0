# Copyright (c) mmdysample contributors. All rights reserved.
"""``make gpu-check``: the upsampler family on a CUDA machine, one command.

    python3 tools/misc/gpu_check.py                # what make gpu-check runs
    python3 tools/misc/gpu_check.py --wheels .whl  # offline, wheels carried
    python3 tools/misc/gpu_check.py --dry-run      # print the plan only
    python3 tools/misc/gpu_check.py --download-wheels .whl  # make gpu-wheels

Finds out whether this machine has CUDA (the base python's torch, else an
NVIDIA driver) and stops at once, creating nothing, if it has not. Then,
each step under its own time limit and all of them within ``--budget``
seconds: creates ``.venv-gpu`` with the family's needs only (no mmcv,
mmdet or mmseg; see ``gpu_check_plan.py``), runs the ``gpu`` tests that
need no host (``gpu_test_selection.py``) with JUnit XML, runs
``tools/analysis_tools/benchmark_upsamplers.py --device cuda`` at the
paper's shape with every preset's Triton and ``grid_sample`` paths, and
prints the summary (``mmdysample/benchmark/gpu_summary.py``). A failed
step does not stop the others, unless they need what it makes (the
environment, torch). Everything goes to ``--out``: ``steps.json``,
``junit.xml``, ``benchmark.json``, ``benchmark.png``, ``benchmark.md``,
``summary.md`` and ``gpu_check.log`` (every step's output).

Exit status: 0 if every step succeeded, 1 if one failed, 2 without CUDA.

Standard library only: it runs before its environment exists.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, TextIO

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
import gpu_check_plan as plan  # noqa: E402
from gpu_test_selection import select_gpu_test_files  # noqa: E402

REPO = osp.dirname(osp.dirname(HERE))
#: Seconds kept back from the budget for the summary.
SUMMARY_RESERVE = 30
#: Files of a previous run that this one rewrites (never reported stale).
OUTPUTS = ('steps.json', 'junit.xml', 'benchmark.json', 'benchmark.png',
           'benchmark.md', 'summary.md', 'gpu_check.log')


def probe_python(python: str, timeout: float = 120) -> Dict:
    """:data:`gpu_check_plan.PROBE` run by ``python``; ``error`` on failure.
    """
    try:
        proc = subprocess.run(
            [python, '-c', plan.PROBE, ','.join(plan.PROBED)],
            capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return dict(error=f'{python}: {err}', cuda_available=False)
    try:
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pass
    return dict(error=f'{python} failed: {proc.stderr.strip()[-500:]}',
                cuda_available=False)


def driver_evidence() -> List[str]:
    """Signs of an NVIDIA GPU and driver, for a python without CUDA torch.
    """
    found = [p for p in ['/proc/driver/nvidia/version'] if osp.exists(p)]
    found += sorted(glob.glob('/dev/nvidia[0-9]*'))[:1]
    smi = shutil.which('nvidia-smi')
    if smi is not None:
        try:
            proc = subprocess.run([smi, '-L'], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0 and 'GPU' in (
                proc.stdout):
            found.append('nvidia-smi: ' + proc.stdout.splitlines()[0])
    return found


def refusal(python: str, probe: Dict) -> str:
    """The message for a machine without CUDA."""
    if probe.get('error'):
        torch = f"{python} could not be probed ({probe['error']})"
    elif probe.get('torch') is None:
        torch = f'{python} has no torch'
    else:
        torch = (f"{python}'s torch {probe['torch']} sees no CUDA device "
                 '(torch.cuda.is_available() is False)')
    return (f'gpu-check: no CUDA here: {torch}, and no NVIDIA driver was '
            'found (nvidia-smi -L, /proc/driver/nvidia/version, '
            '/dev/nvidia*). make gpu-check needs a machine with an NVIDIA '
            'GPU; nothing was created.')


class Runner:
    """Runs steps under their limits and the budget; records each one."""

    def __init__(self, out: str, budget: float, log: TextIO,
                 env: Dict[str, str]) -> None:
        self.out = out
        self.deadline = time.monotonic() + budget
        self.log = log
        self.env = env
        self.records: List[Dict] = []
        self.blocked = ''  # why later steps cannot run

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + '\n')
        self.log.flush()

    def record(self, name: str, status: str, seconds: float = 0.0,
               note: str = '', command: str = '') -> None:
        self.records.append(
            dict(name=name, status=status, seconds=round(seconds, 1),
                 note=note, command=command))
        with open(osp.join(self.out, 'steps.json'), 'w') as f:
            json.dump(self.records, f, indent=1)

    def _stream(self, argv: Sequence[str], limit: float) -> Optional[int]:
        """Run ``argv`` in its own session, output to screen and log.

        Returns:
            int or None: Its exit status; None if it ran past ``limit``
            (its whole process group is killed).
        """
        proc = subprocess.Popen(
            argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors='replace',
            start_new_session=True)
        expired = threading.Event()

        def kill():
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(limit, kill)
        timer.start()
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                self.log.write(line)
            proc.wait()
        finally:
            timer.cancel()
            sys.stdout.flush()
            self.log.flush()
        killed = expired.is_set() and proc.returncode < 0
        return None if killed else proc.returncode

    def run(self, step: plan.Step) -> bool:
        """Run (or write) ``step``; True if it succeeded."""
        left = self.deadline - time.monotonic() - (
            0 if step.name.startswith('summary') else SUMMARY_RESERVE)
        if self.blocked or left < 5:
            why = self.blocked or 'the time budget is spent'
            self.say(f'==> [{step.name}] not run: {why}')
            self.record(step.name, 'not run', note=why)
            return False
        limit = min(step.limit, left)
        self.say(f'==> [{step.name}] {step.describe()}  '
                 f'(limit {limit:.0f} s)')
        start = time.monotonic()
        if step.write is not None:
            path, text = step.write
            try:
                os.makedirs(osp.dirname(path), exist_ok=True)
                with open(path, 'w') as f:
                    f.write(text)
                code = 0
            except OSError as err:
                self.say(f'could not write {path}: {err}')
                code = 1
        else:
            try:
                code = self._stream(step.argv, limit)
            except OSError as err:  # e.g. the environment's python is gone
                self.say(f'could not run {step.argv[0]}: {err}')
                code = 127
        seconds = time.monotonic() - start
        if code == 0:
            status = 'ok'
        elif code is None:
            status = f'timed out after {limit:.0f} s'
        else:
            status = f'failed (exit {code})'
        self.say(f'<== [{step.name}] {status} in {seconds:.1f} s')
        self.record(step.name, status, seconds, command=step.describe())
        if code != 0 and step.required:
            self.blocked = f'step {step.name!r} {status}'
        return code == 0


def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description='make gpu-check: the gpu tests and the upsampler '
        'benchmark on CUDA, in an environment of their own',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--python', default=env('PYTHON', 'python3'),
                        help='base python (its torch is reused if it sees '
                        'CUDA)')
    parser.add_argument('--venv', default='.venv-gpu',
                        help='the environment to create or reuse')
    parser.add_argument('--out', default=env('GPU_CHECK_OUT',
                                             'work_dirs/gpu_check'),
                        help='where results go (env GPU_CHECK_OUT)')
    parser.add_argument('--wheels', default=env('GPU_CHECK_WHEELS') or None,
                        help='install missing packages from this wheel '
                        'folder only (env GPU_CHECK_WHEELS; make gpu-wheels)')
    parser.add_argument('--torch-spec', default='torch',
                        help='torch requirement where it must be installed')
    parser.add_argument('--pip-args', default=env('PIP_ARGS', ''),
                        help='extra arguments of every pip install from the '
                        'registry, one string (env PIP_ARGS)')
    parser.add_argument('--budget', type=float, default=470,
                        help='seconds for all steps together')
    parser.add_argument('--dry-run', action='store_true',
                        help='probe, then print the steps without running')
    parser.add_argument('--download-wheels', metavar='DIR',
                        help='only download the wheels an offline run needs '
                        f'({", ".join(plan.WHEELS)}) into DIR')
    args = parser.parse_args(argv)
    if args.wheels is not None and not osp.isdir(args.wheels):
        parser.error(f'--wheels must be a folder of wheels, got '
                     f'{args.wheels!r}')
    if args.budget <= SUMMARY_RESERVE:
        parser.error(f'--budget must be > {SUMMARY_RESERVE} s, got '
                     f'{args.budget}')
    return args


def settings_of(args: argparse.Namespace) -> plan.Settings:
    return plan.Settings(
        repo=REPO,
        venv=osp.abspath(args.venv),
        out=osp.abspath(args.out),
        python=args.python,
        wheels=osp.abspath(args.wheels) if args.wheels else None,
        torch_spec=args.torch_spec,
        pip_args=shlex.split(args.pip_args))


def print_plan(settings, source, probe, test_files, excluded) -> None:
    """``--dry-run``: the steps as they would run here."""
    # The new environment sees what the base python has (inherit), or
    # holds pip alone (install).
    modules = (probe.get('modules', {}) if source == 'inherit' else
               {'pip': True})
    steps = (plan.environment_steps(settings, source, probe) +
             plan.install_steps(settings, modules) +
             plan.check_steps(settings, test_files))
    print(f'torch: {source} ({probe.get("torch")}, '
          f'{probe.get("gpu", "GPU not seen by this python")})')
    for path, why in excluded.items():
        print(f'not selected: {path}: {why}')
    for step in steps:
        print(f'[{step.name}] (limit {step.limit:.0f} s) {step.describe()}')


def child_env(settings: plan.Settings) -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED='1', MPLBACKEND='Agg',
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    # The checkout first, whether or not the editable install succeeds.
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (settings.repo, env.get('PYTHONPATH')) if p)
    env.pop('VIRTUAL_ENV', None)
    return env


def run_all(settings, source, probe, test_files, budget) -> int:
    """Run every step into ``settings.out``; the exit status."""
    os.makedirs(settings.out, exist_ok=True)
    for name in OUTPUTS:
        if osp.exists(osp.join(settings.out, name)):
            os.remove(osp.join(settings.out, name))
    with open(osp.join(settings.out, 'gpu_check.log'), 'w') as log:
        runner = Runner(settings.out, budget, log, child_env(settings))
        if source == 'inherit':
            found = f"reused, {probe.get('gpu')}"
        else:
            found = f'install {settings.torch_spec} (NVIDIA driver found)'
        runner.record('probe', 'ok', note=f"torch {probe.get('torch')}: "
                      + found)
        reuse = osp.exists(plan.venv_python(settings))
        for step in plan.environment_steps(settings, source, probe):
            if step.name == 'venv' and reuse:
                runner.say(f'==> [venv] reusing {settings.venv}')
                runner.record('venv', 'ok', note='reused')
                continue
            runner.run(step)
        modules = {}
        if not runner.blocked:
            modules = probe_python(plan.venv_python(settings),
                                   timeout=90).get('modules', {})
        for step in plan.install_steps(settings, modules):
            runner.run(step)
        for step in plan.check_steps(settings, test_files):
            if step.name == 'tests' and not test_files:
                runner.record('tests', 'failed', note='no gpu test selected')
                continue
            ok = runner.run(step)
            if step.name == 'summary' and not ok:
                runner.blocked = ''
                runner.run(plan.Step('summary-fallback',
                                     plan.summary_fallback(settings),
                                     limit=30))
        failed = [r for r in runner.records if r['status'] != 'ok'
                  and r['name'] != 'summary-fallback']
        runner.say(f'gpu-check: {len(failed)} step(s) not ok' +
                   (': ' + ', '.join(r['name'] for r in failed)
                    if failed else '') + f'; results in {settings.out}')
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.download_wheels:
        os.makedirs(args.download_wheels, exist_ok=True)
        return subprocess.call(plan.download_wheels_command(
            args.python, args.download_wheels, shlex.split(args.pip_args)))
    settings = settings_of(args)
    probe = probe_python(settings.python)
    evidence = [] if probe.get('cuda_available') else driver_evidence()
    source = plan.torch_source(probe, evidence)
    if source is None:
        print(refusal(settings.python, probe), file=sys.stderr)
        return 2
    test_files, excluded = select_gpu_test_files(osp.join(REPO, 'tests'))
    test_files = [osp.relpath(p, REPO) for p in test_files]
    if args.dry_run:
        print_plan(settings, source, probe, test_files, excluded)
        return 0
    return run_all(settings, source, probe, test_files, args.budget)


if __name__ == '__main__':
    sys.exit(main())
