# Copyright (c) mmdysample contributors. All rights reserved.
"""The upsamplers the benchmark measures, ready to run on a device.

In table order (:func:`candidate_names`): the stock upsamplers of
:data:`STOCK`; :data:`CARAFE_UNFOLD`; every registered guided upsampler
(:func:`guided_upsamplers`: IndexNet, A2U, FADE, SAPA-B and the later
FreqFusion, found in the registry through
:func:`~mmdysample.models.guide.needs_guide`, not by name); the later
peers that read no guide (:data:`PEERS`: LDA-AQU); the DySample presets;
and :data:`REFERENCE`, the DySample layer in
the paper's formulation (pixel shuffle, separate scope projection,
``grid_sample``), which the fused paths are compared with. Opt-in, not in
the default set: each preset on its ``grid_sample`` path
(:func:`grid_sample_names`), beside its own row that takes the device's
fused kernel, so the Triton (or C++) and ``grid_sample`` paths of every
preset are timed side by side.

A guided candidate reads a guide of
:func:`~mmdysample.models.guide.guide_shape` (``(N, C, 2H, 2W)`` at x2: the
paper's Fig. 8 gives its guided upsamplers a 256 x 240 x 240 guide beside
the 256 x 120 x 120 input) in every pass.

CARAFE: mmcv's op has CUDA kernels only. On CUDA the registered
``CARAFEPack`` is timed (if this mmcv was built with CUDA); on CPU its
weights are loaded into
:class:`~mmdysample.models.upsamplers.carafe.CARAFEUnfold` and that is
timed, labelled ``carafe (unfold, CPU)``. The :data:`CARAFE_UNFOLD`
candidate is the registered pure-PyTorch layer on every device: on CUDA
beside mmcv's kernel (it is the reassembly FADE, SAPA-B and A2U run), on a
CPU only when ``carafe`` is not measured, since there the two rows would
time the same layer (it is then skipped with a note saying so).

Without mmcv (``make gpu-check`` runs the family without it) ``nearest``
and ``bilinear`` are built from ``nn.Upsample``, the class mmcv registers
under those names; ``deconv`` and ``pixel_shuffle`` (mmcv's own layers) are
listed as skipped, saying why.
"""
import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Sequence

import torch
import torch.nn as nn

from ..models import DYSAMPLE_PRESETS, build_upsampler, list_upsamplers
from ..models.guide import needs_guide
from ..models.upsamplers import CARAFEUnfold, fast_cpu, fast_triton, sampling

#: Every ratio in the tables and the JSON is relative to this candidate.
BASELINE = 'bilinear'
#: mmcv's upsamplers, in table order (``carafe``: see the module docstring).
STOCK = ('nearest', 'bilinear', 'deconv', 'pixel_shuffle', 'carafe')
#: Later upsamplers (after the paper) that read no guide, in table order.
PEERS = ('LDA-AQU', )
#: The registered upsamplers that read no guide, in table order.
UPSAMPLERS = STOCK + PEERS + tuple(DYSAMPLE_PRESETS)
#: The registered pure-PyTorch CARAFE, labelled :data:`CARAFE_UNFOLD_LABEL`.
CARAFE_UNFOLD = 'CARAFEUnfold'
CARAFE_UNFOLD_LABEL = 'CARAFEUnfold (PyTorch)'
#: Extra candidate: the DySample layer in the paper's formulation, offsets by
#: ``sampling_offsets_reference`` and sampling through
#: ``sampling.dysample_sample_reference``, when that module provides it.
REFERENCE = 'DySample (reference)'
#: Suffix of the opt-in candidates of :func:`grid_sample_names`.
GRID_SAMPLE = ' (grid_sample)'
#: The stock upsamplers that are torch classes in mmcv's registry, built
#: from the class where mmcv (which registers them) is not installed.
TORCH_STOCK = {
    'nearest': dict(type=nn.Upsample, mode='nearest'),
    'bilinear': dict(type=nn.Upsample, mode='bilinear'),
}


