# Copyright (c) mmdysample contributors. All rights reserved.
"""SAPA-B (registered as ``'SAPA-B'``): against a loop reference of the
spec's formula, the properties of its kernels, counts, errors and export."""
import math

import pytest
import torch
from guided_checks import (check_cuda_matches_cpu, check_every_gradient,
                           check_kernels_export,
                           check_kernels_partition_unity, gradcheck_layer,
                           maps, randomise)
from test_carafe import loop_carafe

from mmdysample.models import build_upsampler, list_upsamplers, needs_guide
from mmdysample.models.upsamplers.sapa import SAPA, local_similarity

SMALL = dict(in_channels=8, guide_channels=12, embedding_dim=6, norm_groups=4)


def loop_group_norm(z, groups, weight, bias, eps=1e-5):
    """GroupNorm of one map ``z[c][y][x]`` (nested lists)."""
    c = len(z)
    size = c // groups
    out = [[row[:] for row in plane] for plane in z]
    for g in range(groups):
        values = [v for ch in range(g * size, (g + 1) * size)
                  for row in z[ch] for v in row]
        mean = sum(values) / len(values)
        var = sum((v - mean)**2 for v in values) / len(values)
        for ch in range(g * size, (g + 1) * size):
            for y, row in enumerate(z[ch]):
                for x, v in enumerate(row):
                    out[ch][y][x] = ((v - mean) / math.sqrt(var + eps) *
                                     weight[ch] + bias[ch])
    return out


def loop_conv1x1(z, conv):
    weight = [[row[0][0] for row in out] for out in conv.weight.tolist()]
    bias = conv.bias.tolist() if conv.bias is not None else [0.0] * len(
        weight)
    h, w = len(z[0]), len(z[0][0])
    return [[[bias[o] + sum(weight[o][c] * z[c][y][x] for c in range(len(z)))
              for x in range(w)] for y in range(h)]
            for o in range(len(weight))]


def loop_sapa(layer, x, guide):
    """The spec's SAPA-B, one output value at a time, in float64.

    q = 1x1(GroupNorm(guide)), k = 1x1(GroupNorm(x));
    score_j(Y, X) = sum_e q[e, Y, X] * k[e, Y // s + dy_j, X // s + dx_j],
    0 for a neighbour outside the map (which stays in the softmax), no
    1 / sqrt(E); out = CARAFE reassembly of the raw x with softmax_j(score).
    """
    s, k = layer.scale_factor, layer.up_kernel
    r = k // 2
    n, _, h, w = x.shape
    masks = torch.zeros(n, k * k, s * h, s * w, dtype=torch.float64)
    for b in range(n):
        yn = loop_group_norm(guide[b].tolist(), layer.norm_groups,
                             layer.norm_y.weight.tolist(),
                             layer.norm_y.bias.tolist())
        xn = loop_group_norm(x[b].tolist(), layer.norm_groups,
                             layer.norm_x.weight.tolist(),
                             layer.norm_x.bias.tolist())
        q, key = loop_conv1x1(yn, layer.q), loop_conv1x1(xn, layer.k)
        for i in range(s * h):
            for j in range(s * w):
                scores = []
                for dy in range(k):
                    for dx in range(k):
                        y, xx = i // s + dy - r, j // s + dx - r
                        inside = 0 <= y < h and 0 <= xx < w
                        scores.append(
                            sum(q[e][i][j] * key[e][y][xx]
                                for e in range(len(q))) if inside else 0.0)
                top = max(scores)
                exps = [math.exp(v - top) for v in scores]
                for m in range(k * k):
                    masks[b, m, i, j] = exps[m] / sum(exps)
    return loop_carafe(x, masks, k, 1, s), masks


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(scale_factor=3),
    dict(up_kernel=3, qkv_bias=False),
], ids=['paper', 's3', 'k3-nobias'])
def test_sapa_matches_loop_reference(kwargs):
    layer = randomise(SAPA(**{**SMALL, **kwargs}).double())
    h, w = (4, 5) if layer.scale_factor == 3 else (5, 7)
    # A guide off zero mean: the GroupNorm must remove the offset.
    x, guide = maps(layer, h=h, w=w, offset=2.0)
    expected, masks = loop_sapa(layer, x, guide)
    with torch.no_grad():
        torch.testing.assert_close(layer.kernels(x, guide), masks)
        out = layer(x, guide)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


def test_local_similarity_scores_outside_neighbours_zero():
    query = torch.randn(1, 3, 4, 6, dtype=torch.float64)
    key = torch.randn(1, 3, 2, 3, dtype=torch.float64)
    scores = local_similarity(query, key, 3, 2)
    # output pixel (0, 0) comes from key pixel (0, 0): its top row and left
    # column of neighbours lie outside the map
    for m, (dy, dx) in enumerate((a, b) for a in range(3) for b in range(3)):
        if dy == 0 or dx == 0:
            assert scores[0, m, 0, 0] == 0
        else:
            torch.testing.assert_close(
                scores[0, m, 0, 0], (query[0, :, 0, 0] *
                                     key[0, :, dy - 1, dx - 1]).sum())


def test_sapa_gradcheck():
    layer = randomise(
        SAPA(2, guide_channels=2, embedding_dim=2, up_kernel=3,
             norm_groups=2).double())
    gradcheck_layer(layer)


