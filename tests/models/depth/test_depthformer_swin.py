# Copyright (c) mmdysample contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmseg')

from host_checks import check_trains, count_params, randomize_  # noqa: E402
from mmseg.models.backbones import SwinTransformer  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from mmdysample.models.depth import DepthFormerSwin  # noqa: E402

#: A CPU-sized DepthFormer encoder: Swin at embed 16, one block per stage.
SLIM_SWIN = dict(
    embed_dims=16,
    depths=(1, 1, 1, 1),
    num_heads=(1, 2, 4, 8),
    window_size=4,
    drop_path_rate=0.)


def slim(**kwargs):
    return DepthFormerSwin(conv_stem_channels=8, **SLIM_SWIN, **kwargs)


@pytest.mark.parametrize('size', [(64, 96), (45, 61), (33, 34)])
def test_five_levels_fine_to_coarse(size):
    backbone = slim().eval()
    h, w = size
    with torch.no_grad():
        outs = backbone(torch.rand(2, 3, h, w))
    assert [tuple(o.shape) for o in outs] == [
        (2, 8, math.ceil(h / 2), math.ceil(w / 2))
    ] + [(2, 16 * 2**i, math.ceil(h / 2**(i + 2)), math.ceil(w / 2**(i + 2)))
         for i in range(4)]
    assert backbone.out_channels == [8, 16, 32, 64, 128]


def test_swin_levels_are_mmseg_swin():
    """Same weights, same Swin outputs: the branch adds a level, it does
    not touch the transformer."""
    ours = randomize_(slim()).eval()
    stock = SwinTransformer(**SLIM_SWIN)
    stock.eval()  # mmseg's returns None
    result = stock.load_state_dict(ours.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == [
        'bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean',
        'bn1.running_var', 'bn1.weight', 'conv1.weight'
    ]
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        outs, expected = ours(x), stock(x)
    assert len(outs) == 5
    for out, ref in zip(outs[1:], expected):
        assert torch.equal(out, ref)


def test_eval_returns_the_module_and_keeps_frozen_stages():
    backbone = slim(frozen_stages=1)
    assert backbone.eval() is backbone and not backbone.training
    assert backbone.train() is backbone and backbone.training
    assert not backbone.stages[0].training
    assert not any(p.requires_grad for p in backbone.stages[0].parameters())


def test_stem_is_conv_bn_relu_by_hand():
    backbone = randomize_(slim()).eval()
    x = torch.rand(2, 3, 45, 61) - 0.5
    with torch.no_grad():
        out = backbone(x)[0]
        conv = F.conv2d(x, backbone.conv1.weight, stride=2, padding=3)
        bn = backbone.bn1
        expected = F.relu(
            (conv - bn.running_mean.view(1, -1, 1, 1)) /
            torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps) *
            bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    assert backbone.conv1.bias is None
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert (out == 0).any() and (out > 0).any()


@pytest.mark.parametrize('width', [8, 64, 13])
def test_stem_adds_exactly_its_conv_and_norm(width):
    ours = DepthFormerSwin(conv_stem_channels=width, **SLIM_SWIN)
    stock = SwinTransformer(**SLIM_SWIN)
    assert count_params(ours) - count_params(stock) == 3 * 49 * width + \
        2 * width
    assert ours(torch.rand(1, 3, 32, 32))[0].shape[1] == width


def test_every_parameter_trains():
    backbone = slim(in_channels=4)
    outs = check_trains(
        backbone, lambda module: module(torch.rand(2, 4, 37, 50)))
    assert outs[0].shape == (2, 8, 19, 25)


def test_pretrained_swin_loads_and_the_stem_keeps_its_init(tmp_path):
    stock = randomize_(SwinTransformer(**SLIM_SWIN))
    path = tmp_path / 'swin.pth'
    torch.save(dict(state_dict=stock.state_dict()), path)
    torch.manual_seed(0)
    ours = slim(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    stem = ours.conv1.weight.detach().clone()
    ours.init_weights()
    for key, value in stock.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert torch.equal(ours.conv1.weight, stem)


def test_registry_and_bad_width():
    backbone = MODELS.build(
        dict(type='DepthFormerSwin', conv_stem_channels=8, **SLIM_SWIN))
    assert isinstance(backbone, SwinTransformer)
    assert sorted(k for k in backbone.state_dict()
                  if not k.startswith(('stages', 'patch_embed', 'norm'))) == [
                      'bn1.bias', 'bn1.num_batches_tracked',
                      'bn1.running_mean', 'bn1.running_var', 'bn1.weight',
                      'conv1.weight'
                  ]
    with pytest.raises(ValueError, match='conv_stem_channels'):
        DepthFormerSwin(conv_stem_channels=0, **SLIM_SWIN)
    with pytest.raises(TypeError, match='conv_stem_channels'):
        DepthFormerSwin(conv_stem_channels='64', **SLIM_SWIN)
