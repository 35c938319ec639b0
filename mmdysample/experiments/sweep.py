# Copyright (c) mmdysample contributors. All rights reserved.
"""Train and test one config with each upsampler and seed, resumably.

:func:`plan_sweep` checks everything that can be checked before any
training (upsampler names, seeds, the config's upsampler hosts, the work
dir, finished runs of another config) and lays out one run per upsampler
and seed in ``<work_dir>/<upsampler>/seed_<seed>``; :func:`run_sweep` runs
the ones no other process has claimed and rewrites the result files after
each one;
:func:`report_sweep` writes them from the runs finished so far and trains
nothing (a look at a long sweep from another shell, or tables made again
from run records kept without their checkpoints).

Design:

- **In one process.** Each run builds its own Runners (one to train, one
  to test) with :func:`~mmdysample.utils.build_runner`, as the tools do, so
  ``--launcher pytorch|slurm`` needs nothing of its own: the whole sweep is
  launched like ``tools/train.py`` (``torchrun ... compare_upsamplers.py
  ... --launcher pytorch``), mmengine sets the process group up with the
  first Runner and every run is distributed. Only rank 0 writes files and
  prints progress; every rank takes the same decisions from the same files
  and the same (broadcast) metrics. Several Runners in one process need
  distinct ``experiment_name``s (mmengine keys its logger, message hub,
  visualizer and default scope by it; see :mod:`.runs`). Subprocesses of
  ``tools/train.py`` / ``tools/test.py`` would isolate the runs further but
  would have to relaunch the launcher for each of them.
- **Several processes** (one per GPU, a Slurm array, several hosts on a
  shared filesystem) may run the same sweep on one work dir: before a run
  starts, its process claims it (:mod:`.claims`, :mod:`.coordination`);
  a run claimed by a live process is skipped, one whose holder died is
  taken over. A process goes over the runs again while it finds ones that
  are neither finished nor held, so a process killed at any point blocks
  nothing. Under a launcher
  only rank 0 claims and broadcasts what it found, so every rank takes the
  same run. Whoever finishes a run rewrites the result files from the
  records on disk (those of the other processes included), so the last
  one to finish leaves them complete; each file is replaced atomically
  (:mod:`.result_files`).
- **Finished means** ``metrics.json`` in the run dir. It is never repeated;
  a finished run made with another config (its digest differs) stops the
  sweep before training, since mixing the two would be silent.
- **Unfinished** run dirs (killed, failed) are resumed from their last
  complete checkpoint, exactly as ``tools/train.py --resume`` does (see
  :mod:`.runs`), or trained from scratch when they hold none.
- **A failing run** (any exception in training or testing) is recorded in
  ``error.json`` (one line, the log's path) and ``error.log`` (traceback)
  and the sweep goes on; a later sweep tries it again. Under a launcher a
  failure on only some ranks leaves the others waiting, as in any
  distributed job.
- **The main metric** (``--metric``, else the first of
  :data:`~mmdysample.experiments.results.DEFAULT_MAIN_METRICS` reported)
  can only be checked against what the evaluator reports once a run has
  finished: the sweep then stops with the available keys (that run's
  ``metrics.json`` is kept).
"""
import os
import os.path as osp
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from ..utils import load_config
from . import claims
from . import records as rec
from . import runs
from .coordination import decide, from_rank0, join_process_group
from .hosts import (check_upsampler_names, config_digest, config_for_run,
                    format_path, require_hosts)
from .progress import eta, format_duration, is_main_process, print_line
from .report import RESULTS_CSV, RESULTS_JSON, RESULTS_MD, now
from .result_files import write_results
from .results import choose_main_metric, numeric_metrics


@dataclass
class PlannedRun:
    """One upsampler and seed: its config, directory and, when finished,
    its record."""
    upsampler: str
    seed: int
    run_dir: str
    cfg: Config
    digest: str
    record: Optional[Dict] = None
    error: Optional[Dict] = None


@dataclass
class SweepPlan:
    config: str
    work_dir: str
    upsamplers: List[str]
    seeds: List[int]
    hosts: List[tuple]
    launcher: str = 'none'
    metric: Optional[str] = None
    shape: Optional[List[int]] = None
    runs: List[PlannedRun] = field(default_factory=list)


