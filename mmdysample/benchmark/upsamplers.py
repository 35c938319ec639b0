# Copyright (c) mmdysample contributors. All rights reserved.
"""Latency, peak memory, Params and FLOPs of upsamplers, side by side.

The paper (Sec. 3.4, Fig. 1 and Fig. 8) times x2 upsampling of a
``256 x 120 x 120`` map on an RTX 3090: 6.2 ms for DySample, 1.6 ms for
bilinear. :func:`run_benchmark` measures the same quantities for every
registered upsampler on the machine at hand, and the whole-model cost of
DySample in Faster R-CNN and SegFormer.

How it measures:

* **Latency**, forward (``no_grad``, eval mode) and forward + backward
  (train mode, a dense random output gradient; parameter and input
  gradients are cleared outside the timed region). The candidates are
  *interleaved*: each round runs every (candidate, pass) once, in an order
  shuffled afresh per round (seeded), so a burst of load on a shared machine
  hits all candidates alike rather than whichever ran then. Warm-up rounds
  run the same way and are dropped. Each sample is one call timed with
  ``time.perf_counter`` (bracketed by ``torch.cuda.synchronize`` on CUDA);
  the garbage collector is paused during the rounds. The median is
  reported, and every sample is kept in the JSON.
* **Peak memory**: the most memory held at once by tensors allocated during
  one call, over what was held before it (inputs, weights and the output
  gradient are not counted; the output is). On CUDA this is
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
  minus ``memory_allocated`` before the call. On CPU, the call runs once
  under ``torch.profiler.profile(profile_memory=True)``; the profiler logs
  every allocation and free made through PyTorch's CPU allocator (from any
  thread), and the peak is the maximum of their running sum. This is
  allocator-level, like the CUDA figure, and is not the process RSS:
  allocator caching, fragmentation and memory that libraries (oneDNN
  scratch pads) take from ``malloc`` directly are not seen.
* **Params** and **FLOPs**: parameter count, and mmengine's ``FlopAnalyzer``
  on the layer at the measured input (one multiply-add is one FLOP;
  ``grid_sampler`` and bilinear resize are 4 FLOPs per output element,
  nearest 1; softmax, pixel shuffle and im2col count 0).

CARAFE: mmcv's op has CUDA kernels only. On CUDA the registered
``CARAFEPack`` is timed (if this mmcv was built with CUDA); on CPU its
weights are loaded into :class:`~.carafe.CARAFEUnfold` and that is timed,
labelled ``carafe (unfold, CPU)``. Its FLOPs are always counted on the
unfold twin (the mmcv op is opaque to tracing); both compute the same
``k*k*C*s*s*H*W`` multiply-adds.
"""
import datetime
import gc
import inspect
import json
import os
import os.path as osp
import platform
import random
import statistics
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile

from ..models import DYSAMPLE_PRESETS, build_upsampler
from ..models.upsamplers import sampling
from .carafe import CARAFEUnfold

__all__ = [
    'BASELINE', 'LAYER_PASSES', 'MODEL_PAIRS', 'MODEL_PASSES', 'PAPER_SHAPE',
    'REFERENCE', 'SWEEP_BATCH_SIZES', 'SWEEP_SIZES', 'UPSAMPLERS', 'Candidate',
    'Task', 'benchmark_models', 'benchmark_shape', 'build_candidate',
    'candidate_names', 'check_candidates', 'check_rounds', 'count_flops',
    'default_unfold_limit', 'format_model_table', 'format_upsampler_table',
    'interleaved_timings', 'machine_info', 'peak_memory_bytes',
    'plot_latency_chart', 'run_benchmark', 'sweep_shapes', 'write_json'
]

#: The feature map of the paper's latency test, ``(C, H, W)``, upsampled x2.
PAPER_SHAPE = (256, 120, 120)
#: Default sweep: square maps of these sizes ...
SWEEP_SIZES = (32, 64, 120, 200)
#: ... at these batch sizes.
SWEEP_BATCH_SIZES = (1, 2, 4)
#: Every ratio in the tables and the JSON is relative to this candidate.
BASELINE = 'bilinear'
#: The registered upsamplers that are measured, in table order.
UPSAMPLERS = ('nearest', 'bilinear', 'deconv', 'pixel_shuffle',
              'carafe') + tuple(DYSAMPLE_PRESETS)
