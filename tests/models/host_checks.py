# Copyright (c) mmdysample contributors. All rights reserved.
"""What the tests of the hosts share (the necks' and the decode heads',
``tests/models/conftest.py`` puts this folder on the path): inputs, random
weights, the upsamplers to run, a guided probe, and the checks that a host
trains and keeps the stock signature."""
import inspect

import torch
import torch.nn as nn

from mmdysample.models import GuidedUpsampler, list_upsamplers

#: Every upsampler the registry builds (``deconv`` is not listed: it
#: upsamples through ``stride``); mmcv's CARAFE has no CPU kernel and is
#: built, not run, here. ``dysample`` is an alias of ``DySample``.
UPSAMPLERS = sorted(
    set(list_upsamplers()) - {'carafe', 'dysample'} | {'deconv'})


def make_feats(channels, sizes, batch=2, seed=0, dtype=torch.float32,
               grad=False):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.rand(batch, c, h, w, generator=gen).to(dtype).requires_grad_(
            grad) for c, (h, w) in zip(channels, sizes)
    ]


def randomize_(module, seed=0):
    """Random parameters and BN statistics, so equality is not by chance."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
    return module


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def same_signature(ours, stock):
    """Our ``__init__`` takes every argument of the stock one, with its
    default, in its order; extra ones only after them."""
    ours = inspect.signature(ours.__init__).parameters
    stock = inspect.signature(stock.__init__).parameters
    named = [n for n, p in stock.items() if p.kind != p.VAR_KEYWORD]
    assert list(ours)[:len(named)] == named
    for name in named:
        assert ours[name].default == stock[name].default, name


def weighted_sum(outs, seed=1):
    """A loss that a BatchNorm / GroupNorm does not make constant."""
    gen = torch.Generator().manual_seed(seed)
    return sum((o * torch.rand(o.shape, generator=gen).to(o)).sum()
               for o in outs)


def check_trains(module, run):
    """Forward + backward; every parameter of ``module`` gets a gradient.

    LDA-AQU's last offset conv starts at zero, so at init the layers before
    it get none (by design): it is moved first.
    """
    for layer in module.modules():
        if type(layer).__name__ == 'LDAAQU':
            with torch.no_grad():
                layer.conv_offset[-1].weight.normal_(
                    std=0.1, generator=torch.Generator().manual_seed(0))
    outs = run(module)
    weighted_sum(outs).backward()
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name
    return outs


class Probe(GuidedUpsampler):
    """Nearest x``s`` of ``x`` gated by a learnable map of the guide: both
    inputs, and the gate's weights, get a gradient."""

    def __init__(self, in_channels, scale_factor=2, guide_channels=None):
        super().__init__(in_channels, scale_factor, guide_channels)
        self.gate = nn.Conv2d(self.guide_channels, in_channels, 1)

    def forward(self, x, guide):
        self.check_guide(x, guide)
        s = self.scale_factor
        up = x.repeat_interleave(s, 2).repeat_interleave(s, 3)
        return up * torch.sigmoid(self.gate(guide))