def check_seeds(seeds: Sequence[int]) -> List[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError('--seeds needs at least one seed')
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or not (
                0 <= seed < 2**32):
            raise ValueError(
                f'--seeds must be integers in [0, 2**32), got {seed!r}')
    if len(set(seeds)) != len(seeds):
        raise ValueError(f'--seeds names a seed more than once: {seeds}')
    return seeds


def check_writable(work_dir: str) -> None:
    """Create ``work_dir`` and write a file in it, or raise ValueError."""
    try:
        os.makedirs(work_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.writable_', dir=work_dir)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(
            f'--work-dir {work_dir!r} is not writable: {err}') from err


def _data_roots(node, where: str = '') -> List[tuple]:
    """``(key path, data_root)`` of every dataset dict under ``node``."""
    found = []
    if isinstance(node, dict):
        root = node.get('data_root')
        if isinstance(root, str) and root:
            found.append((where, root))
        for key, value in node.items():
            found += _data_roots(value, f'{where}.{key}' if where else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _data_roots(value, f'{where}[{i}]')
    return found


def check_data(cfg: Config, config: str) -> None:
    """Raise ValueError when a dataloader's ``data_root`` is missing.

    Every run would fail on it after building its model; this says so once,
    before any training.
    """
    missing = []
    for part in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for where, root in _data_roots(cfg.get(part), part):
            if not osp.isdir(root):
                missing.append(f'{where}.data_root={root!r}')
    if missing:
        raise ValueError(
            f'{config}: no dataset at {", ".join(sorted(set(missing)))} '
            f'(from {os.getcwd()}). Generate the built-in data first '
            '(make data / make data-fine, or tools/misc/'
            'generate_synthetic_data.py), or point the config there with '
            '--cfg-options')


def default_work_dir(config: str) -> str:
    stem = osp.splitext(osp.basename(config))[0]
    return osp.join('work_dirs', f'compare_upsamplers_{stem}')


def plan_sweep(config: str,
               upsamplers: Sequence[str],
               seeds: Sequence[int] = (0, 1, 2),
               work_dir: Optional[str] = None,
               cfg_options: Optional[Dict] = None,
               launcher: str = 'none',
               metric: Optional[str] = None,
               shape: Optional[Sequence[int]] = None,
               need_data: bool = True) -> SweepPlan:
    """Check the sweep's inputs and lay out its runs (no training).

    ``need_data=False`` skips the check that the datasets exist (for
    :func:`report_sweep`, which reads only the run records).

    Raises:
        ValueError: An unknown or repeated upsampler name, a bad seed or
            shape, a missing config, a config whose model has no
            ``upsample_cfg`` host, an unwritable work dir, finished runs
            of another config in it, a ``metric`` the finished runs do
            not report, or (``need_data``) a dataloader's missing
            ``data_root``.
    """
    seeds = check_seeds(seeds)
    if shape is not None and (len(shape) != 2 or any(
            not isinstance(v, int) or v <= 0 for v in shape)):
        raise ValueError(f'--shape must be two positive integers H W, got '
                         f'{shape!r}')
    cfg = load_config(config, cfg_options, launcher)  # also mmdet::PATH
    # Upsamplers that the config's custom_imports register are known too
    # (Config.fromfile imported those of the file; this also covers
    # custom_imports given through --cfg-options).
    import_modules_from_strings(**cfg.custom_imports)
    names = check_upsampler_names(upsamplers)
    hosts = require_hosts(cfg, config)
    work_dir = osp.abspath(work_dir or default_work_dir(config))
    check_writable(work_dir)
    plan = SweepPlan(config, work_dir, names, seeds, hosts, launcher, metric,
                     list(shape) if shape else None)
    conflicts = []
    for name in names:
        for seed in seeds:
            run_cfg = config_for_run(cfg, hosts, name, seed)
            run = PlannedRun(name, seed,
                             rec.run_dirname(work_dir, name, seed), run_cfg,
                             config_digest(run_cfg))
            started = rec.read_json(osp.join(run.run_dir, rec.RUN_FILE))
            run.record = rec.read_record(run.run_dir)
            if any(made and made.get('config_digest') != run.digest
                   for made in (started, run.record)):
                conflicts.append(run.run_dir)
            run.error = rec.read_error(run.run_dir)
            plan.runs.append(run)
    if conflicts:
        raise ValueError(
            'these run directories were made with another config or other '
            f'--cfg-options: {conflicts}; use another --work-dir, or '
            'delete them to run them again')
    finished = [r.record for r in plan.runs if r.record]
    if metric is not None and finished:
        choose_main_metric(finished[0]['metrics'], metric)
    if need_data and not all(r.record for r in plan.runs):
        check_data(cfg, config)
    return plan


def _one_line(err: BaseException) -> str:
    cause = getattr(err, 'cause', err)
    text = str(cause).strip().splitlines()
    line = f'{type(cause).__name__}: {text[0] if text else ""}'.strip()
    return line if len(line) <= 300 else line[:297] + '...'


def _attempt(run: PlannedRun) -> Dict:
    """Train and test ``run``; its record (raises on failure)."""
    trained = runs.train(run.cfg, run.run_dir)
    tested = runs.test(run.cfg, run.run_dir, trained['checkpoint'])
    return dict(
        upsampler=run.upsampler,
        seed=run.seed,
        status='ok',
        metrics=numeric_metrics(tested['metrics']),
        config_digest=run.digest,
        checkpoint=trained['checkpoint'],
        resumed_from=trained['resumed_from'],
        train_time_s=trained['train_time_s'],
        test_time_s=tested['test_time_s'],
        latency=tested['latency'],
        train_log=trained['train_log'],
        test_log=tested['test_log'])


def _failure(run: PlannedRun, err: Exception, seconds: float,
             main: bool) -> Dict:
    """The record of a failed run; rank 0 writes ``error.json`` and
    ``error.log`` (the traceback, then the Runner's log path)."""
    error = dict(
        upsampler=run.upsampler,
        seed=run.seed,
        status='failed',
        error=_one_line(err),
        config_digest=run.digest,
        wall_time_s=seconds,
        finished=now(),
        log=osp.join(run.run_dir, rec.ERROR_LOG),
        run_log=getattr(err, 'log', None))
    if main:
        trace = ''.join(
            traceback.format_exception(type(err), err, err.__traceback__))
        if error['run_log']:
            trace += f"\nThe Runner's log: {error['run_log']}\n"
        rec.write_error(run.run_dir, error, trace)
    return error


def _main_metric(plan: SweepPlan) -> Optional[str]:
    """The main metric from the first finished run (None before one)."""
    first = next((r.record for r in plan.runs if r.record), None)
    if first is None:
        return None
    return choose_main_metric(first['metrics'], plan.metric)


def report_sweep(plan: SweepPlan,
                 log: Callable[[str], None] = print_line) -> Dict:
    """Write the result files from the finished runs; train nothing.

    Runs not finished yet are listed as pending in ``results.md`` and
    ``results.json``; failed ones as failures.

    Returns:
        dict: As :func:`run_sweep`, with empty ``trained`` and ``failed``
        (on ranks other than 0 only those two).
    """
    out = dict(trained=[], failed=[])
    if not is_main_process(plan.launcher):
        return out
    out.update(write_results(plan, _main_metric(plan)))
    done = sum(1 for r in plan.runs if r.record)
    log(f'[compare_upsamplers] report only: {done} of {len(plan.runs)} '
        f'runs finished, {len(out["info"]["pending"])} pending, nothing '
        f'trained; results in {plan.work_dir}/{{{RESULTS_MD}, '
        f'{RESULTS_CSV}, {RESULTS_JSON}, results.png}}')
    return out


def _train_one(plan: SweepPlan, index: int, head: str, main: bool,
               say: Callable[[str], None]) -> bool:
    """Train and test run ``index`` (from 1), recording it; whether it
    finished."""
    run = plan.runs[index - 1]
    left = sum(1 for r in plan.runs[index - 1:] if r.record is None)
    point = runs.resume_point(run.run_dir)
    how = 'resuming' if point else 'training'
    times = [
        r.record['wall_time_s'] for r in plan.runs
        if r.record and r.record.get('wall_time_s')
    ]
    say(f'{head}: {how} ({left} left including this one; '
        f'{eta(times, left)})')
    start = time.perf_counter()
    if main:
        rec.clear_error(run.run_dir)
        rec.write_json(
            dict(
                upsampler=run.upsampler,
                seed=run.seed,
                config=plan.config,
                config_digest=run.digest,
                started=now()), osp.join(run.run_dir, rec.RUN_FILE))
    try:
        record = _attempt(run)
    except Exception as err:  # recorded; the sweep goes on
        run.error = _failure(run, err, time.perf_counter() - start, main)
        say(f"{head}: FAILED: {run.error['error']} "
            f"(log: {run.error['log']})")
        return False
    record.update(wall_time_s=time.perf_counter() - start, finished=now())
    if main:
        rec.write_json(record, osp.join(run.run_dir, rec.METRICS_FILE))
    run.record, run.error = record, None
    return True


def run_sweep(plan: SweepPlan,
              log: Callable[[str], None] = print_line,
              claim_timeout_s: float = claims.DEFAULT_TIMEOUT_S) -> Dict:
    """Run the plan's unfinished runs that no other process holds,
    writing results after each.

    Each run is claimed first (see :mod:`.claims`). A pass over the runs
    is repeated while the last one trained something and some run was
    held by another process (it may have finished, or died, meanwhile).

    Args:
        plan (SweepPlan): From :func:`plan_sweep`.
        log (callable): Where rank 0's progress lines go. Defaults to
            ``print`` (flushed).
        claim_timeout_s (float): Seconds without heartbeat after which
            another process's claim counts as dead. Defaults to
            :data:`~.claims.DEFAULT_TIMEOUT_S`.

    Returns:
        dict: ``info``, ``summaries`` and ``rows`` of the last results
        written, ``trained`` (runs finished now), ``failed`` (runs that
        failed now) and ``held`` (runs another process held when last
        looked at). Other ranks than 0 get only the last three.

    Raises:
        ValueError: The main metric is not reported (after the first run
            that finished; the message lists the keys that are), a run was
            finished meanwhile by a process with another config, or
            ``claim_timeout_s`` is not positive.
    """
    timeout_s = claims.check_timeout(claim_timeout_s)
    main = is_main_process(plan.launcher)
    say = log if main else (lambda _: None)
    total = len(plan.runs)
    say(f'[compare_upsamplers] {total} runs (upsamplers '
        f"{', '.join(plan.upsamplers)} x seeds "
        f"{' '.join(map(str, plan.seeds))}) in {plan.work_dir}; "
        f"upsample_cfg of {', '.join(format_path(p) for p in plan.hosts)}")
    join_process_group(plan.launcher, plan.runs[0].cfg)
    trained, failed = [], []
    # run index -> 'before', 'ours', 'held', or what another process did:
    # 'done elsewhere', 'failed elsewhere'
    state = {}
    holders = {}  # run index -> the claim generation last reported
    main_metric = _main_metric(plan)
    written = None
    for index, run in enumerate(plan.runs, 1):
        if run.record:
            state[index] = 'before'
            say(f'[compare_upsamplers] run {index}/{total}: {run.upsampler} '
                f'seed {run.seed}: done before ({rec.METRICS_FILE} present), '
                'skipped')
    progressed = True
    while progressed and (len(state) < total or 'held' in state.values()):
        progressed = False
        for index, run in enumerate(plan.runs, 1):
            if state.get(index, 'held') != 'held':
                continue
            head = (f'[compare_upsamplers] run {index}/{total}: '
                    f'{run.upsampler} seed {run.seed}')
            decision, release = (decide(run, timeout_s, log) if main else
                                 (None, None))
            decision = from_rank0(decision)
            action = decision['action']
            if action == 'conflict':  # on every rank, not only on 0
                raise ValueError(decision['error'])
            if action == 'held':
                state[index] = 'held'
                if holders.get(index) != decision['generation']:
                    say(f"{head}: claimed by {decision['holder']}, skipped")
                holders[index] = decision['generation']
                continue
            if action == 'done':
                state[index] = 'done elsewhere'
                run.record = decision['record']
                say(f'{head}: finished by another process '
                    f'({rec.METRICS_FILE} present), skipped')
                main_metric = _main_metric(plan)
                continue
            if action == 'failed':
                state[index] = 'failed elsewhere'
                run.error = decision['error']
                say(f"{head}: failed in another process "
                    f"({decision['error']['error']}), not retried now")
                continue
            if decision['took_over']:
                say(f"{head}: took over the claim of "
                    f"{decision['took_over']}")
            state[index], progressed = 'ours', True
            try:
                if _train_one(plan, index, head, main, say):
                    trained.append(run)
                    main_metric = _main_metric(plan)
                    say(f'{head}: done in '
                        f"{format_duration(run.record['wall_time_s'])}, "
                        f"{main_metric} = "
                        f"{run.record['metrics'].get(main_metric)}")
                else:
                    failed.append(run)
            finally:
                if release:
                    release()
            if main:
                written = write_results(plan, main_metric)
    held = [run for i, run in enumerate(plan.runs, 1)
            if state.get(i) == 'held']
    out = dict(trained=trained, failed=failed, held=held)
    if not main:
        return out
    if written is None or held or any('elsewhere' in s
                                      for s in state.values()):
        written = write_results(plan, main_metric)  # others' runs too
    out.update(written)
    _say_summary(plan, state, out, say)
    return out


def _say_summary(plan: SweepPlan, state: Dict[int, str], out: Dict,
                 say: Callable[[str], None]) -> None:
    """The closing lines: what this process did, what others did or
    hold."""
    counts = [
        f"{len(out['trained'])} trained now",
        f"{sum(1 for s in state.values() if s == 'before')} done before",
        f"{len(out['failed'])} failed"
    ]
    for key, what in (('done elsewhere', 'finished by other processes'),
                      ('failed elsewhere', 'failed in other processes'),
                      ('held', 'held by other processes')):
        count = sum(1 for s in state.values() if s == key)
        if count:
            counts.append(f'{count} {what}')
    say(f"[compare_upsamplers] {len(plan.runs)} runs: {', '.join(counts)}; "
        f'results in {plan.work_dir}/{{{RESULTS_MD}, {RESULTS_CSV}, '
        f'{RESULTS_JSON}, results.png}}')
    if out['held']:
        say('[compare_upsamplers] still held by other processes: '
            f"{', '.join(f'{r.upsampler} seed {r.seed}' for r in out['held'])}"
            '; whoever finishes the last run rewrites the results whole '
            '(--report-only shows them any time)')