def reference_sampler() -> Optional[Callable]:
    fn = getattr(sampling, 'dysample_sample_reference', None)
    if fn is None:
        return None
    try:  # same signature as dysample_sample
        inspect.signature(fn).bind(None, None, 2, 4)
    except (TypeError, ValueError):
        return None
    return fn


def guided_upsamplers() -> List[str]:
    """Registered upsamplers that read a guide, by name."""
    return list_upsamplers(guided=True)


def candidate_names() -> List[str]:
    """Names accepted by ``names=`` / ``--candidates``, in table order."""
    names = (list(STOCK) + [CARAFE_UNFOLD] + guided_upsamplers() +
             list(PEERS) + list(DYSAMPLE_PRESETS))
    if reference_sampler() is not None:
        names.append(REFERENCE)
    return names


def grid_sample_names() -> List[str]:
    """Opt-in candidates: each DySample preset on its ``grid_sample`` path.

    A preset's own row takes the device's fused kernel (Triton on CUDA, the
    C++ kernel on a CPU: :func:`dysample_sampler`); ``'<preset>
    (grid_sample)'`` samples the same layer's offsets with
    ``sampling.dysample_sample_reference``, which is what the layer runs
    with ``MMDYSAMPLE_FAST_CUDA=0`` or without Triton. Accepted by
    :func:`check_candidates`, not among :func:`candidate_names`.
    """
    return [name + GRID_SAMPLE for name in DYSAMPLE_PRESETS]


def check_candidates(names: Optional[Sequence[str]]) -> List[str]:
    """Validate ``names`` (``None``: the default set of
    :func:`candidate_names`), keep table order, add bilinear.

    Table order puts each :func:`grid_sample_names` candidate right after
    its preset.

    Raises:
        ValueError: On a name that is not a candidate, naming it and the
            valid names.
    """
    if names is None:
        return candidate_names()
    valid = []
    for name in candidate_names():
        valid.append(name)
        if name in DYSAMPLE_PRESETS:
            valid.append(name + GRID_SAMPLE)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f'unknown upsampler(s) {unknown}; choose from '
                         f'{valid}')
    if not names:
        raise ValueError('names must name at least one upsampler')
    chosen = set(names) | {BASELINE}
    return [n for n in valid if n in chosen]


class _ReferenceDySample(nn.Module):
    """A DySample layer in the paper's formulation (no fused kernel)."""

    def __init__(self, layer: nn.Module, sample: Callable) -> None:
        super().__init__()
        self.layer = layer
        self.sample = sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        offsets = getattr(layer, 'sampling_offsets_reference',
                          layer.sampling_offsets)
        return self.sample(x, offsets(x), layer.scale_factor, layer.groups)