#: Extra candidate: the DySample layer sampling through
#: ``sampling.dysample_sample_reference``, when that module provides it.
REFERENCE = 'DySample (reference)'
#: What is timed, per upsampler and per model, with the table's names.
LAYER_PASSES = {'fwd': 'fwd', 'fwd_bwd': 'fwd+bwd'}
MODEL_PASSES = {'inference': 'infer', 'train_step': 'train'}


def _reference_sampler() -> Optional[Callable]:
    fn = getattr(sampling, 'dysample_sample_reference', None)
    if fn is None:
        return None
    try:  # same signature as dysample_sample
        inspect.signature(fn).bind(None, None, 2, 4)
    except (TypeError, ValueError):
        return None
    return fn


def candidate_names() -> List[str]:
    """Names accepted by ``names=`` / ``--candidates``, in table order."""
    names = list(UPSAMPLERS)
    if _reference_sampler() is not None:
        names.append(REFERENCE)
    return names


def check_candidates(names: Optional[Sequence[str]]) -> List[str]:
    """Validate ``names`` (``None``: all), keep table order, add bilinear.

    Raises:
        ValueError: On a name that is not a candidate, naming it and the
            valid names.
    """
    valid = candidate_names()
    if names is None:
        return valid
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f'unknown upsampler(s) {unknown}; choose from '
                         f'{valid}')
    if not names:
        raise ValueError('names must name at least one upsampler')
    chosen = set(names) | {BASELINE}
    return [n for n in valid if n in chosen]


class _ReferenceDySample(nn.Module):
    """A DySample layer that samples with ``dysample_sample_reference``."""

    def __init__(self, layer: nn.Module, sample: Callable) -> None:
        super().__init__()
        self.layer = layer
        self.sample = sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        return self.sample(x, layer.sampling_offsets(x), layer.scale_factor,
                           layer.groups)


@dataclass
class Candidate:
    """One upsampler, ready to run on ``device``.

    ``label`` says which implementation runs (``carafe (unfold, CPU)``);
    ``flops_layer`` is what FlopAnalyzer traces (the layer itself, or for
    mmcv's CARAFE op its unfold twin).
    """
    name: str
    label: str
    layer: nn.Module
    flops_layer: nn.Module
    unfold_kernel: int = 0  # > 0: the CARAFE unfold implementation
    notes: List[str] = field(default_factory=list)


def _mmcv_carafe_runs(pack: nn.Module, channels: int,
                      device: torch.device) -> Optional[str]:
    """``None`` if mmcv's op runs forward + backward here, else why not."""
    x = torch.rand(1, channels, 4, 4, device=device, requires_grad=True)
    try:
        pack(x).sum().backward()
    except (RuntimeError, NotImplementedError) as err:
        return str(err).splitlines()[0]
    finally:
        pack.zero_grad(set_to_none=True)
    return None


def build_candidate(name: str, channels: int, scale_factor: int,
                    device: torch.device) -> Candidate:
    """Build candidate ``name`` for ``channels`` on ``device``."""
    if name == REFERENCE:
        sample = _reference_sampler()
        if sample is None:
            raise ValueError(f'{REFERENCE!r} needs sampling.'
                             'dysample_sample_reference, which this version '
                             'does not provide')
        layer = _ReferenceDySample(
            build_upsampler('DySample', channels, scale_factor),
            sample).to(device)
        return Candidate(name, name, layer, layer)
    if name != 'carafe':
        layer = build_upsampler(name, channels, scale_factor).to(device)
        return Candidate(name, name, layer, layer)

    unfold = CARAFEUnfold(channels, scale_factor)
    notes = []
    try:
        pack = build_upsampler('carafe', channels, scale_factor)
    except KeyError:  # an mmcv build without ops
        pack = None
        notes.append('mmcv.ops is not available: CARAFEUnfold with its own '
                     'initialisation')
    if pack is not None:
        unfold.load_state_dict(pack.state_dict())
    unfold = unfold.to(device)
    if device.type == 'cuda' and pack is not None:
        pack = pack.to(device)
        why = _mmcv_carafe_runs(pack, channels, device)
        if why is None:
            return Candidate(name, 'carafe (mmcv, CUDA)', pack, unfold)
        notes.append(f"mmcv's CARAFE op failed on {device} ({why}); timing "
                     'the unfold implementation instead')
    label = f'carafe (unfold, {device.type.upper()})'
    return Candidate(name, label, unfold, unfold, unfold.up_kernel, notes)


