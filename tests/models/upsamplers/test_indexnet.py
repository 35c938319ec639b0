# Copyright (c) mmdysample contributors. All rights reserved.
"""IndexNet (HIN), a guided upsampler: the index map of the guide times the
nearest-upsampled input."""
import itertools
import math

import pytest
import torch
import torch.nn as nn
from guided_checks import check_cuda_matches_cpu
from mmengine.registry import MODELS
from torch.func import functional_call

from mmdysample.deployment import exporter_kwargs
from mmdysample.models import build_upsampler, list_upsamplers, needs_guide
from mmdysample.models.upsamplers import IndexNet

VARIANTS = list(itertools.product([True, False], [True, False]))


def randomize(layer, seed=0):
    """Random weights (not the init) and random BN running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in layer.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape,
                                                 generator=gen))
                m.running_var.copy_(
                    torch.rand(m.running_var.shape, generator=gen) + 0.5)
                # Half of channel 0 lands above ReLU6's clamp.
                m.bias[0] = 6.0
    return layer


def make(in_channels=4, guide_channels=None, dtype=torch.float64, seed=0,
         **kwargs):
    layer = IndexNet(in_channels, guide_channels=guide_channels, **kwargs)
    return randomize(layer, seed).to(dtype)


def pair(n=2, c=4, h=5, w=7, c_g=None, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    guide = torch.randn(n, c_g or c, 2 * h, 2 * w, generator=gen, dtype=dtype)
    return x, guide


def loop_index_map(layer, guide):
    """The spec's index map, one value at a time, in float64.

    ``Conv(k x k, stride 2, pad) [-> BN -> ReLU6 -> Conv1x1]`` to 4
    channels, sigmoid, then pixel shuffle: index channel ``2 * i + j`` of
    low-res pixel (y, x) is output pixel (2y + i, 2x + j). BN uses this
    batch's statistics (biased variance) in training mode, the running ones
    in eval mode.
    """
    nonlinear, context = layer.use_nonlinear, layer.use_context
    k, pad = (4, 1) if context else (2, 0)
    g = guide.tolist()
    n, c, big_h, big_w = guide.shape
    h, w = big_h // 2, big_w // 2
    w1 = layer.indexnet[0].weight.tolist()
    mid = len(w1)

    def conv(b, o, y, x):
        total = 0.0
        for ci in range(c):
            for a in range(k):
                for bb in range(k):
                    row, col = 2 * y + a - pad, 2 * x + bb - pad
                    if 0 <= row < big_h and 0 <= col < big_w:
                        total += w1[o][ci][a][bb] * g[b][ci][row][col]
        return total

    z = [[[[conv(b, o, y, x) for x in range(w)] for y in range(h)]
          for o in range(mid)] for b in range(n)]
    if nonlinear:
        bn = layer.indexnet[1]
        gamma, beta = bn.weight.tolist(), bn.bias.tolist()
        for o in range(mid):
            values = [z[b][o][y][x] for b in range(n) for y in range(h)
                      for x in range(w)]
            if layer.training:
                mean = sum(values) / len(values)
                var = sum((v - mean)**2 for v in values) / len(values)
            else:
                mean = float(bn.running_mean[o])
                var = float(bn.running_var[o])
            for b in range(n):
                for y in range(h):
                    for x in range(w):
                        v = (z[b][o][y][x] - mean) / math.sqrt(var + bn.eps)
                        v = v * gamma[o] + beta[o]
                        z[b][o][y][x] = min(max(v, 0.0), 6.0)
        w2 = layer.indexnet[3].weight.tolist()
        z = [[[[sum(w2[q][o][0][0] * z[b][o][y][x] for o in range(mid))
                for x in range(w)] for y in range(h)] for q in range(4)]
             for b in range(n)]
    out = torch.zeros(n, 1, big_h, big_w, dtype=torch.float64)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                for i in range(2):
                    for j in range(2):
                        v = 1 / (1 + math.exp(-z[b][2 * i + j][y][x]))
                        out[b, 0, 2 * y + i, 2 * x + j] = v
    return out


def loop_indexnet(layer, x, guide):
    """``out[b, c, Y, X] = index[b, Y, X] * x[b, c, Y // 2, X // 2]``."""
    index = loop_index_map(layer, guide)
    n, c, h, w = x.shape
    out = torch.zeros(n, c, 2 * h, 2 * w, dtype=torch.float64)
    for b in range(n):
        for ch in range(c):
            for yy in range(2 * h):
                for xx in range(2 * w):
                    out[b, ch, yy, xx] = (index[b, 0, yy, xx] *
                                          x[b, ch, yy // 2, xx // 2])
    return out


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('use_nonlinear,use_context', VARIANTS)
def test_indexnet_matches_loop_reference(use_nonlinear, use_context,
                                         training):
    layer = make(3, guide_channels=4, use_nonlinear=use_nonlinear,
                 use_context=use_context).train(training)
    x, guide = pair(c=3, c_g=4)
    expected = loop_indexnet(layer, x, guide)
    out = layer(x, guide)
    assert out.shape == (2, 3, 10, 14) and out.dtype == torch.float64
    torch.testing.assert_close(out, expected)


def test_indexnet_output_is_index_map_times_nearest_input():
    layer = make(4).train()
    x, guide = pair()
    index = layer.index_map(guide)
    assert index.shape == (2, 1, 10, 14)
    assert bool(((index > 0) & (index < 1)).all())
    torch.testing.assert_close(index, loop_index_map(layer, guide))
    nearest = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(layer(x, guide), index * nearest)


def test_indexnet_guide_changes_output():
    layer = make(4).eval()
    x, guide = pair()
    other = guide.clone()
    other[:, :, :2, :2] += 1.0  # reaches the index of low-res pixel (0, 0)
    diff = (layer(x, guide) - layer(x, other)).abs()
    # Guide rows / columns 0-1 are read by low-res pixels 0 and 1 only
    # (4 x 4 windows at stride 2, padding 1): output rows / columns 0-3.
    assert diff[:, :, :4, :4].amax() > 1e-3
    assert diff[:, :, 4:].amax() == 0 and diff[:, :, :, 4:].amax() == 0


def test_indexnet_gradcheck():
    layer = make(2).train()
    x, guide = pair(c=2, h=2, w=3)
    x.requires_grad_()
    guide.requires_grad_()
    params = {k: v.detach().clone().requires_grad_()
              for k, v in layer.named_parameters()}

    def fn(x, guide, *values):
        return functional_call(layer, dict(zip(params, values)), (x, guide))

    assert torch.autograd.gradcheck(fn, (x, guide, *params.values()))


def test_indexnet_every_parameter_gets_a_gradient():
    layer = make(4, dtype=torch.float32).train()
    x, guide = pair(dtype=torch.float32)
    x.requires_grad_()
    guide.requires_grad_()
    out = layer(x, guide)
    assert out.dtype == torch.float32
    out.backward(torch.randn_like(out))
    for name, p in [('x', x), ('guide', guide), *layer.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('kwargs,count', [
    (dict(), 2_100_224),  # the paper's HIN: 32 C**2 + 12 C
    (dict(use_context=False), 527_360),
    (dict(use_nonlinear=False), 16_384),
    (dict(use_nonlinear=False, use_context=False), 4_096),
])
def test_indexnet_parameter_count_per_stage_at_256(kwargs, count):
    layer = IndexNet(256, **kwargs)
    assert sum(p.numel() for p in layer.parameters()) == count


def test_indexnet_parameter_counts_of_the_papers_columns():
    stage = sum(p.numel() for p in IndexNet(256).parameters())
    # Panoptic FPN (3 stages), Faster R-CNN (4), SegFormer-B1 (6).
    assert [stage * n for n in (3, 4, 6)] == [6_300_672, 8_400_896,
                                              12_601_344]


def test_indexnet_init_is_the_authors():
    layer = IndexNet(32)
    layer.indexnet[1].weight.data.fill_(3.0)
    layer.init_weights()
    conv = layer.indexnet[0].weight.detach()  # N(0, 2 / (4 * 4 * 64))
    assert abs(float(conv.std()) / math.sqrt(2 / (16 * 64)) - 1) < 0.05
    assert abs(float(conv.mean())) < 0.01
    head = layer.indexnet[3].weight.detach()  # N(0, 2 / 4)
    assert abs(float(head.std()) / math.sqrt(2 / 4) - 1) < 0.15
    assert bool((layer.indexnet[1].weight == 1).all())
    assert bool((layer.indexnet[1].bias == 0).all())


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(scale_factor=3), ValueError, 'scale_factor=3'),
    (dict(scale_factor=0), ValueError, 'scale_factor must be >= 1, got 0'),
    (dict(in_channels=0), ValueError, 'in_channels must be >= 1, got 0'),
    (dict(guide_channels=2.5), ValueError, 'guide_channels must be an int'),
    (dict(use_nonlinear=1), TypeError, 'use_nonlinear must be a bool'),
    (dict(use_context='yes'), TypeError, 'use_context must be a bool'),
])
def test_indexnet_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        IndexNet(**{'in_channels': 4, **kwargs})


@pytest.mark.parametrize('guide_shape', [(2, 4, 10, 13), (2, 4, 9, 14),
                                         (2, 5, 10, 14), (1, 4, 10, 14)])
def test_indexnet_rejects_a_wrong_guide(guide_shape):
    layer = IndexNet(4)
    with pytest.raises(ValueError, match='expects a guide of shape'):
        layer(torch.rand(2, 4, 5, 7), torch.rand(guide_shape))
    with pytest.raises(TypeError, match='needs a guide tensor'):
        layer(torch.rand(2, 4, 5, 7), None)


def test_indexnet_is_a_registered_guided_upsampler():
    assert 'IndexNet' in list_upsamplers()
    layer = build_upsampler('IndexNet', 16)
    assert isinstance(layer, IndexNet) and needs_guide(layer)
    assert (layer.in_channels, layer.guide_channels, layer.scale_factor,
            layer.use_nonlinear, layer.use_context) == (16, 16, 2, True, True)
    other = MODELS.build(
        dict(type='IndexNet', in_channels=8, guide_channels=4,
             use_context=False))
    assert other.indexnet[0].kernel_size == (2, 2)
    assert 'use_context=False' in repr(other)


@pytest.mark.filterwarnings('ignore::DeprecationWarning',
                            'ignore::FutureWarning',
                            'ignore::torch.jit.TracerWarning')
def test_indexnet_exports_to_onnx_with_dynamic_sizes(tmp_path):
    ort = pytest.importorskip('onnxruntime')
    layer = make(4, dtype=torch.float32).eval()
    x, guide = pair(n=1, h=4, w=6, dtype=torch.float32)
    path = str(tmp_path / 'indexnet.onnx')
    axes = {name: {0: 'n', 2: f'{name}_h', 3: f'{name}_w'}
            for name in ('x', 'guide', 'out')}
    torch.onnx.export(layer, (x, guide), path, opset_version=17,
                      input_names=['x', 'guide'], output_names=['out'],
                      dynamic_axes=axes, **exporter_kwargs(dynamo=False))
    x, guide = pair(n=2, h=5, w=7, dtype=torch.float32, seed=3)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    (out, ) = session.run(None, dict(x=x.numpy(), guide=guide.numpy()))
    with torch.no_grad():
        expected = layer(x, guide)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=0,
                               atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize('training', [True, False])
def test_indexnet_cuda_matches_cpu(training):
    check_cuda_matches_cpu(lambda: IndexNet(16).train(training))
