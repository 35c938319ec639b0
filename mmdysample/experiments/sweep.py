# Copyright (c) mmdysample contributors. All rights reserved.
"""Train and test one config with each upsampler and seed, resumably.

:func:`~.plan.plan_sweep` (:mod:`.plan`) checks everything that can be
checked before any training and lays out one run per upsampler and seed in
``<work_dir>/<upsampler>/seed_<seed>``; :func:`run_sweep` runs
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
import os.path as osp
import time
import traceback
from typing import Callable, Dict, Optional

from . import claims
from . import records as rec
from . import runs
from .coordination import decide, from_rank0, join_process_group
from .hosts import format_path
from .plan import PlannedRun, SweepPlan
from .progress import eta, format_duration, is_main_process, print_line
from .report import RESULTS_CSV, RESULTS_JSON, RESULTS_MD, now
from .result_files import write_results
from .results import choose_main_metric, numeric_metrics


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
        plan (SweepPlan): From :func:`~.plan.plan_sweep`.
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
