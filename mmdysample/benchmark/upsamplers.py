# Copyright (c) mmdysample contributors. All rights reserved.
"""Latency, peak memory, Params and FLOPs of upsamplers, side by side.

The paper (Sec. 3.4, Fig. 1 and Fig. 8) times x2 upsampling of a
``256 x 120 x 120`` map on an RTX 3090: 6.2 ms for DySample, 1.6 ms for
bilinear; its guided upsamplers (IndexNet, A2U, FADE, SAPA-B) also read a
``256 x 240 x 240`` guide. :func:`run_benchmark` measures the same
quantities for every registered upsampler on the machine at hand, guided
ones with their guide, and the whole-model cost of DySample in Faster R-CNN
and SegFormer. The work has a room each:

* :mod:`.candidates`: what is measured (the registered upsamplers, guided
  or not, the DySample layer in the paper's formulation, CARAFE's CPU
  twin), and which implementation samples for DySample on each device;
* :mod:`.timing`: the harness (interleaved rounds, peak memory, FLOPs);
* :mod:`.layers`: the upsamplers on one input, and the sweep of inputs;
* :mod:`.models`: whole models with DySample against their stock
  upsampling;
* :mod:`.report`: machine facts, the tables, the chart and the JSON.

How it measures:

* **Latency**, forward (``no_grad``, eval mode) and forward + backward
  (train mode, a dense random output gradient; parameter and input
  gradients are cleared outside the timed region), candidates interleaved
  (:func:`~.timing.interleaved_timings`); the median is reported, and
  every sample is kept in the JSON.
* **Peak memory**: the most memory held at once by tensors allocated during
  one call, over what was held before it (inputs, weights and the output
  gradient are not counted; the output is); allocator-level on CPU
  (``torch.profiler``) and CUDA (``max_memory_allocated``), not the
  process RSS.
* **Guided upsamplers** read a random guide ``(N, C, sH, sW)`` in every
  pass; in forward + backward it gets a gradient like ``x`` (in an FPN it
  is a lateral). The tables say which rows read one.
* **Params** and **FLOPs**: parameter count, and mmengine's ``FlopAnalyzer``
  on the layer at the measured input and guide (one multiply-add is one FLOP;
  ``grid_sampler`` and bilinear resize are 4 FLOPs per output element,
  nearest 1; softmax, pixel shuffle and im2col count 0). CARAFE's FLOPs
  are counted on its unfold twin (the mmcv op is opaque to tracing).
* **The fused kernels**: DySample's presets run whichever sampling path the
  device takes (the C++ kernel on CPU, the Triton kernel on CUDA; each
  result says which), and :data:`~.candidates.REFERENCE` is the paper's
  formulation, so ``ratio_to_reference`` is the kernels' gain. The opt-in
  ``'<preset> (grid_sample)'`` rows
  (:func:`~.candidates.grid_sample_names`) time each preset on its
  ``grid_sample`` path beside its fused one.

This module runs the rooms in order and keeps their public names in one
place (``from mmdysample.benchmark import upsamplers as bench``).
"""
import os
from contextlib import contextmanager
from typing import Callable, Dict, Optional, Sequence

import torch

from .candidates import (BASELINE, CARAFE_UNFOLD, CARAFE_UNFOLD_LABEL,
                         GRID_SAMPLE, REFERENCE, STOCK, UPSAMPLERS, Candidate,
                         build_candidate, build_candidates, candidate_names,
                         check_candidates, default_unfold_limit,
                         dysample_sampler, grid_sample_names,
                         guided_upsamplers)
from .layers import (LAYER_PASSES, PAPER_SHAPE, SWEEP_BATCH_SIZES, SWEEP_SIZES,
                     benchmark_shape, sweep_shapes)
from .models import MODEL_PAIRS, MODEL_PASSES, benchmark_models
from .report import (format_model_table, format_upsampler_table, machine_info,
                     plot_latency_chart, write_json)
from .timing import (Task, check_int, check_rounds, count_flops,
                     interleaved_timings, peak_memory_bytes)

__all__ = [
    'BASELINE', 'CARAFE_UNFOLD', 'CARAFE_UNFOLD_LABEL', 'GRID_SAMPLE',
    'LAYER_PASSES', 'MODEL_PAIRS', 'MODEL_PASSES', 'PAPER_SHAPE', 'REFERENCE',
    'STOCK', 'SWEEP_BATCH_SIZES', 'SWEEP_SIZES', 'UPSAMPLERS', 'Candidate',
    'Task', 'benchmark_models', 'benchmark_shape', 'build_candidate',
    'build_candidates', 'candidate_names', 'check_candidates',
    'check_rounds', 'count_flops', 'default_unfold_limit',
    'dysample_sampler', 'format_model_table', 'format_upsampler_table',
    'grid_sample_names', 'guided_upsamplers', 'interleaved_timings',
    'machine_info',
    'peak_memory_bytes', 'plot_latency_chart', 'run_benchmark',
    'sweep_shapes', 'write_json'
]