def _unfold_bytes(shape: Sequence[int], candidate: Candidate,
                  scale_factor: int) -> int:
    """Rough float32 forward + backward working set of the unfold CARAFE.

    im2col holds ``k*k`` copies of the input, and backward its gradient.
    """
    n, c, h, w = shape
    k = candidate.unfold_kernel
    return 4 * n * c * h * w * (2 * k * k + 4 * scale_factor**2)


def default_unfold_limit(device: torch.device) -> int:
    """Memory the unfold CARAFE may take: a quarter of what is available."""
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 4 * 1024**3


# --------------------------------------------------------------------------
# Timing and memory of a callable.


@dataclass
class Task:
    """A timed ``run``, after an untimed ``prepare`` (mode, gradients)."""
    prepare: Callable[[], None]
    run: Callable[[], None]


def _synchronize(device: torch.device) -> Callable[[], None]:
    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value,
                                                 int) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')


def check_rounds(rounds: int, warmup: int, prefix: str = '') -> None:
    """Raise ValueError unless ``rounds >= 1`` and ``warmup >= 0``."""
    _check_int(prefix + 'rounds', rounds, 1)
    _check_int(prefix + 'warmup', warmup, 0)


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
    sync = _synchronize(device)
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


def _stats(samples: List[float]) -> Dict:
    quartiles = (statistics.quantiles(samples, n=4)
                 if len(samples) > 1 else samples * 3)
    return dict(
        samples_ms=samples,
        median_ms=statistics.median(samples),
        q1_ms=quartiles[0],
        q3_ms=quartiles[2],
        min_ms=min(samples))


def _ratios(result: Dict, base: Optional[Dict],
            passes: Sequence[str]) -> Dict[str, Optional[float]]:
    """``result / base`` of the median time (``pass``) and peak memory
    (``pass_mem``) of each pass; None without a base or where it is 0."""
    ratios = {}
    for pass_ in passes:
        for suffix, key in (('', 'median_ms'), ('_mem', 'peak_mem_bytes')):
            denominator = base[pass_][key] if base else None
            ratios[pass_ + suffix] = (result[pass_][key] / denominator
                                      if denominator else None)
    return ratios


