# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdysample.utils.checkpoint_fit and the hook tools/test.py adds.

A small model with an FPN-like ``upsample_modules`` container stands in for
a detector; the tools themselves are run in tests/tools/.
"""
import types

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from mmdysample import DySample
from mmdysample.engine import CheckpointFitHook
from mmdysample.utils.checkpoint_fit import (ALLOW_PARTIAL_FLAG,
                                             CheckpointMismatchError,
                                             check_checkpoint_fit,
                                             checkpoint_state_dict,
                                             compare_state_dict,
                                             load_checked_checkpoint)


class Neck(nn.Module):

    def __init__(self, scope_bias=False):
        super().__init__()
        self.lateral = nn.Conv2d(8, 8, 1)
        self.norm = nn.BatchNorm2d(8)
        self.upsample_modules = nn.ModuleList([
            DySample(8, groups=2, dyscope=True, scope_bias=scope_bias)
            for _ in range(2)
        ])


class Model(nn.Module):

    def __init__(self, scope_bias=False):
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 3)
        self.neck = Neck(scope_bias)
        # An upsampler outside any container.
        self.head_up = DySample(8, groups=2)
        # Not in the state dict: never required.
        self.register_buffer('mean', torch.zeros(3), persistent=False)


def state_of(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=gen)
        if v.is_floating_point() else v.clone()
        for k, v in model.state_dict().items()
    }


@pytest.fixture
def warnings(monkeypatch):
    """The messages check_checkpoint_fit logs as warnings."""
    logged = []

    def fake_print_log(msg, logger=None, level=None):
        logged.append(msg)

    monkeypatch.setattr('mmdysample.utils.checkpoint_fit.print_log',
                        fake_print_log)
    return logged


def test_exact_fit_is_silent(warnings):
    model = Model()
    fit = check_checkpoint_fit(model, {'state_dict': state_of(model)})
    assert fit.fits and fit == ([], [], [], [])
    assert warnings == []


def test_bare_state_dict_and_ddp_prefix():
    model = Model()
    state = {'module.' + k: v for k, v in state_of(model).items()}
    assert set(checkpoint_state_dict(state)) == set(model.state_dict())
    assert check_checkpoint_fit(model, {'state_dict': state}).fits


def test_num_batches_tracked_is_not_required():
    model = Model()
    state = state_of(model)
    del state['neck.norm.num_batches_tracked']
    assert check_checkpoint_fit(model, state).fits


def test_missing_keys_are_named_first_few():
    model = Model()
    state = state_of(model)
    removed = [k for k in model.state_dict() if k.startswith('neck.')]
    removed = [k for k in removed if 'num_batches' not in k]
    for key in removed:
        del state[key]
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fit(model, state, source='ckpt.pth')
    message = str(err.value)
    assert message.startswith('ckpt.pth does not fit the model')
    assert f'{len(removed)} model weight(s) missing' in message
    for key in removed[:5]:
        assert key in message
    assert removed[5] not in message
    assert f'({len(removed) - 5} more)' in message
    assert ALLOW_PARTIAL_FLAG in message and 'Nothing was loaded' in message


def test_shape_mismatch_is_an_error():
    model = Model()
    state = state_of(model)
    state['backbone.weight'] = torch.zeros(8, 3, 1, 1)
    with pytest.raises(CheckpointMismatchError,
                       match=r'backbone.weight \(checkpoint \[8, 3, 1, 1\], '
                       r'model \[8, 3, 3, 3\]\)'):
        check_checkpoint_fit(model, state)


def test_unexpected_key_is_a_warning(warnings):
    model = Model()
    state = state_of(model)
    state['roi_head.fc.weight'] = torch.zeros(2)
    fit = check_checkpoint_fit(model, state)
    assert fit.fits and fit.unexpected == ['roi_head.fc.weight']
    assert len(warnings) == 1 and 'roi_head.fc.weight' in warnings[0]


@pytest.mark.parametrize(
    'key',
    [
        # a DySample layer's key the layer does not have
        'head_up.scope.weight',
        # under an upsampler container with no layer there
        'neck.upsample_modules.5.offset.weight',
        # the SegFormer head's container, in a model without one
        'decode_head.upsamplers.3.2.offset.weight',
    ])
def test_unexpected_upsampler_key_is_an_error(key):
    model = Model()
    state = state_of(model)
    state[key] = torch.zeros(2)
    with pytest.raises(CheckpointMismatchError,
                       match='upsampler weight.*' + key.replace('.', r'\.')):
        check_checkpoint_fit(model, state)


@pytest.mark.parametrize('ckpt_bias', [True, False])
def test_scope_bias_mismatch_names_the_option(ckpt_bias):
    state = state_of(Model(scope_bias=ckpt_bias))
    model = Model(scope_bias=not ckpt_bias)
    fit = compare_state_dict(model, state)
    if ckpt_bias:
        assert fit.unexpected_upsampler == [
            'neck.upsample_modules.0.scope.bias',
            'neck.upsample_modules.1.scope.bias'
        ]
    else:
        assert fit.missing == [
            'neck.upsample_modules.0.scope.bias',
            'neck.upsample_modules.1.scope.bias'
        ]
    with pytest.raises(CheckpointMismatchError, match='scope_bias=True'):
        check_checkpoint_fit(model, state)


def test_allow_partial_warns_instead(warnings):
    model = Model()
    state = state_of(model)
    del state['backbone.bias']
    state['neck.upsample_modules.9.offset.weight'] = torch.zeros(1)
    fit = check_checkpoint_fit(model, state, allow_partial=True)
    assert not fit.fits
    assert fit.missing == ['backbone.bias']
    assert len(warnings) == 1
    assert 'backbone.bias' in warnings[0]
    assert 'neck.upsample_modules.9.offset.weight' in warnings[0]
    with pytest.raises(TypeError, match='allow_partial'):
        check_checkpoint_fit(model, state, allow_partial='yes')


def test_load_checked_checkpoint_reads_once_then_loads(
        tmp_path, monkeypatch):
    source, target = Model(), Model()
    state = state_of(source, seed=3)
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    calls = []
    real_load = torch.load

    def counting_load(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get('f'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', counting_load)
    load_checked_checkpoint(target, path)
    assert len(calls) == 1
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_checked_checkpoint_refuses_before_loading(tmp_path):
    model = Model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = state_of(model, seed=1)
    del state['neck.lateral.bias']
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(CheckpointMismatchError, match='neck.lateral.bias'):
        load_checked_checkpoint(model, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # Lenient: what fits is loaded, the rest keeps its weights.
    load_checked_checkpoint(model, path, allow_partial=True)
    assert torch.equal(model.backbone.weight, state['backbone.weight'])
    assert torch.equal(model.neck.lateral.bias, before['neck.lateral.bias'])


def test_lenient_load_still_refuses_a_scope_bias_mismatch(tmp_path):
    """Dropping the bias would change the function: the layer refuses."""
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': state_of(Model(scope_bias=True))}, path)
    with pytest.raises(ValueError, match='scope_bias=False'):
        load_checked_checkpoint(Model(), path, allow_partial=True)


class TestHook:

    def runner(self, model):
        return types.SimpleNamespace(model=model)

    def test_raises_on_misfit(self):
        model = Model()
        state = state_of(model)
        del state['backbone.weight']
        hook = CheckpointFitHook(source='x.pth')
        with pytest.raises(CheckpointMismatchError,
                           match='(?s)x.pth does not fit.*backbone.weight'):
            hook.after_load_checkpoint(self.runner(model),
                                       {'state_dict': state})

    def test_allow_partial_and_fit(self):
        MMLogger.get_instance('mmdysample_test_fit_hook')
        model = Model()
        state = state_of(model)
        CheckpointFitHook().after_load_checkpoint(self.runner(model),
                                                  {'state_dict': state})
        del state['backbone.weight']
        CheckpointFitHook(allow_partial=True).after_load_checkpoint(
            self.runner(model), {'state_dict': state})

    def test_bad_argument(self):
        with pytest.raises(TypeError, match='allow_partial'):
            CheckpointFitHook(allow_partial=1)


def test_upsampler_weights_in_place_of_a_stock_resize_are_an_error():
    """Semantic FPN's host puts its upsamplers where the stock head has a
    parameter-free ``nn.Upsample`` (``scale_heads.<i>.<j>``): loaded into
    the stock head, a DySample checkpoint's upsampler weights have no place
    and must not be dropped silently."""
    from mmseg.models.decode_heads import FPNHead

    from mmdysample.models.decode_heads import DySampleFPNHead
    args = dict(
        in_channels=[8, 8, 8, 8],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=8,
        num_classes=3)
    stock = FPNHead(**args)
    ours = DySampleFPNHead(upsample_cfg='DySample', **args)
    fit = compare_state_dict(stock, ours.state_dict())
    assert fit.missing == [] and fit.unexpected == []
    assert fit.unexpected_upsampler == [
        k for k in ours.state_dict() if k not in stock.state_dict()
    ]
    assert any(k.startswith('scale_heads.3.') for k in fit.unexpected_upsampler)
