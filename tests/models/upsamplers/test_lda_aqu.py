# Copyright (c) mmdysample contributors. All rights reserved.
"""LDA-AQU (registered as ``'LDA-AQU'``): against a loop reference of the
authors' forward, its init, the attention's properties, counts, errors,
export and devices."""
import math

import pytest
import torch
from guided_checks import randomise

from mmdysample.models import build_upsampler, list_upsamplers, needs_guide
from mmdysample.models.upsamplers.lda_aqu import LDAAQU, window_offsets

SMALL = dict(in_channels=8, reduction=2, groups=2)


def loop_layer_norm(z, norm):
    """LayerNorm over the channels of ``z[c][y][x]`` (nested lists)."""
    c, h, w = len(z), len(z[0]), len(z[0][0])
    weight, bias = norm.weight.tolist(), norm.bias.tolist()
    out = [[[0.0] * w for _ in range(h)] for _ in range(c)]
    for y in range(h):
        for x in range(w):
            v = [z[ch][y][x] for ch in range(c)]
            mean = sum(v) / c
            var = sum((t - mean)**2 for t in v) / c
            for ch in range(c):
                out[ch][y][x] = ((v[ch] - mean) / math.sqrt(var + norm.eps) *
                                 weight[ch] + bias[ch])
    return out


def loop_project(z, conv):
    weight = [[row[0][0] for row in out] for out in conv.weight.tolist()]
    h, w = len(z[0]), len(z[0][0])
    return [[[sum(weight[o][c] * z[c][y][x] for c in range(len(z)))
              for x in range(w)] for y in range(h)]
            for o in range(len(weight))]


def loop_bilinear(plane, py, px, zeros):
    """Bilinear value at pixel coordinates (py, px); outside the map,
    zeros (``zeros=True``) or impossible (the corner-aligned resize)."""
    h, w = len(plane), len(plane[0])
    y0, x0 = math.floor(py), math.floor(px)
    total = 0.0
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if wy * wx == 0:
                continue
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * plane[yy][xx]
            else:
                assert zeros, (yy, xx)
    return total


