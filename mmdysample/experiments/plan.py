# Copyright (c) mmdysample contributors. All rights reserved.
"""A sweep's plan: its inputs checked and one run laid out per upsampler and
seed, before anything trains.

:func:`plan_sweep` checks what can be checked without training (upsampler
names, seeds, the config's upsampler hosts, the work dir, finished runs of
another config, the datasets) and gives the :class:`SweepPlan` that
:mod:`.sweep` runs and reports.
"""
import os
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from ..utils import load_config
from . import records as rec
from .hosts import (check_upsampler_names, config_digest, config_for_run,
                    require_hosts)
from .results import choose_main_metric


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
            '(make data / make data-fine / make data-depth, or tools/misc/'
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
