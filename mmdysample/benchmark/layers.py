# Copyright (c) mmdysample contributors. All rights reserved.
"""Upsamplers side by side on one input: latency, memory, Params, FLOPs.

Forward is timed under ``no_grad`` in eval mode; forward + backward in
train mode with a dense random output gradient (parameter and input
gradients are cleared outside the timed region). A guided upsampler gets a
random guide of :func:`~mmdysample.models.guide.guide_shape` in both
passes, FLOPs are counted with it, and in forward + backward the guide
needs a gradient like ``x`` (in an FPN it is a lateral, which trains). See
:mod:`.timing` for how, and :mod:`.candidates` for what.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..models.guide import guide_shape
from .candidates import (BASELINE, REFERENCE, Candidate, default_unfold_limit,
                         unfold_bytes)
from .timing import (Task, count_flops, interleaved_timings, peak_memory_bytes,
                     ratios, stats)

#: The feature map of the paper's latency test, ``(C, H, W)``, upsampled x2.
PAPER_SHAPE = (256, 120, 120)
#: Default sweep: square maps of these sizes ...
SWEEP_SIZES = (32, 64, 120, 200)
#: ... at these batch sizes.
SWEEP_BATCH_SIZES = (1, 2, 4)
#: What is timed per upsampler, with the table's names.
LAYER_PASSES = {'fwd': 'fwd', 'fwd_bwd': 'fwd+bwd'}


def _layer_tasks(layer: nn.Module, inputs: Tuple[torch.Tensor, ...],
                 grad_inputs: Tuple[torch.Tensor, ...],
                 grad_out: torch.Tensor) -> Dict[str, Task]:
    """``inputs``: ``(x, )`` or ``(x, guide)``; ``grad_inputs``: their
    copies that require a gradient."""

    def forward():
        with torch.no_grad():
            layer(*inputs)

    def clear():
        layer.train()
        layer.zero_grad(set_to_none=True)
        for t in grad_inputs:
            t.grad = None

    def forward_backward():
        layer(*grad_inputs).backward(grad_out)

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
        median and quartiles in ms and ``peak_mem_bytes``,
        ``ratio_to_bilinear``, ``sampler`` (DySample: which implementation
        sampled), ``guide_shape`` (the guide it read, or None), and for
        ``'DySample'`` ``ratio_to_reference`` where
        :data:`~.candidates.REFERENCE` was measured too) and ``skipped``
        (name, reason).
    """
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen).to(device)
    x_grad = x.clone().requires_grad_()
    grad_out = torch.randn(
        n, c, h * scale_factor, w * scale_factor, generator=gen).to(device)
    if unfold_limit is None:
        unfold_limit = default_unfold_limit(device)
    guides = {}  # guide shape -> (guide, its copy that requires a gradient)

    def inputs_of(cand: Candidate) -> Tuple[Tuple[torch.Tensor, ...], ...]:
        if not cand.guided:
            return (x, ), (x_grad, )
        size = guide_shape(cand.layer, shape)
        if size not in guides:
            guide = torch.randn(size, generator=gen).to(device)
            guides[size] = guide, guide.clone().requires_grad_()
        guide, guide_grad = guides[size]
        return (x, guide), (x_grad, guide_grad)

    measured, skipped, tasks = [], [], {}
    for cand in candidates:
        if cand.skip:
            skipped.append(
                dict(name=cand.name, label=cand.label, reason=cand.skip))
            continue
        if cand.unfold_kernel:
            need = unfold_bytes(shape, cand, scale_factor)
            if need > unfold_limit:
                skipped.append(
                    dict(
                        name=cand.name,
                        label=cand.label,
                        reason=f'needs ~{need / 2**30:.1f} GiB, over the '
                        f'limit of {unfold_limit / 2**30:.1f} GiB'))
                continue
        inputs, grad_inputs = inputs_of(cand)
        with torch.no_grad():
            out = cand.layer.eval()(*inputs)
        if tuple(out.shape) != tuple(grad_out.shape):
            raise ValueError(f'{cand.label} maps {tuple(shape)} to '
                             f'{tuple(out.shape)}, expected '
                             f'{tuple(grad_out.shape)}')
        del out
        measured.append(cand)
        for pass_, task in _layer_tasks(cand.layer, inputs, grad_inputs,
                                        grad_out).items():
            tasks[(cand.label, pass_)] = task

    timings = interleaved_timings(tasks, rounds, warmup, device, seed)
    results = []
    for cand in measured:
        inputs, _ = inputs_of(cand)
        result = dict(
            name=cand.name,
            label=cand.label,
            params=sum(p.numel() for p in cand.layer.parameters()),
            flops=count_flops(cand.flops_layer, *inputs),
            notes=cand.notes,
            sampler=cand.sampler,
            guide_shape=list(inputs[1].shape) if cand.guided else None)
        for pass_ in LAYER_PASSES:
            key = (cand.label, pass_)
            result[pass_] = stats(timings[key])
            result[pass_]['peak_mem_bytes'] = peak_memory_bytes(
                tasks[key], device)
        cand.layer.zero_grad(set_to_none=True)
        results.append(result)

    base = next((r for r in results if r['name'] == BASELINE), None)
    reference = next((r for r in results if r['name'] == REFERENCE), None)
    for r in results:
        r['ratio_to_bilinear'] = ratios(r, base, LAYER_PASSES)
        # The fused path against the paper's formulation of the same layer.
        if r['name'] == 'DySample' and reference is not None:
            r['ratio_to_reference'] = ratios(r, reference, LAYER_PASSES)
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
