# Copyright (c) mmdysample contributors. All rights reserved.
"""FADE (registered as ``'FADE'``): against a loop reference of the spec's
formula, the properties of its kernels, counts, errors and export."""
import math

import pytest
import torch
from guided_checks import (check_cuda_matches_cpu, check_every_gradient,
                           check_kernels_export,
                           check_kernels_partition_unity, gradcheck_layer,
                           maps, randomise)
from test_carafe import loop_carafe

from mmdysample.models import build_upsampler, list_upsamplers, needs_guide
from mmdysample.models.upsamplers.fade import FADE

SMALL = dict(in_channels=8, guide_channels=6, embedding_dim=5)


def loop_conv(z, weight, bias):
    """'Same' 2-D convolution of one map ``z[c][y][x]`` (nested lists)."""
    out_c, in_c, kh, kw = len(weight), len(z), len(weight[0][0]), len(
        weight[0][0][0])
    h, w = len(z[0]), len(z[0][0])
    out = [[[0.0] * w for _ in range(h)] for _ in range(out_c)]
    for o in range(out_c):
        for y in range(h):
            for x in range(w):
                total = bias[o] if bias is not None else 0.0
                for c in range(in_c):
                    for a in range(kh):
                        for b in range(kw):
                            yy, xx = y + a - kh // 2, x + b - kw // 2
                            if 0 <= yy < h and 0 <= xx < w:
                                total += weight[o][c][a][b] * z[c][yy][xx]
                out[o][y][x] = total
    return out


def loop_fade(layer, x, guide):
    """The spec's FADE, one output value at a time, in float64.

    w = softmax_j(E(enc)[j, Y, X] + E(dec)[j, Y // s, X // s]) with enc,
    dec the guide's and x's 1x1 embeddings and E the shared 3x3 encoder;
    out = CARAFE reassembly of x with w; with the gate, out = g * guide +
    (1 - g) * out, g = sigmoid(1x1 conv of x at (Y // s, X // s)).
    """
    s, k = layer.scale_factor, layer.up_kernel

    def params(conv):
        bias = None if conv.bias is None else conv.bias.tolist()
        return conv.weight.tolist(), bias

    n, _, h, w = x.shape
    masks = torch.zeros(n, k * k, s * h, s * w, dtype=torch.float64)
    for b in range(n):
        enc = loop_conv(guide[b].tolist(), *params(layer.compressor_en))
        dec = loop_conv(x[b].tolist(), *params(layer.compressor_de))
        hr = loop_conv(enc, *params(layer.content_encoder))
        lr = loop_conv(dec, *params(layer.content_encoder))
        for i in range(s * h):
            for j in range(s * w):
                logits = [hr[m][i][j] + lr[m][i // s][j // s]
                          for m in range(k * k)]
                top = max(logits)
                exps = [math.exp(v - top) for v in logits]
                for m in range(k * k):
                    masks[b, m, i, j] = exps[m] / sum(exps)
    out = loop_carafe(x, masks, k, 1, s)
    if layer.gating:
        for b in range(n):
            gate = loop_conv(x[b].tolist(), *params(layer.gate_generator))
            for i in range(s * h):
                for j in range(s * w):
                    g = 1 / (1 + math.exp(-gate[0][i // s][j // s]))
                    out[b, :, i, j] = (g * guide[b, :, i, j] +
                                       (1 - g) * out[b, :, i, j])
    return out, masks


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(scale_factor=3),
    dict(up_kernel=3, encoder_kernel=5),
    dict(gating=True, guide_channels=8),
], ids=['paper', 's3', 'k3-enc5', 'gating'])
def test_fade_matches_loop_reference(kwargs):
    layer = randomise(FADE(**{**SMALL, **kwargs}).double())
    h, w = (4, 5) if layer.scale_factor == 3 else (5, 7)
    x, guide = maps(layer, h=h, w=w)
    expected, masks = loop_fade(layer, x, guide)
    with torch.no_grad():
        torch.testing.assert_close(layer.kernels(x, guide), masks)
        out = layer(x, guide)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('gating', [False, True])
def test_fade_gradcheck(gating):
    layer = randomise(
        FADE(2, guide_channels=2, embedding_dim=2, up_kernel=3,
             gating=gating).double())
    gradcheck_layer(layer)


@pytest.mark.parametrize('s', [2, 3])
def test_fade_kernels_sum_to_one_and_keep_a_constant(s):
    layer = randomise(FADE(**SMALL, scale_factor=s).double())
    check_kernels_partition_unity(layer)


@pytest.mark.parametrize('gating', [False, True])
def test_fade_guide_changes_output(gating):
    layer = randomise(FADE(8, embedding_dim=5, gating=gating))
    x, guide = maps(layer, dtype=torch.float32)
    with torch.no_grad():
        out = layer(x, guide)
        other = layer(x, guide + torch.randn_like(guide))
    assert not torch.allclose(out, other, atol=1e-3)


def test_fade_parameter_counts_at_256_channels():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # (64C + 64) + 64C + (64 * 25 * 9 + 25), the authors' constructor
    assert count(FADE(256)) == 47257
    assert count(build_upsampler('FADE', 256)) == 47257
    assert count(FADE(256, gating=True)) == 47257 + 257
    assert count(FADE(256, guide_channels=128)) == 47257 - 64 * 128
    # per-stage x3 (Panoptic FPN), x6 (SegFormer-B1): the paper's 0.1M, 0.3M
    assert (3 * 47257, 6 * 47257) == (141771, 283542)


@pytest.mark.parametrize('gating', [False, True])
def test_fade_every_parameter_gets_a_gradient(gating):
    check_every_gradient(
        randomise(FADE(8, embedding_dim=5, gating=gating)))


def test_fade_init_is_the_authors():
    layer = FADE(16, gating=True)
    for conv in (layer.compressor_en, layer.compressor_de,
                 layer.content_encoder, layer.gate_generator):
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.std() > bound / 4  # xavier, not N(0, 0.001)
        if conv.bias is not None:
            assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    assert layer.compressor_de.bias is None


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(up_kernel=4), ValueError, 'up_kernel must be odd, got 4'),
    (dict(encoder_kernel=2), ValueError, 'encoder_kernel must be odd'),
    (dict(embedding_dim=0), ValueError, 'embedding_dim must be >= 1'),
    (dict(scale_factor=0), ValueError, 'scale_factor must be >= 1'),
    (dict(guide_channels=0), ValueError, 'guide_channels must be >= 1'),
    (dict(gating=1), TypeError, 'gating must be a bool'),
    (dict(gating=True, guide_channels=4), ValueError,
     'guide_channels == in_channels; got guide_channels=4, in_channels=8'),
])
def test_fade_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FADE(8, **kwargs)


