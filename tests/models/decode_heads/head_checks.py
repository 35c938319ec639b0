# Copyright (c) mmdysample contributors. All rights reserved.
"""What the tests of the UPerNet, DeepLabV3+ and Semantic FPN hosts share:
inputs, random weights, the upsamplers to run, and the check that a head
trains (forward + backward, a gradient in every parameter)."""
import inspect

import torch
from mmcv.cnn import ConvModule
from mmengine.utils.dl_utils.parrots_wrapper import SyncBatchNorm

from mmdysample.models import list_upsamplers

#: Every upsampler the registry builds (``deconv`` is not listed: it
#: upsamples through ``stride``); mmcv's CARAFE has no CPU kernel and is
#: built, not run, here. ``dysample`` is an alias of ``DySample``.
UPSAMPLERS = sorted(
    set(list_upsamplers()) - {'carafe', 'dysample'} | {'deconv'})

#: An ADE20K validation image, 512 x 683, through a stride-4..32 backbone
#: (each stride-2 layer maps H to ceil(H / 2)).
ADE_SIZES = [(128, 171), (64, 86), (32, 43), (16, 22)]
#: A 67 x 91 image: odd sizes at every level, small enough for the zoo's
#: channels.
ODD_SIZES = [(17, 23), (9, 12), (5, 6), (3, 3)]


def make_feats(channels, sizes, batch=2, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.rand(batch, c, h, w, generator=gen).requires_grad_(grad)
        for c, (h, w) in zip(channels, sizes)
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


def check_trains(head, feats):
    """Forward + backward; every parameter of the head gets a gradient.

    LDA-AQU's last offset conv starts at zero, so at init the layers before
    it get none (by design): it is moved first.
    """
    for module in head.modules():
        if type(module).__name__ == 'LDAAQU':
            with torch.no_grad():
                module.conv_offset[-1].weight.normal_(
                    std=0.1, generator=torch.Generator().manual_seed(0))
    out = head(feats)
    gen = torch.Generator().manual_seed(1)
    # a weighted sum: a plain sum would be constant through BatchNorm
    (out * torch.rand(out.shape, generator=gen)).sum().backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name
    return out


def conv_has_norm(module, sync_bn):
    """mmseg's ``tests/test_models/test_heads/utils.py::_conv_has_norm``
    (OpenMMLab, Apache-2.0), re-typed: every ConvModule has a norm (a
    SyncBN one when ``sync_bn``)."""
    for m in module.modules():
        if isinstance(m, ConvModule):
            if not m.with_norm:
                return False
            if sync_bn and not isinstance(m.bn, SyncBatchNorm):
                return False
    return True
