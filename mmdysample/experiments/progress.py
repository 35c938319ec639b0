# Copyright (c) mmdysample contributors. All rights reserved.
"""What a sweep prints, and which process prints it.

Under a launcher every rank runs the sweep; only rank 0 prints progress
and writes files. Before the first Runner has set the process group up,
the rank comes from the launcher's environment.
"""
import os
from typing import Sequence

_RANK_VARS = dict(pytorch='RANK', slurm='SLURM_PROCID',
                  mpi='OMPI_COMM_WORLD_RANK')


def is_main_process(launcher: str = 'none') -> bool:
    """Rank 0, also before mmengine has set the process group up (from
    the launcher's environment)."""
    from mmengine.dist import get_rank, is_distributed
    if is_distributed():
        return get_rank() == 0
    var = _RANK_VARS.get(launcher)
    return int(os.environ.get(var, 0)) == 0 if var else True


def format_duration(seconds: float) -> str:
    """``'42 s'``, ``'3 min 05 s'``, ``'2 h 07 min'``.

    Example:
        >>> format_duration(185), format_duration(7620)
        ('3 min 05 s', '2 h 07 min')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60:02d} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


def eta(times: Sequence[float], left: int) -> str:
    """``left`` runs times the mean of the finished runs' ``times``.

    Example:
        >>> eta([100, 140], 3)
        'ETA 6 min 00 s (2 min 00 s per run, from 2 finished)'
        >>> eta([], 3)
        'ETA unknown until a run finishes'
    """
    if not times:
        return 'ETA unknown until a run finishes'
    mean = sum(times) / len(times)
    return (f'ETA {format_duration(mean * left)} '
            f'({format_duration(mean)} per run, from {len(times)} finished)')


def print_line(line: str) -> None:
    print(line, flush=True)  # between the Runners' own log lines
