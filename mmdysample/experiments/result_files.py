# Copyright (c) mmdysample contributors. All rights reserved.
"""The result files of a sweep, written from the records on disk.

``results.json`` / ``.csv`` / ``.md`` / ``.png`` in the work dir (the
tables come from :mod:`.report`, the chart from :mod:`.plot`). Several
processes may share a sweep (:mod:`.coordination`), so the records are
read from the run directories, not from the process's memory: whoever
finishes a run writes the files, and the last one to do so leaves them
complete. Each file is replaced atomically (a unique file beside it,
renamed over it), so two processes writing at once never leave a torn
file. ``plan`` is a :class:`~.plan.SweepPlan`.
"""
import copy
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Tuple

from ..engine.atomic_backend import temp_path_for
from . import records as rec
from .complexity import cached_complexity
from .hosts import config_digest, format_path
from .plot import plot_results
from .report import (RESULTS_CSV, RESULTS_JSON, RESULTS_MD, metric_keys, now,
                     run_rows, write_results_csv, write_results_json,
                     write_results_md)
from .results import summarize


def complexity_of(plan, name: str) -> Dict:
    """Params and FLOPs of ``name``'s model (cached in its directory)."""
    run = next(r for r in plan.runs if r.upsampler == name)
    cfg = copy.deepcopy(run.cfg)
    cfg.pop('randomness', None)  # the counts do not depend on the seed
    return cached_complexity(cfg, osp.dirname(run.run_dir),
                             config_digest(cfg), plan.shape)


def _disk_state(plan) -> List[Tuple]:
    """Which version of each run's ``metrics.json`` and ``error.json`` is
    there (None: absent). Both are replaced atomically, so a new one is a
    new inode even where the clock is too coarse to tell them apart."""

    def changed(path):
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    return [(changed(osp.join(r.run_dir, rec.METRICS_FILE)),
             changed(osp.join(r.run_dir, rec.ERROR_FILE))) for r in plan.runs]


def _replace_atomically(write: Callable[[str], None], path: str) -> None:
    """``write(tmp)`` to a unique file beside ``path``, then rename it
    over ``path``: two processes writing at once leave one whole file."""
    # The same extension: matplotlib picks the format by it.
    tmp = temp_path_for(path) + osp.splitext(path)[1]
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _write_results_once(plan, main_metric: Optional[str]) -> Dict:
    records = []
    for run in plan.runs:
        # From disk: other processes' runs finish there too.
        record = rec.read_record(run.run_dir) or run.record
        error = None if record else rec.read_error(run.run_dir)
        if record or error:
            records.append(record or error)
    touched = {r['upsampler'] for r in records} | {plan.upsamplers[0]}
    complexity = {
        name: complexity_of(plan, name)
        for name in plan.upsamplers if name in touched
    }
    summaries = summarize(records, plan.upsamplers, complexity)
    rows = run_rows(records, summaries)
    ok = [r for r in records if r['status'] == 'ok']
    made = {(r['upsampler'], r['seed']) for r in records}
    info = dict(
        config=plan.config,
        work_dir=plan.work_dir,
        upsamplers=plan.upsamplers,
        seeds=plan.seeds,
        baseline=plan.upsamplers[0],
        main_metric=main_metric,
        hosts=[format_path(p) for p in plan.hosts],
        complexity_shape=next((c.get('shape') for c in complexity.values()
                               if c.get('shape')), None),
        device=next(((r.get('latency') or {}).get('device') for r in ok),
                    None),
        created=now(),
        pending=[[r.upsampler, r.seed] for r in plan.runs
                 if (r.upsampler, r.seed) not in made])
    out = plan.work_dir
    # Each writer replaces its file atomically (report.py: atomic_write).
    write_results_json(osp.join(out, RESULTS_JSON), info, rows, summaries)
    write_results_csv(
        osp.join(out, RESULTS_CSV), rows, metric_keys(summaries))
    write_results_md(osp.join(out, RESULTS_MD), info, summaries, rows)
    _replace_atomically(
        lambda path: plot_results(
            summaries,
            main_metric,
            plan.upsamplers[0],
            path,
            title=f"{main_metric or 'main metric'} against +Params: "
            f'{osp.basename(plan.config)}, seeds {plan.seeds}'),
        osp.join(out, 'results.png'))
    return dict(info=info, summaries=summaries, rows=rows)


def write_results(plan, main_metric: Optional[str]) -> Dict:
    """Write results.json / .csv / .md / .png for the runs so far.

    The records are read from the run directories, so the runs other
    processes finished are in the tables. A record that appears while the
    files are written (another process finished a run) makes them be
    written again: whichever process writes last leaves them complete.
    """
    for _ in range(len(plan.runs) + 1):
        before = _disk_state(plan)
        written = _write_results_once(plan, main_metric)
        if _disk_state(plan) == before:
            break
    return written
