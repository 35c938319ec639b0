# Copyright (c) mmdysample contributors. All rights reserved.
"""The timing harness: interleaved rounds, peak memory, FLOPs.

Latency: each round runs every task once, in an order shuffled afresh per
round (seeded), so a burst of load on a shared machine hits all tasks alike
rather than whichever ran then. Warm-up rounds run the same way and are
dropped. Each sample is one call timed with ``time.perf_counter``
(bracketed by ``torch.cuda.synchronize`` on CUDA); the garbage collector is
paused during the rounds.

Peak memory: the most memory held at once by tensors allocated during one
call, over what was held before it. On CUDA this is
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
minus ``memory_allocated`` before the call. On CPU, the call runs once
under ``torch.profiler.profile(profile_memory=True)``; the peak is the
maximum of the running sum of the allocations and frees it logs.
"""
import gc
import json
import os.path as osp
import random
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, List, Optional, Sequence

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile


@dataclass
class Task:
    """A timed ``run``, after an untimed ``prepare`` (mode, gradients)."""
    prepare: Callable[[], None]
    run: Callable[[], None]


def synchronize(device: torch.device) -> Callable[[], None]:
    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value,
                                                 int) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')


def check_rounds(rounds: int, warmup: int, prefix: str = '') -> None:
    """Raise ValueError unless ``rounds >= 1`` and ``warmup >= 0``."""
    check_int(prefix + 'rounds', rounds, 1)
    check_int(prefix + 'warmup', warmup, 0)


def interleaved_timings(tasks: Dict[Hashable, Task],
                        rounds: int,
                        warmup: int,
                        device: torch.device,
                        seed: int = 0) -> Dict[Hashable, List[float]]:
    """Milliseconds per call of every task, interleaved.

    Each of ``warmup + rounds`` rounds runs every task once, in an order
    shuffled per round; the first ``warmup`` rounds are not recorded.

    Returns:
        dict: ``rounds`` samples (ms) per task key.
    """
    check_rounds(rounds, warmup)
    sync = synchronize(device)
    rng = random.Random(seed)
    order = list(tasks)
    samples = {key: [] for key in tasks}
    gc.collect()
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(warmup + rounds):
            rng.shuffle(order)
            for key in order:
                task = tasks[key]
                task.prepare()
                sync()
                start = time.perf_counter()
                task.run()
                sync()
                elapsed = (time.perf_counter() - start) * 1e3
                if i >= warmup:
                    samples[key].append(elapsed)
    finally:
        if gc_enabled:
            gc.enable()
    return samples


def _cpu_peak_bytes(run: Callable[[], None]) -> int:
    """Peak running sum of the CPU allocations the profiler logs in ``run``.
    """
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        run()
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)['traceEvents']
    deltas = sorted(
        (e['ts'], e['args']['Bytes']) for e in events
        if e.get('name') == '[memory]' and e['args'].get('Device Type') == 0)
    held = peak = 0
    for _, nbytes in deltas:
        held += nbytes
        peak = max(peak, held)
    return peak


def peak_memory_bytes(task: Task, device: torch.device) -> int:
    """Most memory held by allocations of one ``task.run()`` (see module)."""
    task.prepare()
    if device.type != 'cuda':
        return _cpu_peak_bytes(task.run)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    task.run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def stats(samples: List[float]) -> Dict:
    quartiles = (statistics.quantiles(samples, n=4)
                 if len(samples) > 1 else samples * 3)
    return dict(
        samples_ms=samples,
        median_ms=statistics.median(samples),
        q1_ms=quartiles[0],
        q3_ms=quartiles[2],
        min_ms=min(samples))


def ratios(result: Dict, base: Optional[Dict],
           passes: Sequence[str]) -> Dict[str, Optional[float]]:
    """``result / base`` of the median time (``pass``) and peak memory
    (``pass_mem``) of each pass; None without a base or where it is 0."""
    out = {}
    for pass_ in passes:
        for suffix, key in (('', 'median_ms'), ('_mem', 'peak_mem_bytes')):
            denominator = base[pass_][key] if base else None
            out[pass_ + suffix] = (result[pass_][key] / denominator
                                   if denominator else None)
    return out


def count_flops(layer: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of ``layer(*inputs)`` by mmengine's FlopAnalyzer (see module):
    ``(x, )``, or ``(x, guide)`` for a guided upsampler."""
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings
        analyzer = FlopAnalyzer(layer.eval(), inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())