@contextmanager
def _num_threads(threads: Optional[int]):
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_benchmark(devices: Sequence[str] = ('cpu', ),
                  shape: Sequence[int] = PAPER_SHAPE,
                  scale_factor: int = 2,
                  sweep_sizes: Optional[Sequence[int]] = None,
                  batch_sizes: Optional[Sequence[int]] = None,
                  names: Optional[Sequence[str]] = None,
                  rounds: int = 20,
                  warmup: int = 3,
                  threads: Optional[int] = 2,
                  seed: int = 0,
                  unfold_limit: Optional[int] = None,
                  models: bool = False,
                  model_batch: int = 1,
                  model_hw: Sequence[int] = (512, 512),
                  model_rounds: int = 5,
                  model_warmup: int = 1,
                  log: Callable[[str], None] = print) -> Dict:
    """Measure everything and print the tables as they complete.

    Args:
        devices: ``'cpu'`` and / or ``'cuda'``.
        shape: ``(C, H, W)`` of the main measurement (batch 1).
            Defaults to the paper's ``(256, 120, 120)``.
        scale_factor: Upsampling ratio. Defaults to 2.
        sweep_sizes, batch_sizes: The sweep, see :func:`sweep_shapes`.
        names: Candidates (see :func:`candidate_names`, and the opt-in
            :func:`grid_sample_names`); bilinear is always added. Defaults
            to :func:`candidate_names`.
        rounds, warmup: Interleaved rounds recorded, and dropped before.
        threads: ``torch.set_num_threads`` during the run (restored after);
            None keeps the current setting. Defaults to 2.
        seed: Seeds weights, inputs and the order of the rounds.
        unfold_limit: Bytes the CPU CARAFE implementation may need before
            it is skipped at a shape; None for :func:`default_unfold_limit`.
        models: Also run :func:`benchmark_models`.
        model_batch, model_hw, model_rounds, model_warmup: Its input and
            rounds.
        log: Where the tables and notes go.

    Returns:
        dict: ``machine``, ``settings``, ``upsamplers`` (one
        :func:`benchmark_shape` result per device and shape) and ``models``
        (one :func:`benchmark_models` result per device).
    """
    names = check_candidates(names)
    check_rounds(rounds, warmup)
    check_rounds(model_rounds, model_warmup, 'model_')
    check_int('scale_factor', scale_factor, 1)
    check_int('model_batch', model_batch, 1)
    if len(shape) != 3:
        raise ValueError(f'shape must be (C, H, W), got {shape!r}')
    for arg, values in (('shape', shape), ('sweep_sizes', sweep_sizes),
                        ('batch_sizes', batch_sizes), ('model_hw', model_hw)):
        if values is not None and (not values or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1
                for v in values)):
            raise ValueError(f'{arg} must be positive ints, got {values!r}')
    devs = []
    for name in devices:
        dev = torch.device(name)
        if dev.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError(f'device {name!r} asked for, but CUDA is not '
                             'available')
        if dev.type not in ('cpu', 'cuda'):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {name!r}")
        devs.append(dev)

    shapes = sweep_shapes(shape, sweep_sizes, batch_sizes)
    out = dict(upsamplers=[], models=[])
    with _num_threads(threads):
        threads = torch.get_num_threads()
        out['machine'] = machine_info(devs)
        out['settings'] = dict(
            devices=[str(d) for d in devs],
            shape=list(shape),
            scale_factor=scale_factor,
            shapes=[list(s) for s in shapes],
            candidates=names,
            rounds=rounds,
            warmup=warmup,
            threads=threads,
            seed=seed,
            timing=('per (candidate, pass) one call per round, rounds '
                    'interleaved in a shuffled order; median reported'),
            memory=('CUDA: max_memory_allocated - memory_allocated before '
                    'the call; CPU: peak running sum of the CPU allocator '
                    'events logged by torch.profiler (profile_memory=True) '
                    'during the call'))
        machine = out['machine']
        load = machine['load_average']
        log(f"machine: {machine['cpu']}, {machine['cpus_usable']} usable "
            f'CPUs, {threads} threads, torch {torch.__version__}' +
            (f', load average {load[0]:.2f} (1 min)' if load else ''))
        for dev in devs:
            torch.manual_seed(seed)
            candidates = build_candidates(names, shape[0], scale_factor,
                                          dev)
            for n, c, h, w in shapes:
                log(f'measuring {n} x {c} x {h} x {w} on {dev} ...')
                result = benchmark_shape(candidates, (n, c, h, w),
                                         scale_factor, dev, rounds, warmup,
                                         seed, unfold_limit)
                out['upsamplers'].append(result)
                log(format_upsampler_table(result, threads) + '\n')
            if models:
                log(f'measuring whole models on {dev} ...')
                result = benchmark_models(dev, model_batch, model_hw,
                                          model_rounds, model_warmup, seed,
                                          log=log)
                out['models'].append(result)
                log(format_model_table(result, threads) + '\n')
        if hasattr(os, 'getloadavg'):
            out['machine']['load_average_after'] = list(os.getloadavg())
    return out
