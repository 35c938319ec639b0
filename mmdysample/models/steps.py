# Copyright (c) mmdysample contributors. All rights reserved.
"""What every host of ``upsample_cfg`` does at its upsampling steps.

A *host* (the FPN neck, the SegFormer, UPerNet, DeepLabV3+ and Semantic FPN
heads, the MaskFormer pixel decoders) is a stock mmdet / mmseg module whose
upsampling steps can be learnable layers. They all repeat one pattern, which
lives here, in :class:`UpsampleSteps`:

1. **Build** one upsampler per step with
   :func:`~mmdysample.models.build_upsampler` (:meth:`build_steps`).
   Construction consumes no draws of the global torch RNG, so the modules
   built after the host (an auxiliary head, a detector's RPN) get the same
   initial weights whatever the upsampler is.
2. **Call** it with its guide through
   :func:`~mmdysample.models.guide.upsample` and fit the result to the finer
   map's size with :func:`~mmdysample.models.align.fit_to_size`
   (:meth:`upsample_step`). A guide that does not fit is a ``ValueError``
   naming the host and the step.
3. **Initialise**: :meth:`init_weights` applies the host's own
   initialisation with the upsamplers hidden (an FPN's Xavier on every
   ``Conv2d`` would otherwise re-initialise DySample's ``N(0, 0.001)``
   offset conv, and would draw from the global RNG for it), then each
   upsampler's ``init_weights`` under a forked RNG, then a ``Pretrained``
   ``init_cfg`` last. Two models that differ only in ``upsample_cfg``, built
   and initialised under one seed, have equal parameters in every other
   module (what a comparison of upsamplers needs).

A host says where its upsamplers sit by overriding :meth:`upsample_slots`;
everything else is inherited. The mixin comes first in the bases, before the
stock class::

    class DySampleUPerHead(UpsampleSteps, UPerHead): ...
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import ModuleList
from mmengine.model.weight_init import (PretrainedInit, initialize,
                                        update_init_info)
from torch import Tensor

from .align import fit_to_size
from .builder import UpsampleConfig, build_upsampler, upsampler_type
from .guide import needs_guide, upsample

#: Where an upsampler sits: ``parent._modules[name]``.
Slot = Tuple[nn.Module, str]


def is_learnable(upsample_cfg: Optional[UpsampleConfig]) -> bool:
    """Whether ``upsample_cfg`` asks for upsampling layers (a name or a dict
    with ``type``) rather than the host's stock resize (None).

    Raises:
        TypeError: ``upsample_cfg`` is neither None, a str nor a dict.

    Example:
        >>> is_learnable(None), is_learnable('DySample')
        (False, True)
    """
    if upsample_cfg is None:
        return False
    if not isinstance(upsample_cfg, (str, dict)):
        raise TypeError('upsample_cfg must be None, a str or a dict, got '
                        f'{type(upsample_cfg).__name__}: {upsample_cfg!r}')
    return True


def rng_devices() -> List[int]:
    """The CUDA devices whose RNG a fork must save: those already in use.

    Asking for the state of a device initialises CUDA; a CPU-only run (or
    one that has not touched CUDA yet) forks the CPU generator only.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return list(range(torch.cuda.device_count()))
    return []


@contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block on the global RNG and restore its state afterwards.

    Draws inside the block come from the state at its start; the code after
    it sees the state as if the block had drawn nothing.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> with isolated_rng():
        ...     _ = torch.rand(3)
        >>> after = torch.rand(1)
        >>> _ = torch.manual_seed(0)
        >>> torch.equal(after, torch.rand(1))
        True
    """
    with torch.random.fork_rng(devices=rng_devices()):
        yield


def init_upsampler(layer: nn.Module, host: str = 'host') -> None:
    """Apply an upsampler's own ``init_weights``, if it has one, and record
    it in mmengine's init bookkeeping (the caller isolates the RNG: one
    block for all of a host's upsamplers, so that steps of one shape do
    not start from the same draws)."""
    if not hasattr(layer, 'init_weights'):
        return
    layer.init_weights()
    if hasattr(layer, '_params_init_info'):
        update_init_info(
            layer,
            init_info=f'Initialized by its own `init_weights` in {host} '
            '(after the host\'s init_cfg)')


def _split_pretrained(init_cfg) -> Tuple[list, list]:
    """``init_cfg`` as (the other entries, the ``Pretrained`` ones)."""
    if not init_cfg:
        return [], []
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [
        c for c in cfgs
        if c.get('type') == 'Pretrained' or c.get('type') is PretrainedInit
    ]
    return [c for c in cfgs if c not in pretrained], pretrained


class UpsampleSteps:
    """Mixin of every host: build, call and initialise its upsamplers.

    See the module's docstring. A host calls :meth:`build_steps` after its
    stock ``__init__`` and :meth:`upsample_step` at each step, and overrides
    :meth:`upsample_slots` to say where the upsamplers sit (none: the stock
    host, whose :meth:`init_weights` is then the stock one).
    """

    def build_steps(self,
                    upsample_cfg: UpsampleConfig,
                    in_channels: Union[int, Sequence[int]],
                    scale_factors: Sequence[int],
                    guide_channels: Optional[Sequence[Optional[int]]] = None
                    ) -> ModuleList:
        """One upsampler per step, built without drawing from the global RNG.

        Args:
            upsample_cfg (str | dict): A registered name or a dict with
                ``type``.
            in_channels (int | Sequence[int]): Channels of the maps the
                steps upsample: one for all, or one per step.
            scale_factors (Sequence[int]): The ratio of each step.
            guide_channels (Sequence[int | None], optional): Channels of
                each step's guide, for the upsamplers that read one; None
                (or a None entry): ``in_channels``. Defaults to None.

        Returns:
            ModuleList: mmengine's, so that an mmengine parent that does
            not hide it (see :meth:`init_weights`) still reaches each
            upsampler's ``init_weights``.
        """
        if guide_channels is None:
            guide_channels = [None] * len(scale_factors)
        if isinstance(in_channels, int):
            in_channels = [in_channels] * len(scale_factors)
        with isolated_rng():
            return ModuleList([
                build_upsampler(
                    upsample_cfg,
                    channels,
                    scale_factor=scale,
                    guide_channels=guide) for channels, scale, guide in zip(
                        in_channels, scale_factors, guide_channels)
            ])

    def build_guided_steps(
        self,
        upsample_cfg: UpsampleConfig,
        in_channels: Union[int, Sequence[int]],
        scale_factors: Sequence[int],
        guide_channels: Sequence[int],
        **conv_kwargs,
    ) -> Tuple[ModuleList, Optional[ModuleList]]:
        """:meth:`build_steps` where each step's guide is a map of another
        width than the map it upsamples (a decoder's skip).

        An upsampler that cannot read a guide of that width (FreqFusion
        adds its guide to its output; GroupNorm(32) on a narrow guide)
        raises a ``ValueError`` when built: it is then built for a guide of
        its own width, and each step gets a 1x1 ``ConvModule`` from the
        guide's width to it, built like the upsamplers without drawing from
        the global RNG.

        Args:
            upsample_cfg (str | dict): A registered name or a dict with
                ``type``.
            in_channels (int | Sequence[int]): As :meth:`build_steps`.
            scale_factors (Sequence[int]): As :meth:`build_steps`.
            guide_channels (Sequence[int]): The width of each step's guide.
            **conv_kwargs: ``conv_cfg`` / ``norm_cfg`` / ``act_cfg`` of the
                projections (the host's).

        Returns:
            tuple[ModuleList, ModuleList | None]: The upsamplers, and the
            projections of the guides (None where the upsamplers read the
            guides as they are).

        Raises:
            ValueError: An upsampler does not build, other than for the
                width of its guide.
        """
        try:
            return self.build_steps(
                upsample_cfg,
                in_channels,
                scale_factors,
                guide_channels=guide_channels), None
        except ValueError:
            if not needs_guide(upsampler_type(upsample_cfg)):
                raise
        # raises again where the error was not about the guide's width
        layers = self.build_steps(upsample_cfg, in_channels, scale_factors)
        if isinstance(in_channels, int):
            in_channels = [in_channels] * len(scale_factors)
        from mmcv.cnn import ConvModule  # mmcv: only for projections
        with isolated_rng():
            projections = ModuleList(
                ConvModule(guide, width, 1, **conv_kwargs)
                for guide, width in zip(guide_channels, in_channels))
        return layers, projections

    def upsample_step(self,
                      layer: nn.Module,
                      x: Tensor,
                      guide: Optional[Tensor],
                      size: Optional[Sequence[int]],
                      step: Union[int, str],
                      mode: str = 'bilinear',
                      align_corners: bool = False) -> Tensor:
        """Upsample ``x`` with ``layer`` (and ``guide``, if it reads one),
        then fit it to ``size``.

        Args:
            layer (nn.Module): The step's upsampler.
            x (Tensor): The coarse map ``(N, C, H, W)``.
            guide (Tensor | None): The finer map of the step
                ``(N, C_g, H_g, W_g)``; None where there is none (then only
                upsamplers that read no guide work).
            size (Sequence[int] | None): The finer map's ``(H, W)``; None
                keeps the upsampler's output size.
            step (int | str): The step, for error messages.
            mode (str): Mode of :func:`fit_to_size`'s fallback resize.
                Defaults to ``'bilinear'``.
            align_corners (bool): Its ``align_corners``. Defaults to False.

        Returns:
            Tensor: ``(N, C, *size)``.

        Raises:
            ValueError: The guide does not fit ``x`` and the layer; the
                message names the host (its class) and the step.
        """
        out = upsample(
            layer, x, guide=guide, host=type(self).__name__, stage=step)
        if size is None:
            return out
        return fit_to_size(out, size, mode, align_corners)

    def upsample_slots(self) -> List[Slot]:
        """Where the upsamplers sit, as ``(parent, name)``: none here."""
        return []

    def upsample_layers(self) -> List[nn.Module]:
        """The upsamplers, in the order of :meth:`upsample_slots`."""
        return [
            parent._modules[name] for parent, name in self.upsample_slots()
        ]

    def init_weights(self) -> None:
        """The host's initialisation, then the upsamplers' own.

        The stock ``init_weights`` runs with the upsamplers taken out of the
        module tree (and without a ``Pretrained`` ``init_cfg``): its
        ``init_cfg`` neither re-initialises them nor draws random numbers
        for them. Each upsampler's ``init_weights`` then runs under an
        isolated RNG, and a ``Pretrained`` ``init_cfg`` is applied last.
        """
        slots = self.upsample_slots()
        if not slots or getattr(self, '_is_init', False):
            super().init_weights()
            return
        layers = [parent._modules[name] for parent, name in slots]
        init_cfg = getattr(self, 'init_cfg', None)
        others, pretrained = _split_pretrained(init_cfg)
        self.init_cfg = others or None
        for parent, name in slots:
            parent._modules[name] = None
        try:
            super().init_weights()
        finally:
            for (parent, name), layer in zip(slots, layers):
                parent._modules[name] = layer
            self.init_cfg = init_cfg
        with isolated_rng():
            for layer in layers:
                init_upsampler(layer, type(self).__name__)
        if pretrained:
            initialize(self, pretrained)


def slots_of(modules: Optional[nn.Module]) -> List[Slot]:
    """The slots of every child of a container (none for None).

    Example:
        >>> slots_of(nn.ModuleList([nn.Identity(), nn.Identity()]))[1][1]
        '1'
    """
    if modules is None:
        return []
    return [(modules, name) for name in modules._modules]
