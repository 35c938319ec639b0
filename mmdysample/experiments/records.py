# Copyright (c) mmdysample contributors. All rights reserved.
"""The files a run leaves in its own directory, and reading them back.

``<work_dir>/<upsampler>/seed_<seed>/`` holds, besides mmengine's own
checkpoints and logs:

- ``run.json``: what the run is (upsampler, seed, config digest), written
  when it starts; a later sweep whose config differs refuses the directory.
- ``metrics.json``: the record of a finished run (every metric, times,
  latency). Its presence is what "finished" means; it is written
  atomically, after the test.
- ``error.json`` and ``error.log``: the one-line error and the traceback of
  a run that failed; removed when the run is tried again.

``<work_dir>/<upsampler>/complexity.json`` caches the upsampler's Params and
FLOPs (they do not depend on the seed).
"""
import json
import os
import os.path as osp
import re
from typing import Dict, Optional

from ..engine import atomic_write

RUN_FILE = 'run.json'
METRICS_FILE = 'metrics.json'
ERROR_FILE = 'error.json'
ERROR_LOG = 'error.log'
COMPLEXITY_FILE = 'complexity.json'

_UNSAFE = re.compile(r'[^A-Za-z0-9._+-]')


def upsampler_dirname(name: str) -> str:
    """The directory name of an upsampler: ``'DySample-S+'`` stays, any
    character outside ``[A-Za-z0-9._+-]`` becomes ``_``.

    Example:
        >>> upsampler_dirname('DySample-S+'), upsampler_dirname('a/b c')
        ('DySample-S+', 'a_b_c')
    """
    return _UNSAFE.sub('_', name)


def run_dirname(work_dir: str, upsampler: str, seed: int) -> str:
    return osp.join(work_dir, upsampler_dirname(upsampler), f'seed_{seed}')


def write_json(data: Dict, path: str) -> None:
    """Write ``data`` so that no reader sees a partial file."""
    text = json.dumps(data, indent=1, sort_keys=False, default=str)
    atomic_write((text + '\n').encode(), path)


def read_json(path: str) -> Optional[Dict]:
    """The JSON object in ``path``; None when the file is missing.

    Raises:
        ValueError: The file exists but is not a JSON object.
    """
    if not osp.isfile(path):
        return None
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} is not valid JSON ({err}); delete it '
                             'to run again') from err
    if not isinstance(data, dict):
        raise ValueError(f'{path} holds {type(data).__name__}, not a JSON '
                         'object; delete it to run again')
    return data


def read_record(run_dir: str) -> Optional[Dict]:
    """The finished record of a run, or None when it has not finished."""
    return read_json(osp.join(run_dir, METRICS_FILE))


def read_error(run_dir: str) -> Optional[Dict]:
    return read_json(osp.join(run_dir, ERROR_FILE))


def clear_error(run_dir: str) -> None:
    for name in (ERROR_FILE, ERROR_LOG):
        path = osp.join(run_dir, name)
        if osp.exists(path):
            os.remove(path)


def write_error(run_dir: str, record: Dict, traceback_text: str) -> None:
    """Write ``error.log`` (the traceback) and ``error.json`` (``record``:
    the one-line error, ``log`` naming ``error.log``)."""
    atomic_write(traceback_text.encode(), osp.join(run_dir, ERROR_LOG))
    write_json(record, osp.join(run_dir, ERROR_FILE))