def loop_lda_aqu(layer, x):
    """The authors' LDA-AQU forward, one value at a time, in float64.

    The offset convolution of the queries runs as the layer's own module
    (depth-wise conv, LayerNorm, GELU, conv); everything else (LayerNorm,
    projections, the corner-aligned query resize, the sampling points in
    output pixels, the zero-padded reads, the attention) is written out.
    """
    n, c, h, w = x.shape
    s, g, heads = layer.scale_factor, layer.groups, layer.num_heads
    oh, ow = s * h, s * w
    k = layer.k_u
    kk = k * k
    dim = layer.dim
    out = torch.zeros(n, c, oh, ow, dtype=torch.float64)
    for b in range(n):
        z = loop_layer_norm(x[b].tolist(), layer.layer_norm)
        q_lr, k_lr = loop_project(z, layer.proj_q), loop_project(
            z, layer.proj_k)
        # bilinear, align_corners=True: output i reads i (H - 1) / (sH - 1)
        q = [[[
            loop_bilinear(q_lr[d], i * (h - 1) / (oh - 1),
                          j * (w - 1) / (ow - 1), False) for j in range(ow)
        ] for i in range(oh)] for d in range(dim)]
        q_t = torch.tensor(q, dtype=torch.float64)
        with torch.no_grad():
            raw = layer.conv_offset(q_t.view(g, dim // g, oh, ow))
        raw = raw.tanh() * layer.offset_range  # (G, 2 K, sH, sW)
        values = x[b].tolist()
        bias = (layer.relative_position_bias_table.detach().view(heads, kk, -1)
                if layer.rpb else None)
        for i in range(oh):
            for j in range(ow):
                keys = [[0.0] * dim for _ in range(kk)]
                vals = [[0.0] * c for _ in range(kk)]
                for gg in range(g):
                    for m in range(kk):
                        a, bb = divmod(m, k)
                        dy = float(raw[gg, 2 * m, i, j]) + a - k // 2
                        dx = float(raw[gg, 2 * m + 1, i, j]) + bb - k // 2
                        py = (i + dy) * (h - 1) / (oh - 1)
                        px = (j + dx) * (w - 1) / (ow - 1)
                        for d in range(gg * dim // g, (gg + 1) * dim // g):
                            keys[m][d] = loop_bilinear(k_lr[d], py, px, True)
                        for ch in range(gg * c // g, (gg + 1) * c // g):
                            vals[m][ch] = loop_bilinear(
                                values[ch], py, px, True)
                hd, hc = dim // heads, c // heads
                for head in range(heads):
                    scores = []
                    for m in range(kk):
                        score = 0.0
                        for d in range(hd):
                            key = keys[m][head * hd + d]
                            if bias is not None:
                                key += float(bias[head, m, d])
                            score += q[head * hd + d][i][j] * key
                        scores.append(score / math.sqrt(hd))
                    top = max(scores)
                    e = [math.exp(v - top) for v in scores]
                    for ch in range(head * hc, (head + 1) * hc):
                        out[b, ch, i, j] = sum(
                            e[m] * vals[m][ch] for m in range(kk)) / sum(e)
    return out


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(num_heads=2, rpb=False),
    dict(groups=1, k_u=5, k_e=1, offset_range=2.5),
    dict(scale_factor=3),
], ids=['authors', 'heads2-no-rpb', 'g1-k5', 's3'])
def test_lda_aqu_matches_loop_reference(kwargs):
    layer = randomise(LDAAQU(**{**SMALL, **kwargs}).double(), scale=0.3)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 3, 4, generator=gen, dtype=torch.float64)
    expected = loop_lda_aqu(layer, x)
    with torch.no_grad():
        out = layer(x)
    s = layer.scale_factor
    assert out.shape == expected.shape == (2, 8, 3 * s, 4 * s)
    torch.testing.assert_close(out, expected)


def test_window_offsets_layout():
    window = window_offsets(3).view(9, 2)
    # point a * 3 + b sits at row a - 1, column b - 1
    assert window[1].tolist() == [-1.0, 0.0]
    assert window[5].tolist() == [0.0, 1.0]
    assert window[6].tolist() == [1.0, -1.0]


def test_lda_aqu_starts_on_the_regular_window():
    """The last offset convolution starts at zero: every query reads the
    regular window around itself, so a constant map stays constant where
    the window lies inside it, and the attention is a convex
    combination."""
    layer = LDAAQU(**SMALL).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 6, 7, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        q = torch.randn(1, 4, 12, 14, generator=gen, dtype=torch.float64)
        pos = layer.positions(q)
        assert torch.equal(pos, window_offsets(3).double().expand_as(pos))
        out = layer(torch.full_like(x, 3.0))
        torch.testing.assert_close(out[..., 1:-1, 1:-1],
                                   torch.full_like(out[..., 1:-1, 1:-1], 3.0))
        # The corner reads zeros outside the map.
        assert (out[..., 0, 0] < 3.0).all()
        out = layer(x)
    lo = x.amin(dim=(2, 3), keepdim=True).clamp(max=0)
    hi = x.amax(dim=(2, 3), keepdim=True).clamp(min=0)
    assert (out >= lo - 1e-9).all() and (out <= hi + 1e-9).all()


def test_lda_aqu_offsets_are_bounded_by_the_range():
    layer = randomise(LDAAQU(**SMALL, offset_range=2.0).double(), scale=3.0)
    q = torch.randn(2, 4, 6, 8, dtype=torch.float64)
    with torch.no_grad():
        moved = layer.positions(q) - window_offsets(3).double()
    assert moved.abs().max() <= 2.0
    assert moved.abs().max() > 1.5  # the tanh saturates: the range is used


def test_lda_aqu_gradcheck():
    layer = randomise(LDAAQU(4, reduction=2, groups=2).double(), scale=0.3)
    x = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x, ))
    names = [name for name, _ in layer.named_parameters()]

    def fn(x, *weights):
        return torch.func.functional_call(layer, dict(zip(names, weights)),
                                          (x, ))

    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(fn, (x, *weights), fast_mode=True)