@pytest.mark.parametrize('s', [2, 3])
def test_sapa_kernels_sum_to_one_and_keep_a_constant(s):
    layer = randomise(SAPA(**SMALL, scale_factor=s).double())
    # a constant x: its normalised keys are the GroupNorm's bias
    check_kernels_partition_unity(layer, offset=2.0)


def test_sapa_reassembles_the_raw_input():
    # Scaling x leaves its normalised keys, and so the kernels, unchanged:
    # the output scales with x only if the raw x is reassembled.
    layer = randomise(SAPA(**SMALL).double())
    layer.norm_x.eps = 0.0  # makes GroupNorm exactly scale-invariant
    x, guide = maps(layer)
    with torch.no_grad():
        torch.testing.assert_close(layer(5 * x, guide), 5 * layer(x, guide))


def test_sapa_guide_changes_output():
    layer = randomise(SAPA(8, embedding_dim=5, norm_groups=4))
    x, guide = maps(layer, dtype=torch.float32)
    with torch.no_grad():
        out = layer(x, guide)
        other = layer(x, torch.randn_like(guide))
    assert not torch.allclose(out, other, atol=1e-3)


def test_sapa_parameter_counts_at_256_channels():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # 2 * 2C (GroupNorms) + 2 * (32C + 32), the authors' constructor
    assert count(SAPA(256)) == 17472
    assert count(build_upsampler('SAPA-B', 256)) == 17472
    assert count(SAPA(256, qkv_bias=False)) == 17472 - 64
    assert count(SAPA(256, guide_channels=128)) == 17472 - 2 * 128 - 32 * 128


def test_sapa_every_parameter_gets_a_gradient():
    # Small maps: a constant shift of every key (GroupNorm / key biases)
    # only moves the kernels where a window reaches outside the map.
    check_every_gradient(randomise(SAPA(**SMALL)))


def test_sapa_init_and_state_dict_keys_are_the_authors():
    layer = SAPA(64)
    assert list(layer.state_dict()) == [
        'norm_y.weight', 'norm_y.bias', 'norm_x.weight', 'norm_x.bias',
        'q.weight', 'q.bias', 'k.weight', 'k.bias'
    ]
    for conv in (layer.q, layer.k):
        assert 0.015 < conv.weight.std() < 0.025  # N(0, 0.02)
        assert torch.equal(conv.bias, torch.zeros(32))
    for norm in (layer.norm_y, layer.norm_x):
        assert norm.num_groups == 32
        assert torch.equal(norm.weight, torch.ones(64))
        assert torch.equal(norm.bias, torch.zeros(64))


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(up_kernel=4), ValueError, 'up_kernel must be odd, got 4'),
    (dict(embedding_dim=0), ValueError, 'embedding_dim must be >= 1'),
    (dict(norm_groups=0), ValueError, 'norm_groups must be >= 1'),
    (dict(norm_groups=3), ValueError,
     r'in_channels \(8\) must be divisible by norm_groups \(3\)'),
    (dict(norm_groups=4, guide_channels=6), ValueError,
     r'guide_channels \(6\) must be divisible by norm_groups \(4\)'),
    (dict(norm_groups=4, qkv_bias='yes'), TypeError,
     'qkv_bias must be a bool'),
    (dict(norm_groups=4, scale_factor=1.5), ValueError,
     'scale_factor must be an integer'),
])
def test_sapa_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SAPA(8, **kwargs)


def test_sapa_rejects_a_guide_that_does_not_fit():
    layer = SAPA(8, guide_channels=12, norm_groups=4)
    x = torch.rand(1, 8, 5, 7)
    for shape in [(1, 12, 11, 14), (1, 8, 10, 14), (2, 12, 10, 14)]:
        with pytest.raises(ValueError,
                           match=r'guide of shape \(1, 12, 10, 14'):
            layer(x, torch.rand(shape))
    with pytest.raises(TypeError, match='needs a guide tensor'):
        layer(x, None)


def test_sapa_b_is_a_registered_guided_upsampler():
    assert 'SAPA-B' in list_upsamplers()
    layer = build_upsampler('SAPA-B', 32)
    assert isinstance(layer, SAPA) and needs_guide(layer)
    assert (layer.in_channels, layer.guide_channels, layer.scale_factor,
            layer.up_kernel, layer.embedding_dim,
            layer.norm_groups) == (32, 32, 2, 5, 32, 32)
    # the paper's 32 groups do not divide 16 channels: said, not guessed
    with pytest.raises(ValueError, match='divisible by norm_groups'):
        build_upsampler('SAPA-B', 16)
    layer = build_upsampler(dict(type='SAPA-B', norm_groups=8), 16, 3)
    assert layer(torch.rand(1, 16, 3, 4),
                 torch.rand(1, 16, 9, 12)).shape == (1, 16, 9, 12)
    assert 'norm_groups=8' in repr(layer)


def test_sapa_runs_in_float32_and_on_an_empty_batch():
    layer = SAPA(8, norm_groups=4)
    x, guide = maps(layer, dtype=torch.float32)
    assert layer(x, guide).dtype == torch.float32
    assert layer(x[:0], guide[:0]).shape == (0, 8, 10, 14)


def test_sapa_kernels_export_to_onnx_with_dynamic_sizes(tmp_path):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    check_kernels_export(
        randomise(SAPA(**SMALL)), str(tmp_path / 'sapa.onnx'))


@pytest.mark.gpu
def test_sapa_cuda_matches_cpu():
    check_cuda_matches_cpu(lambda: SAPA(16, norm_groups=8))
