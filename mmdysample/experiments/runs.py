# Copyright (c) mmdysample contributors. All rights reserved.
"""One run of a sweep: train a config, then test its last checkpoint.

Both steps are what ``tools/train.py`` and ``tools/test.py`` do: the config
comes from :func:`~mmdysample.utils.load_config`, the Runner from
:func:`~mmdysample.utils.build_runner`, and the test Runner gets the last
checkpoint as ``load_from`` with the
:class:`~mmdysample.engine.CheckpointFitHook` that ``tools/test.py`` adds.
The only additions are a unique ``experiment_name`` per Runner (mmengine
keys its logger, message hub, visualizer and default scope by it, and
several Runners share this process) and the
:class:`~mmdysample.experiments.latency.LatencyHook`, which only reads the
clock.

A run directory that holds a checkpoint (a killed or failed earlier try)
is resumed from it, as ``tools/train.py --resume`` would: through
``last_checkpoint`` (repaired by :class:`~mmdysample.engine.SafeResumeHook`
if it names a partial file), else the newest complete ``iter_N.pth`` /
``epoch_N.pth``. Resuming is exact (the RNG state is in the checkpoint),
so the metrics equal those of an uninterrupted run; ``train_time_s`` then
covers only the resumed part, and the record says where it resumed from.
"""
import copy
import gc
import itertools
import logging
import os.path as osp
import time
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.config import Config

from ..engine import newest_complete_checkpoint
from ..utils import build_runner
from .latency import LatencyHook

_RUNNER_IDS = itertools.count()


def _experiment_name(run_dir: str, phase: str) -> str:
    # mmengine appends a timestamp with one-second resolution; two
    # Runners of this process may start within the same second.
    seed_dir = osp.basename(run_dir)
    upsampler = osp.basename(osp.dirname(run_dir))
    return f'{upsampler}_{seed_dir}_{phase}_{next(_RUNNER_IDS)}'


def resume_point(run_dir: str) -> Optional[str]:
    """What a training in ``run_dir`` resumes from: ``'auto'`` when
    ``last_checkpoint`` exists, else the newest complete checkpoint, else
    None (a fresh start)."""
    if osp.isfile(osp.join(run_dir, 'last_checkpoint')):
        return 'auto'
    return newest_complete_checkpoint(run_dir)


def _close_log(runner) -> None:
    """Close a finished Runner's log file (its logger outlives it)."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


def _free_memory() -> None:
    """Collect the last Runner's model and data loaders before the next."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _log_file(runner) -> Optional[str]:
    for handler in getattr(getattr(runner, 'logger', None), 'handlers', []):
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


class RunError(RuntimeError):
    """A run failed; ``log`` is the mmengine log of the failing Runner
    (None when it failed before one was built)."""

    def __init__(self, cause: BaseException, log: Optional[str]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.log = log


def _drive(cfg: Config, step: Callable, hook=None) -> Tuple:
    """Build a Runner from ``cfg`` and call ``step(runner)``.

    Returns:
        tuple: What ``step`` returned, its wall time in seconds and the
        Runner's log file. The Runner is let go before returning.

    Raises:
        RunError: Building the Runner or ``step`` raised.
    """
    runner = None
    try:
        runner = build_runner(cfg)
        if hook is not None:
            runner.register_hook(hook)
        start = time.perf_counter()
        result = step(runner)
        seconds = time.perf_counter() - start
    except Exception as err:
        log = _log_file(runner)
        if runner is not None:
            _close_log(runner)
        raise RunError(err, log) from err
    log = _log_file(runner)
    _close_log(runner)
    del runner
    _free_memory()
    return result, seconds, log


def _train_step(runner) -> None:
    runner.train()  # the trained model is not kept past the Runner


def train(cfg: Config, run_dir: str) -> Dict:
    """Train ``cfg`` in ``run_dir``; the checkpoint and times.

    Returns:
        dict: ``checkpoint`` (the path ``last_checkpoint`` names),
        ``train_time_s`` (wall time of ``Runner.train()``, validation and
        checkpoint writes included, the Runner's build excluded),
        ``resumed_from`` (None, or the checkpoint resumed from) and
        ``train_log``.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = run_dir
    cfg.experiment_name = _experiment_name(run_dir, 'train')
    point = resume_point(run_dir)
    resumed_from = None
    if point == 'auto':
        with open(osp.join(run_dir, 'last_checkpoint')) as f:
            resumed_from = f.read().strip() or None
        cfg.resume, cfg.load_from = True, None
    elif point is not None:
        resumed_from = point
        cfg.resume, cfg.load_from = True, point
    else:
        cfg.resume = False
    _, seconds, log = _drive(cfg, _train_step)
    last = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(last):
        raise RunError(
            RuntimeError(f'training saved no checkpoint: {last} is missing '
                         '(is default_hooks.checkpoint disabled?)'), log)
    with open(last) as f:
        checkpoint = f.read().strip()
    return dict(
        checkpoint=checkpoint,
        train_time_s=seconds,
        resumed_from=resumed_from,
        train_log=log)


def test(cfg: Config, run_dir: str, checkpoint: str) -> Dict:
    """Test ``checkpoint`` with ``cfg``, logging under ``run_dir/test``.

    Returns:
        dict: ``metrics`` (what the evaluator reports), ``test_time_s``
        (wall time of ``Runner.test()``), ``latency`` (see
        :mod:`~mmdysample.experiments.latency`) and ``test_log``.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = osp.join(run_dir, 'test')
    cfg.experiment_name = _experiment_name(run_dir, 'test')
    cfg.resume, cfg.load_from = False, checkpoint
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='CheckpointFitHook', allow_partial=False, source=checkpoint)
    ]
    latency = LatencyHook()
    metrics, seconds, log = _drive(cfg, lambda runner: runner.test(),
                                   latency)
    return dict(
        metrics=dict(metrics),
        test_time_s=seconds,
        latency=latency.result(),
        test_log=log)