def test_lda_aqu_every_parameter_gets_a_gradient():
    layer = randomise(LDAAQU(**SMALL), scale=0.3)
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    out = layer(x)
    out.backward(torch.randn_like(out))
    for name, param in [('x', x), *layer.named_parameters()]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_lda_aqu_parameter_counts_at_256_channels():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # proj_q / proj_k 2 x 16,384, depth-wise 288, LayerNorms 64 + 512,
    # offset conv 5,202, position bias 576: the authors' module
    assert count(LDAAQU(256)) == 39410
    assert count(build_upsampler('LDA-AQU', 256)) == 39410
    assert count(LDAAQU(256, rpb=False)) == 39410 - 576
    # three top-down stages in mmdet's FPN; four in the authors' neck
    assert (3 * 39410, 4 * 39410) == (118230, 157640)


def test_lda_aqu_init_is_the_authors():
    layer = LDAAQU(64)
    last = layer.conv_offset[-1]
    assert not last.weight.any() and not last.bias.any()
    for conv in (layer.proj_q, layer.proj_k, layer.conv_offset[0]):
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.std() > bound / 4
        assert conv.bias is None
    table = layer.relative_position_bias_table
    assert table.shape == (1, 1, 1, 9, 16)
    # N(0, 0.02) truncated at +-2 (absolute), as timm's trunc_normal_
    assert 0.01 < table.std() < 0.03 and table.abs().max() < 0.15
    assert 'window' not in layer.state_dict()


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(scale_factor=1), ValueError, 'scale_factor must be >= 2'),
    (dict(k_u=4), ValueError, 'k_u must be odd, got 4'),
    (dict(k_e=2), ValueError, 'k_e must be odd, got 2'),
    (dict(reduction=3), ValueError,
     r'in_channels \(8\) must be divisible by reduction \(3\)'),
    (dict(groups=3), ValueError, r'groups \(3\) must divide in_channels'),
    (dict(num_heads=8), ValueError, r'num_heads \(8\) must divide'),
    (dict(offset_range=0), ValueError, 'offset_range must be a positive'),
    (dict(offset_range='11'), ValueError, 'offset_range must be a positive'),
    (dict(rpb=1), TypeError, 'rpb must be a bool'),
])
def test_lda_aqu_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LDAAQU(8, **{'reduction': 2, **kwargs})


def test_lda_aqu_rejects_a_wrong_input():
    layer = LDAAQU(**SMALL)
    for shape in [(1, 6, 5, 7), (8, 5, 7)]:
        with pytest.raises(ValueError, match=r'expects x of shape \(N, 8'):
            layer(torch.rand(shape))


def test_lda_aqu_is_a_registered_upsampler_without_a_guide():
    assert 'LDA-AQU' in list_upsamplers(guided=False)
    layer = build_upsampler('LDA-AQU', 16, 2)
    assert isinstance(layer, LDAAQU) and not needs_guide(layer)
    assert (layer.in_channels, layer.scale_factor, layer.dim) == (16, 2, 4)
    layer = build_upsampler(dict(type='LDA-AQU', groups=1), 16, 3)
    assert layer(torch.rand(1, 16, 3, 4)).shape == (1, 16, 9, 12)
    assert 'groups=1' in repr(layer)


def test_lda_aqu_runs_in_float32_and_on_an_empty_batch():
    layer = LDAAQU(**SMALL)
    x = torch.rand(2, 8, 5, 7)
    assert layer(x).dtype == torch.float32
    assert layer(x[:0]).shape == (0, 8, 10, 14)


@pytest.mark.gpu
def test_lda_aqu_cuda_matches_cpu():
    layer = randomise(LDAAQU(16), scale=0.3)
    x = torch.randn(2, 16, 9, 11, requires_grad=True)
    out = layer(x)
    grad = torch.randn_like(out)
    out.backward(grad)
    cuda = randomise(LDAAQU(16), scale=0.3).cuda()
    x_cuda = x.detach().cuda().requires_grad_()
    out_cuda = cuda(x_cuda)
    out_cuda.backward(grad.cuda())
    torch.testing.assert_close(out_cuda.cpu(), out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x_cuda.grad.cpu(), x.grad, rtol=1e-4,
                               atol=1e-5)
    for (name, a), b in zip(cuda.named_parameters(), layer.parameters()):
        torch.testing.assert_close(
            a.grad.cpu(), b.grad, rtol=1e-3, atol=1e-4, msg=name)