class _GridSampleDySample(nn.Module):
    """A DySample layer whose sampling takes the ``grid_sample`` path.

    The layer's own (fused) offsets, sampled as the layer samples them
    where no fused kernel runs (``MMDYSAMPLE_FAST_CUDA=0``, no Triton).
    Calling the reference directly keeps the switch out of the timed call.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        return sampling.dysample_sample_reference(
            x, layer.sampling_offsets(x), layer.scale_factor, layer.groups)


def dysample_sampler(device: torch.device) -> str:
    """Which implementation samples for a DySample layer on ``device``.

    Returns:
        str: ``'cpu kernel'``, ``'triton'`` or ``'grid_sample'`` (with the
        reason the fused kernel is not used).
    """
    if device.type == 'cpu':
        if fast_cpu.available():
            return 'cpu kernel'
        return ('grid_sample (MMDYSAMPLE_FAST_CPU=0)' if not fast_cpu.enabled()
                else 'grid_sample (the CPU kernel could not be built)')
    if fast_triton.available():
        return 'triton'
    reason = fast_triton.unavailable_reason() or 'triton failed to import'
    return f'grid_sample ({reason})'


@contextmanager
def fused_kernels_off() -> Iterator[None]:
    """DySample samples through ``grid_sample`` inside the block.

    Sets ``MMDYSAMPLE_FAST_CPU=0`` and ``MMDYSAMPLE_FAST_CUDA=0``, which the
    layer reads at every call, and restores them after.
    """
    names = (fast_cpu._ENV, fast_triton._ENV)
    before = {n: os.environ.get(n) for n in names}
    os.environ.update(dict.fromkeys(names, '0'))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Candidate:
    """One upsampler, ready to run on ``device``.

    ``label`` says which implementation runs (``carafe (unfold, CPU)``);
    ``flops_layer`` is what FlopAnalyzer traces (the layer itself, or for
    mmcv's CARAFE op its unfold twin). A candidate with a ``skip`` reason
    is listed as skipped, not measured.
    """
    name: str
    label: str
    layer: nn.Module
    flops_layer: nn.Module
    unfold_kernel: int = 0  # > 0: the CARAFE unfold implementation
    notes: List[str] = field(default_factory=list)
    sampler: str = ''  # DySample presets: see dysample_sampler
    skip: str = ''

    @property
    def guided(self) -> bool:
        """Whether the layer is called as ``layer(x, guide)``."""
        return needs_guide(self.layer)


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


def _mmcv_cnn() -> bool:
    """Whether mmcv's stock upsamplers are registered (mmcv installed)."""
    return 'bilinear' in list_upsamplers()


def build_candidate(name: str, channels: int, scale_factor: int,
                    device: torch.device) -> Candidate:
    """Build candidate ``name`` for ``channels`` on ``device``."""
    if name == REFERENCE:
        sample = reference_sampler()
        if sample is None:
            raise ValueError(f'{REFERENCE!r} needs sampling.'
                             'dysample_sample_reference, which this version '
                             'does not provide')
        layer = _ReferenceDySample(
            build_upsampler('DySample', channels, scale_factor),
            sample).to(device)
        return Candidate(name, name, layer, layer, sampler='grid_sample')
    if name in DYSAMPLE_PRESETS:
        layer = build_upsampler(name, channels, scale_factor).to(device)
        return Candidate(name, name, layer, layer,
                         sampler=dysample_sampler(device))
    if name in grid_sample_names():
        preset = name[:-len(GRID_SAMPLE)]
        layer = _GridSampleDySample(
            build_upsampler(preset, channels, scale_factor)).to(device)
        return Candidate(name, name, layer, layer, sampler='grid_sample')
    if name in ('deconv', 'pixel_shuffle') and not _mmcv_cnn():
        placeholder = nn.Identity()
        return Candidate(
            name, name, placeholder, placeholder,
            skip=f'{name!r} is registered by mmcv.cnn, which is not '
            'installed')
    if name == CARAFE_UNFOLD:
        layer = build_upsampler(name, channels, scale_factor).to(device)
        return Candidate(name, CARAFE_UNFOLD_LABEL, layer, layer,
                         layer.up_kernel)
    if name != 'carafe':
        cfg = name if _mmcv_cnn() else TORCH_STOCK.get(name, name)
        layer = build_upsampler(cfg, channels, scale_factor).to(device)
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


def build_candidates(names: Sequence[str], channels: int, scale_factor: int,
                     device: torch.device) -> List[Candidate]:
    """:func:`build_candidate` for each name, in order.

    Where the ``carafe`` candidate times the unfold twin (a CPU), the
    :data:`CARAFE_UNFOLD` candidate would time the same layer a second
    time: it is marked to skip, with the reason.
    """
    candidates = [
        build_candidate(n, channels, scale_factor, device) for n in names
    ]
    carafe = next((c for c in candidates if c.name == 'carafe'), None)
    if carafe is not None and carafe.unfold_kernel:
        for cand in candidates:
            if cand.name == CARAFE_UNFOLD:
                cand.skip = (f'the {carafe.label!r} row times the same '
                             f'layer ({CARAFE_UNFOLD}) on {device.type}')
    return candidates


def unfold_bytes(shape: Sequence[int], candidate: Candidate,
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
