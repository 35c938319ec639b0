# Copyright (c) mmdysample contributors. All rights reserved.
"""The guide protocol: how a host asks for and passes a guide."""
import pytest
import torch
import torch.nn as nn

from mmdysample import DySample
from mmdysample.models import GuidedUpsampler, build_upsampler, needs_guide
from mmdysample.models.guide import upsample


class AddGuide(GuidedUpsampler):
    """Nearest-upsampled ``x`` plus the guide's first channels."""

    def forward(self, x, guide):
        self.check_guide(x, guide)
        self.seen = guide
        up = x.repeat_interleave(self.scale_factor, 2).repeat_interleave(
            self.scale_factor, 3)
        return up + guide[:, :x.shape[1]]


class Declared(nn.Module):
    """Declares the need on its class without the base class."""

    needs_guide = True
    scale_factor = 2

    def forward(self, x, guide):
        return guide


def test_needs_guide_reads_the_class_declaration():
    assert needs_guide(AddGuide)
    assert needs_guide(AddGuide(4, 2))
    assert needs_guide(Declared())
    assert not needs_guide(DySample(4))
    assert not needs_guide(nn.Upsample(scale_factor=2))
    assert not needs_guide(build_upsampler('deconv', 4))


class Truthy(nn.Module):
    needs_guide = 'yes'  # not ``True``: not a declaration


def test_needs_guide_wants_exactly_true():
    assert not needs_guide(Truthy())


def test_non_guided_layer_is_called_with_x_only():
    layer = DySample(8).eval()
    x = torch.rand(2, 8, 5, 7)
    with torch.no_grad():
        expected = layer(x)
        # a guide that fits nothing is never looked at
        out = upsample(layer, x, torch.rand(1, 3, 1, 1), host='H', stage=0)
    assert torch.equal(out, expected)


@pytest.mark.parametrize('size,guide_size', [((5, 7), (10, 14)),
                                             ((5, 7), (9, 13)),
                                             ((5, 7), (10, 13)),
                                             ((16, 22), (32, 43))])
def test_guide_is_padded_by_replication_to_s_times_x(size, guide_size):
    layer = AddGuide(4, 2)
    x = torch.zeros(1, 4, *size)
    guide = torch.rand(1, 4, *guide_size)
    out = upsample(layer, x, guide, host='H', stage=1)
    h, w = size
    assert out.shape == (1, 4, 2 * h, 2 * w)
    gh, gw = guide_size
    assert torch.equal(out[..., :gh, :gw], guide)
    # the padding repeats the last row / column
    assert torch.equal(layer.seen[..., gh:, :gw],
                       guide[..., -1:, :].expand(-1, -1, 2 * h - gh, -1))
    assert torch.equal(layer.seen[..., :, gw:],
                       layer.seen[..., :, gw - 1:gw].expand(
                           -1, -1, -1, 2 * w - gw))


def test_scale_three_accepts_two_short_rows():
    layer = AddGuide(4, 3)
    out = upsample(layer, torch.zeros(1, 4, 4, 5), torch.rand(1, 4, 10, 13))
    assert out.shape == (1, 4, 12, 15)


@pytest.mark.parametrize('guide_shape,why', [
    ((2, 4, 10, 14), 'batch'),
    ((1, 3, 10, 14), 'channels'),
    ((1, 4, 8, 14), 'two rows short'),
    ((1, 4, 10, 15), 'one column too many'),
    ((1, 4, 20, 28), 'twice too large'),
])
def test_guide_that_does_not_fit_names_host_stage_and_shapes(guide_shape, why):
    layer = AddGuide(4, 2)
    x = torch.zeros(1, 4, 5, 7)
    with pytest.raises(ValueError) as info:
        upsample(layer, x, torch.rand(guide_shape), host='MyNeck', stage=2)
    message = str(info.value)
    assert 'MyNeck stage 2' in message, why
    assert str(guide_shape) in message and '(1, 4, 5, 7)' in message, why


def test_missing_or_non_4d_guide_is_an_error():
    layer = AddGuide(4, 2)
    x = torch.zeros(1, 4, 5, 7)
    with pytest.raises(ValueError, match=r'H stage 0: AddGuide needs a 4-D'):
        upsample(layer, x, None, host='H', stage=0)
    with pytest.raises(ValueError, match=r'needs a 4-D guide, got \(4, 10'):
        upsample(layer, x, torch.rand(4, 10, 14), host='H', stage=0)


def test_guided_layer_checks_its_own_inputs():
    layer = AddGuide(4, 2, guide_channels=6)
    assert layer.guide_channels == 6
    x = torch.zeros(1, 4, 5, 7)
    assert layer(x, torch.zeros(1, 6, 10, 14)).shape == (1, 4, 10, 14)
    with pytest.raises(ValueError, match=r'expects a guide of shape '
                       r'\(1, 6, 10, 14\).*got \(1, 6, 9, 14\)'):
        layer(x, torch.zeros(1, 6, 9, 14))
    with pytest.raises(ValueError, match=r'expects x of shape \(N, 4, H, W\)'):
        layer(torch.zeros(1, 5, 5, 7), torch.zeros(1, 6, 10, 14))
    with pytest.raises(TypeError, match=r'AddGuide needs a guide tensor'):
        layer.check_guide(x, None)


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(in_channels=0, scale_factor=2), ValueError, 'in_channels must be'),
    (dict(in_channels=4, scale_factor=1.5), ValueError, 'scale_factor must'),
    (dict(in_channels=4, scale_factor=2, guide_channels='8'), TypeError,
     'guide_channels must be an integer'),
])
def test_guided_base_validates_its_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        AddGuide(**kwargs)