def test_fade_rejects_a_guide_that_does_not_fit():
    layer = FADE(8, guide_channels=6)
    x = torch.rand(1, 8, 5, 7)
    for shape in [(1, 6, 10, 13), (1, 8, 10, 14), (2, 6, 10, 14)]:
        with pytest.raises(ValueError, match=r'guide of shape \(1, 6, 10, 14'):
            layer(x, torch.rand(shape))
    with pytest.raises(TypeError, match='needs a guide tensor'):
        layer(x, None)


def test_fade_is_a_registered_guided_upsampler():
    assert 'FADE' in list_upsamplers()
    layer = build_upsampler('FADE', 16)
    assert isinstance(layer, FADE) and needs_guide(layer)
    assert (layer.in_channels, layer.guide_channels, layer.scale_factor,
            layer.up_kernel, layer.gating) == (16, 16, 2, 5, False)
    layer = build_upsampler(dict(type='FADE', gating=True), 16, 3)
    assert layer(torch.rand(1, 16, 3, 4),
                 torch.rand(1, 16, 9, 12)).shape == (1, 16, 9, 12)
    assert 'gating=True' in repr(layer)


def test_fade_runs_in_float32_and_on_an_empty_batch():
    layer = FADE(8)
    x, guide = maps(layer, dtype=torch.float32)
    assert layer(x, guide).dtype == torch.float32
    assert layer(x[:0], guide[:0]).shape == (0, 8, 10, 14)


def test_fade_kernels_export_to_onnx_with_dynamic_sizes(tmp_path):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    check_kernels_export(
        randomise(FADE(8, embedding_dim=5)), str(tmp_path / 'fade.onnx'))


@pytest.mark.gpu
@pytest.mark.parametrize('gating', [False, True])
def test_fade_cuda_matches_cpu(gating):
    check_cuda_matches_cpu(lambda: FADE(16, gating=gating))