def count_flops(layer: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``layer(x)`` by mmengine's FlopAnalyzer (see module)."""
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings
        analyzer = FlopAnalyzer(layer.eval(), (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())


# --------------------------------------------------------------------------
# Upsamplers.


def _layer_tasks(layer: nn.Module, x: torch.Tensor, x_grad: torch.Tensor,
                 grad_out: torch.Tensor) -> Dict[str, Task]:

    def forward():
        with torch.no_grad():
            layer(x)

    def clear():
        layer.train()
        layer.zero_grad(set_to_none=True)
        x_grad.grad = None

    def forward_backward():
        layer(x_grad).backward(grad_out)

    return dict(
        fwd=Task(lambda: layer.eval(), forward),
        fwd_bwd=Task(clear, forward_backward))


def benchmark_shape(candidates: List[Candidate],
                    shape: Sequence[int],
                    scale_factor: int,
                    device: torch.device,
                    rounds: int,
                    warmup: int,
                    seed: int = 0,
                    unfold_limit: Optional[int] = None) -> Dict:
    """Measure ``candidates`` on one ``(N, C, H, W)`` input, interleaved.

    Returns:
        dict: ``shape``, ``device``, ``results`` (one dict per candidate:
        ``params``, ``flops``, per pass ``fwd`` / ``fwd_bwd`` the samples,
        median and quartiles in ms and ``peak_mem_bytes``, and
        ``ratio_to_bilinear``) and ``skipped`` (name, reason).
    """
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen).to(device)
    x_grad = x.clone().requires_grad_()
    grad_out = torch.randn(
        n, c, h * scale_factor, w * scale_factor, generator=gen).to(device)
    if unfold_limit is None:
        unfold_limit = default_unfold_limit(device)

    measured, skipped, tasks = [], [], {}
    for cand in candidates:
        if cand.unfold_kernel:
            need = _unfold_bytes(shape, cand, scale_factor)
            if need > unfold_limit:
                skipped.append(
                    dict(
                        name=cand.name,
                        label=cand.label,
                        reason=f'needs ~{need / 2**30:.1f} GiB, over the '
                        f'limit of {unfold_limit / 2**30:.1f} GiB'))
                continue
        with torch.no_grad():
            out = cand.layer.eval()(x)
        if tuple(out.shape) != tuple(grad_out.shape):
            raise ValueError(f'{cand.label} maps {tuple(shape)} to '
                             f'{tuple(out.shape)}, expected '
                             f'{tuple(grad_out.shape)}')
        del out
        measured.append(cand)
        for pass_, task in _layer_tasks(cand.layer, x, x_grad,
                                        grad_out).items():
            tasks[(cand.label, pass_)] = task

    timings = interleaved_timings(tasks, rounds, warmup, device, seed)
    results = []
    for cand in measured:
        result = dict(
            name=cand.name,
            label=cand.label,
            params=sum(p.numel() for p in cand.layer.parameters()),
            flops=count_flops(cand.flops_layer, x),
            notes=cand.notes)
        for pass_ in LAYER_PASSES:
            key = (cand.label, pass_)
            result[pass_] = _stats(timings[key])
            result[pass_]['peak_mem_bytes'] = peak_memory_bytes(
                tasks[key], device)
        cand.layer.zero_grad(set_to_none=True)
        results.append(result)

    base = next((r for r in results if r['name'] == BASELINE), None)
    for r in results:
        r['ratio_to_bilinear'] = _ratios(r, base, LAYER_PASSES)
    return dict(
        shape=list(shape),
        scale_factor=scale_factor,
        device=str(device),
        rounds=rounds,
        warmup=warmup,
        results=results,
        skipped=skipped)


def sweep_shapes(shape: Sequence[int],
                 sizes: Optional[Sequence[int]] = None,
                 batch_sizes: Optional[Sequence[int]] = None
                 ) -> List[Tuple[int, int, int, int]]:
    """``(1, C, H, W)`` first, then every ``(N, C, S, S)`` of the sweep.

    With ``sizes`` None and ``batch_sizes`` given, the batch sizes are swept
    at ``(H, W)``; with both None there is no sweep.
    """
    c, h, w = shape
    shapes = [(1, c, h, w)]
    if sizes is None and batch_sizes is None:
        return shapes
    hw = [(s, s) for s in sizes] if sizes is not None else [(h, w)]
    for size in hw:
        for n in batch_sizes or SWEEP_BATCH_SIZES:
            if (n, c) + size not in shapes:
                shapes.append((n, c) + size)
    return shapes


# --------------------------------------------------------------------------
# Whole models.

_CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')

#: (model, DySample config, baseline label, baseline config or None for
#: ``baseline_config`` of the DySample config), paths under configs/.
MODEL_PAIRS = (
    ('Faster R-CNN R50-FPN',
     'faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4_1x_coco.py', 'nearest',
     None),
    ('SegFormer-B1',
     'segformer/segformer_mit-b1-dysample-lpg4_8xb2-160k_ade20k-512x512.py',
     'bilinear',
     'segformer/segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512.py'),
)


def _model_inputs(scope: str, batch: int, h: int, w: int,
                  device: torch.device, seed: int):
    """Random images and a factory of data samples with random labels."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, h, w, generator=gen).to(device)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        meta.update(batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
        corners = torch.rand(batch, 3, 2, generator=gen) * torch.tensor(
            [w / 2, h / 2])
        sizes = torch.rand(batch, 3, 2, generator=gen) * torch.tensor(
            [w / 2, h / 2]) + 4
        labels = torch.randint(0, 80, (batch, 3), generator=gen)

        def samples():
            out = []
            for i in range(batch):
                sample = DetDataSample(metainfo=meta)
                sample.gt_instances = InstanceData(
                    bboxes=torch.cat([corners[i], corners[i] + sizes[i]],
                                     1).to(device),
                    labels=labels[i].to(device))
                out.append(sample)
            return out
    else:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        seg = torch.randint(0, 150, (batch, 1, h, w), generator=gen)

        def samples():
            out = []
            for i in range(batch):
                sample = SegDataSample(metainfo=meta)
                sample.gt_sem_seg = PixelData(data=seg[i].to(device))
                out.append(sample)
            return out

    return inputs, samples


def _model_tasks(model: nn.Module, inputs: torch.Tensor,
                 samples: Callable) -> Dict[str, Task]:
    # lr=0: the step does all its arithmetic but leaves the weights alone,
    # so every round does the same work. Fresh data samples per call (predict
    # writes into them), made and dropped outside the timed region.
    optim = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    state = {}

    def prepare_inference():
        model.eval()
        state['samples'] = samples()

    def inference():
        with torch.no_grad():
            model(inputs, state['samples'], mode='predict')

    def prepare_train():
        model.train()
        optim.zero_grad(set_to_none=True)
        state['samples'] = samples()

    def train_step():
        losses = model(inputs, state['samples'], mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optim.step()

    return dict(
        inference=Task(prepare_inference, inference),
        train_step=Task(prepare_train, train_step))


def benchmark_models(device: torch.device,
                     batch: int = 1,
                     hw: Sequence[int] = (512, 512),
                     rounds: int = 5,
                     warmup: int = 1,
                     seed: int = 0,
                     config_dir: str = _CONFIGS,
                     log: Callable[[str], None] = print) -> Dict:
    """Inference and one training step of DySample models vs their baseline.

    Every (model, pass) is interleaved like the upsamplers. A training step
    is ``loss`` forward, backward and an SGD step (lr 0). Pairs whose config
    is missing or that fail to build or run here are listed in ``skipped``.
    """
    from mmengine.config import Config

    from ..utils.complexity import baseline_config, build_model
    h, w = hw
    variants, skipped = [], []
    for model_name, ours, base_label, base in MODEL_PAIRS:
        ours = osp.join(config_dir, ours)
        base = None if base is None else osp.join(config_dir, base)
        missing = [p for p in (ours, base) if p and not osp.isfile(p)]
        if missing:
            skipped.append(
                dict(model=model_name, reason=f'config(s) missing: {missing}'))
            continue
        name = osp.relpath(ours, osp.dirname(config_dir))
        pair = []
        try:
            cfg = Config.fromfile(ours)
            if base is None:
                base_cfg = baseline_config(cfg)
                base_name = f'{name} without upsample_cfg'
            else:
                base_cfg = Config.fromfile(base)
                base_name = osp.relpath(base, osp.dirname(config_dir))
            scope = cfg.get('default_scope', 'mmdet')
            for label, config, config_name in (('DySample', cfg, name),
                                               (base_label, base_cfg,
                                                base_name)):
                torch.manual_seed(seed)
                model = build_model(config).to(device)
                inputs, samples = _model_inputs(scope, batch, h, w, device,
                                                seed)
                tasks = _model_tasks(model, inputs, samples)
                for task in tasks.values():  # fail here, not mid-rounds
                    task.prepare()
                    task.run()
                pair.append(
                    dict(
                        model=model_name,
                        variant=label,
                        config=config_name,
                        params=sum(p.numel() for p in model.parameters()),
                        tasks=tasks))
        except Exception as err:  # a host or op missing here: say so
            first_line = str(err).splitlines()[0] if str(err) else ''
            skipped.append(
                dict(
                    model=model_name,
                    reason=f'{type(err).__name__}: {first_line}'))
            continue
        variants.extend(pair)
    for note in skipped:
        log(f"note: skipped {note['model']}: {note['reason']}")

    tasks = {(v['model'], v['variant'], p): t
             for v in variants for p, t in v['tasks'].items()}
    timings = interleaved_timings(tasks, rounds, warmup, device,
                                  seed) if tasks else {}
    results, baselines = [], {}
    for v in variants:  # (DySample, baseline) pairs, in that order
        result = {k: v[k] for k in ('model', 'variant', 'config', 'params')}
        for pass_, task in v.pop('tasks').items():
            result[pass_] = _stats(timings[(v['model'], v['variant'], pass_)])
            result[pass_]['peak_mem_bytes'] = peak_memory_bytes(task, device)
        results.append(result)
        baselines[v['model']] = result
    for r in results:
        base = baselines[r['model']]
        r['ratio_to_baseline'] = _ratios(r, base, MODEL_PASSES)
    return dict(
        device=str(device),
        input=[batch, 3, h, w],
        rounds=rounds,
        warmup=warmup,
        results=results,
        skipped=skipped)


# --------------------------------------------------------------------------
# Reporting.


def machine_info(devices: Sequence[torch.device]) -> Dict:
    """CPU model, cores, load, library versions, threads and GPUs."""
    import mmcv
    import mmengine
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(
            os, 'sched_getaffinity') else os.cpu_count(),
        load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg')
        else None,
        threads=torch.get_num_threads(),
        python=platform.python_version(),
        platform=platform.platform(),
        torch=torch.__version__,
        mmcv=mmcv.__version__,
        mmengine=mmengine.__version__,
        dysample_reference=_reference_sampler() is not None,
        date=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'))
    if any(d.type == 'cuda' for d in devices):
        info.update(
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu=torch.cuda.get_device_name())
    return info


def _si(value: float, unit: str = '') -> str:
    for prefix, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{prefix}{unit}'
    return f'{value:.0f}{unit}'


def _fmt_ratio(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _fmt_ms(value: float) -> str:
    return f'{value:.3g}' if value < 100 else f'{value:.0f}'


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in
              range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(width) for c, width in zip(row[1:], widths[1:])]
        lines.append('  '.join(cells))
    lines.insert(1, '-' * len(lines[0]))
    return '\n'.join(lines)


def _title(what: str, result: Dict, threads: int, ratio_note: str) -> str:
    return (f"{what} on {result['device']} ({threads} threads): median of "
            f"{result['rounds']} interleaved rounds after {result['warmup']}"
            f' warm-up; {ratio_note}')


def _cost_columns(passes: Dict[str, str], ratio: str) -> List[str]:
    """Header of :func:`_cost_cells`: ``passes`` maps keys to column names.
    """
    return [col for name in passes.values()
            for col in (f'{name} ms', ratio)] + [
                col for name in passes.values()
                for col in (f'{name} MiB', ratio)]


def _cost_cells(result: Dict, passes: Dict[str, str],
                ratios: Dict[str, Optional[float]]) -> List[str]:
    """Median ms and ratio, then peak MiB and ratio, per pass."""
    cells = []
    for pass_ in passes:
        cells += [
            _fmt_ms(result[pass_]['median_ms']),
            _fmt_ratio(ratios[pass_])
        ]
    for pass_ in passes:
        cells += [
            f"{result[pass_]['peak_mem_bytes'] / 2**20:.2f}",
            _fmt_ratio(ratios[pass_ + '_mem'])
        ]
    return cells


def format_upsampler_table(result: Dict, threads: int) -> str:
    """The table of :func:`benchmark_shape`'s result, ratios to bilinear."""
    shape = ' x '.join(map(str, result['shape']))
    lines = [
        _title(f"x{result['scale_factor']} upsampling of {shape}", result,
               threads, '"/bil" = ratio to bilinear')
    ]
    header = ['upsampler', 'Params', 'FLOPs'] + _cost_columns(
        LAYER_PASSES, '/bil')
    rows = [[r['label'], _si(r['params']),
             _si(r['flops'])] +
            _cost_cells(r, LAYER_PASSES, r['ratio_to_bilinear'])
            for r in result['results']]
    lines.append(_table(header, rows))
    lines += [f"skipped {s['label']}: {s['reason']}"
              for s in result['skipped']]
    lines += [f"note on {r['label']}: {note}" for r in result['results']
              for note in r['notes']]
    return '\n'.join(lines)


def format_model_table(result: Dict, threads: int) -> str:
    """The table of :func:`benchmark_models`' result, ratios to baseline."""
    shape = ' x '.join(map(str, result['input']))
    lines = [
        _title(f'whole models, input {shape},', result, threads,
               '"/base" = ratio to the stock upsampling')
    ]
    header = ['model', 'upsampling', 'Params'] + _cost_columns(
        MODEL_PASSES, '/base')
    rows = [[r['model'], r['variant'],
             _si(r['params'])] +
            _cost_cells(r, MODEL_PASSES, r['ratio_to_baseline'])
            for r in result['results']]
    lines.append(_table(header, rows) if rows else '(no model measured)')
    lines += [f"skipped {s['model']}: {s['reason']}"
              for s in result['skipped']]
    return '\n'.join(lines)


_COLOURS = {
    'nearest': 'tab:gray',
    'bilinear': 'tab:gray',
    'deconv': 'tab:blue',
    'pixel_shuffle': 'tab:blue',
    'carafe': 'tab:green',
}


def plot_latency_chart(results: List[Dict], path: str) -> None:
    """Fig. 1-style chart of the first (paper-shape) result per device.

    x: forward latency (ms, log); y: FLOPs (left) and Params (right), log
    (symlog where a value is 0, so that the parameter-free resizes show).
    One labelled marker per upsampler; DySample variants in red.
    """
    from matplotlib.figure import Figure  # Agg through savefig, no pyplot
    from matplotlib.ticker import NullFormatter
    firsts = {}
    for result in results:
        firsts.setdefault(result['device'], result)
    if not firsts:
        raise ValueError('nothing to plot: results is empty')
    fig = Figure(figsize=(12, 4.6 * len(firsts)), layout='constrained')
    axes = fig.subplots(len(firsts), 2, squeeze=False)
    for row, result in zip(axes, firsts.values()):
        for ax, key, name in zip(row, ('flops', 'params'),
                                 ('FLOPs', 'Params')):
            # Neighbours in y get their labels above / below in turn.
            ranked = sorted(result['results'], key=lambda r: r[key])
            for i, r in enumerate(ranked):
                x, y = r['fwd']['median_ms'], r[key]
                ax.scatter(
                    x, y, s=60, color=_COLOURS.get(r['name'], 'tab:red'),
                    zorder=3)
                ax.annotate(
                    r['label'], (x, y),
                    xytext=(6, 5 if i % 2 else -11),
                    textcoords='offset points',
                    fontsize=8)
            low, top = ranked[0][key], max(ranked[-1][key], 1)
            ax.set_xscale('log')
            # Minor-tick labels of a short log axis overlap; keep the majors.
            ax.xaxis.set_minor_formatter(NullFormatter())
            if low > 0:
                ax.set_yscale('log')
                ax.set_ylim(low / 10, top * 10)
            else:  # symlog shows the parameter-free resizes at 0
                ax.set_yscale('symlog', linthresh=1)
                ax.set_ylim(0, top * 10)
            xs = [r['fwd']['median_ms'] for r in ranked]
            ax.set_xlim(min(xs) / 1.5, max(xs) * 3)
            ax.set_xlabel('forward latency (ms, median)')
            ax.set_ylabel(f'{name} (log scale)')
            ax.grid(True, which='major', alpha=0.3)
            ax.set_title(
                f"{name} vs forward latency on {result['device']}",
                fontsize=10)
    first = next(iter(firsts.values()))
    fig.suptitle(
        f"x{first['scale_factor']} upsampling of "
        f"{' x '.join(map(str, first['shape']))}: median of "
        f"{first['rounds']} interleaved rounds",
        fontsize=11)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)


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
        names: Candidates (see :func:`candidate_names`); bilinear is always
            added. Defaults to all.
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
    _check_int('scale_factor', scale_factor, 1)
    _check_int('model_batch', model_batch, 1)
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
            candidates = [
                build_candidate(n, shape[0], scale_factor, dev) for n in names
            ]
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


def write_json(results: Dict, path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)
