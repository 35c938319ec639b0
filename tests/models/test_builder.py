# Copyright (c) mmdysample contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from mmdysample import DYSAMPLE_PRESETS, DySample
from mmdysample.models import build_upsampler, list_upsamplers

#: Upsamplers mmcv registers; CARAFE has no CPU kernel (forward on GPU only).
MMCV_UPSAMPLERS = ['nearest', 'bilinear', 'deconv', 'pixel_shuffle']


@pytest.mark.parametrize('name', MMCV_UPSAMPLERS + list(DYSAMPLE_PRESETS))
@pytest.mark.parametrize('scale', [2, 3])
def test_every_registered_upsampler_keeps_channels(name, scale):
    # 72 channels suit every preset at s=2 and s=3 (pl needs C % s**2 == 0).
    layer = build_upsampler(name, in_channels=72, scale_factor=scale)
    out = layer(torch.rand(2, 72, 5, 7))
    assert out.shape == (2, 72, 5 * scale, 7 * scale)


def test_string_and_dict_are_equivalent():
    a = build_upsampler('DySample+', 32)
    b = build_upsampler(dict(type='DySample+'), 32)
    assert type(a) is type(b) and a.extra_repr() == b.extra_repr()


def test_cfg_overrides_filled_arguments():
    layer = build_upsampler(dict(type='DySample', groups=2), 32, 4)
    assert (layer.groups, layer.scale_factor) == (2, 4)
    deconv = build_upsampler(
        dict(type='deconv', kernel_size=4, padding=1), 8, 2)
    assert deconv.kernel_size == (4, 4) and deconv.stride == (2, 2)
    assert deconv(torch.rand(1, 8, 5, 5)).shape == (1, 8, 10, 10)


def test_bilinear_matches_interpolate():
    x = torch.rand(1, 4, 5, 6)
    layer = build_upsampler('bilinear', 4)
    torch.testing.assert_close(
        layer(x),
        F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False))
    assert isinstance(build_upsampler('nearest', 4), nn.Upsample)


def test_class_type_is_accepted():
    assert isinstance(build_upsampler(dict(type=DySample), 8), DySample)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_under_host_scopes(scope):
    pytest.importorskip(scope)
    with DefaultScope.overwrite_default_scope(scope):
        assert isinstance(build_upsampler('DySample-S', 16), DySample)
        assert isinstance(build_upsampler('deconv', 16), nn.ConvTranspose2d)


def test_carafe_builds():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    layer = build_upsampler('carafe', 16, 2)
    assert isinstance(layer, CARAFEPack)
    assert layer.channels == 16 and layer.scale_factor == 2


def test_carafe_refuses_a_cpu_forward_and_names_the_cpu_twin():
    pytest.importorskip('mmcv.ops')
    layer = build_upsampler('carafe', 16, 2)
    with pytest.raises(NotImplementedError) as info:
        layer(torch.rand(2, 16, 5, 7))
    message = str(info.value)
    assert 'no CPU kernel' in message and "'carafe'" in message
    assert '(2, 16, 5, 7)' in message and 'CARAFEUnfold' in message
    # the twin it names computes the layer's function on the CPU
    twin = build_upsampler('CARAFEUnfold', 16, 2)
    twin.load_state_dict(layer.state_dict())
    assert twin(torch.rand(2, 16, 5, 7)).shape == (2, 16, 10, 14)


@pytest.mark.gpu
def test_carafe_forward_cuda():
    pytest.importorskip('mmcv.ops')  # make gpu-check runs without mmcv
    layer = build_upsampler('carafe', 16, 2).cuda()
    assert layer(torch.rand(2, 16, 5, 7).cuda()).shape == (2, 16, 10, 14)


def test_list_upsamplers():
    names = list_upsamplers()
    for name in ['nearest', 'bilinear', 'pixel_shuffle', 'carafe',
                 *DYSAMPLE_PRESETS]:
        assert name in names


@pytest.mark.parametrize('cfg,exc,match', [
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(scale_factor=2), KeyError, 'type'),
    (3, TypeError, 'upsample_cfg'),
])
def test_errors(cfg, exc, match):
    with pytest.raises(exc, match=match):
        build_upsampler(cfg, 8)


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as err:
        build_upsampler('dysampel', 8)
    assert 'DySample+' in str(err.value) and 'custom_imports' in str(
        err.value)


def test_list_upsamplers_filters_by_guide():
    guided = list_upsamplers(guided=True)
    plain = list_upsamplers(guided=False)
    assert {'IndexNet', 'A2U', 'FADE', 'SAPA-B'} <= set(guided)
    assert {'DySample', 'bilinear', 'CARAFEUnfold'} <= set(plain)
    assert not set(guided) & set(plain)
    assert sorted(guided + plain) == list_upsamplers()
