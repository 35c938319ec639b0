# Copyright (c) mmdysample contributors. All rights reserved.
"""Which process trains which run, when several share a sweep.

:func:`decide` is what a sweep's process (rank 0 under a launcher) does
with a run before training it: skip it when it is finished or failed in
another process during this sweep, skip it when another process holds its
claim, else claim it (taking over a dead holder's claim; see
:mod:`.claims`). Under a launcher the decision is rank 0's alone and
:func:`from_rank0` hands it to every rank, so all ranks train the same
run; :func:`join_process_group` sets the process group up before the first
Runner would, for that broadcast.
"""
import copy
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.dist import broadcast_object_list, init_dist, is_distributed

from ..utils.runner import prepare_cpu_distributed
from . import claims
from . import records as rec
from .progress import format_duration


def join_process_group(launcher: str, cfg: Config) -> None:
    """Set the launcher's process group up now, as the first Runner would
    (which then keeps it), so that rank 0 can broadcast its claims.

    Args:
        launcher (str): ``'none'`` (nothing to do), ``'pytorch'``,
            ``'slurm'`` or ``'mpi'``.
        cfg (Config): A run's config (its ``env_cfg.dist_cfg``).
    """
    if launcher == 'none' or is_distributed():
        return
    cfg = copy.deepcopy(cfg)
    cfg.launcher = launcher
    if launcher == 'pytorch' and not torch.cuda.is_available():
        prepare_cpu_distributed(cfg)  # what build_runner does on CPU
    else:
        init_dist(launcher, **cfg.get('env_cfg', {}).get('dist_cfg', {}))


def from_rank0(obj):
    """``obj`` of rank 0 on every rank (itself when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj]
    broadcast_object_list(box, src=0)
    return box[0]


def _found(run) -> Optional[Dict]:
    """The run finished (``done``), or failed in another process since the
    plan was made (``failed``), or was finished by a process with another
    config (``conflict``); None otherwise."""
    record = rec.read_record(run.run_dir)
    if record and record.get('config_digest') != run.digest:
        return dict(
            action='conflict',
            error=f'{run.run_dir} was finished meanwhile by a process with '
            'another config or other --cfg-options; give each config its '
            'own --work-dir')
    if record:
        return dict(action='done', record=record)
    error = rec.read_error(run.run_dir)
    if error and error != run.error:
        return dict(action='failed', error=error)
    return None


def decide(run, timeout_s: float,
           log: Callable[[str], None]) -> Tuple[Dict, Optional[Callable]]:
    """What to do with ``run`` now (rank 0), and the claim's release when
    this process is to train it.

    Args:
        run (PlannedRun): The run (its ``run_dir``, and ``error`` as the
            plan found it).
        timeout_s (float): See :func:`.claims.try_claim`.
        log (callable): Told when this process loses a claim it holds.

    Returns:
        tuple: A dict whose ``action`` is ``'done'`` (with ``record``),
        ``'failed'`` (``error``: the other process's record),
        ``'conflict'`` (``error``: the message; the sweep must stop),
        ``'held'`` (``holder``: who holds it) or ``'train'``
        (``took_over``: None, or whose claim was taken over and why); then
        the claim's ``release`` for ``'train'``, else None.
    """
    decision = _found(run)
    if decision:
        return decision, None
    got = claims.try_claim(run.run_dir, timeout_s, log)
    if got.claim is None:
        view = got.holder
        return dict(
            action='held',
            generation=view.generation,
            holder=f'{claims.describe(view.info)}, heartbeat '
            f'{format_duration(view.age_s)} ago'), None
    decision = _found(run)  # finished by the holder just before we claimed
    if decision:
        got.claim.release()
        return decision, None
    dead = got.taken_over
    took_over = dead and f'{claims.describe(dead.info)}: {dead.dead}'
    return dict(action='train', took_over=took_over), got.claim.release
