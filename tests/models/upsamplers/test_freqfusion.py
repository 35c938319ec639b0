# Copyright (c) mmdysample contributors. All rights reserved.
"""FreqFusion (registered as ``'FreqFusion'``): against a loop reference of
the authors' forward, the properties of its filters and resampler, counts,
init, errors and devices."""
import math

import pytest
import torch
from guided_checks import (check_cuda_matches_cpu, check_every_gradient,
                           gradcheck_layer, maps, randomise)
from test_carafe import loop_carafe
from test_fade import loop_conv
from test_sapa import loop_group_norm

from mmdysample.models import build_upsampler, list_upsamplers, needs_guide
from mmdysample.models.guide import upsample
from mmdysample.models.upsamplers.freqfusion import (FreqFusion,
                                                     local_cosine_similarity)

SMALL = dict(in_channels=8, compressed_channels=8, resample_groups=2)


def loop_hamming(k):
    """``k x k`` Hamming window from its formula, row-major."""
    if k == 1:
        return [1.0]
    ham = [0.54 - 0.46 * math.cos(2 * math.pi * i / (k - 1))
           for i in range(k)]
    return [ham[a] * ham[b] for a in range(k) for b in range(k)]


def loop_normalize(logits, k, hamming):
    """Softmax of each pixel's k*k logits, times the window, renormalised.
    ``logits[j][y][x]`` nested lists -> a (1, k*k, H, W) float64 tensor."""
    window = loop_hamming(k) if hamming else [1.0] * (k * k)
    h, w = len(logits[0]), len(logits[0][0])
    out = torch.zeros(1, k * k, h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            values = [logits[j][y][x] for j in range(k * k)]
            top = max(values)
            soft = [math.exp(v - top) for v in values]
            weighted = [a * b for a, b in zip(soft, window)]
            for j in range(k * k):
                out[0, j, y, x] = weighted[j] / sum(weighted)
    return out


def loop_cosine(z):
    """3 x 3, dilation 2 cosine similarities of ``z[c][y][x]``; the centre
    left out, neighbours outside the map score 0."""
    c, h, w = len(z), len(z[0]), len(z[0][0])
    out = []
    for a in range(3):
        for b in range(3):
            if (a, b) == (1, 1):
                continue
            plane = [[0.0] * w for _ in range(h)]
            for y in range(h):
                for x in range(w):
                    yy, xx = y + 2 * (a - 1), x + 2 * (b - 1)
                    if not (0 <= yy < h and 0 <= xx < w):
                        continue
                    u = [z[ch][y][x] for ch in range(c)]
                    v = [z[ch][yy][xx] for ch in range(c)]
                    nu = math.sqrt(sum(t * t for t in u))
                    nv = math.sqrt(sum(t * t for t in v))
                    if nu * nv > 0:
                        plane[y][x] = sum(p * q
                                          for p, q in zip(u, v)) / (nu * nv)
            out.append(plane)
    return out


def params(conv):
    bias = None if conv.bias is None else conv.bias.tolist()
    return conv.weight.tolist(), bias


def loop_bilinear_border(plane, py, px):
    """Bilinear value of ``plane[y][x]`` at pixel coordinates (py, px),
    clamped to the map (border padding)."""
    h, w = len(plane), len(plane[0])
    py, px = min(max(py, 0.0), h - 1.0), min(max(px, 0.0), w - 1.0)
    y0, x0 = int(math.floor(py)), int(math.floor(px))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    fy, fx = py - y0, px - x0
    return ((1 - fy) * ((1 - fx) * plane[y0][x0] + fx * plane[y0][x1]) +
            fy * ((1 - fx) * plane[y1][x0] + fx * plane[y1][x1]))


def loop_resample(sampler, hr, lr, feats):
    """The offset generator and sampler for one image, in float64.

    Offset of sub-pixel (a, b) of low-res pixel (i, j), group g, x part:
    ``(offset[g s^2 + a s + b] + hr_offset[g](i s + a, j s + b)) *
    sigmoid(direct_scale[..] + hr_direct_scale[g](..)) + (b + 0.5) / s -
    0.5`` (y: channel G s^2 + .., hr channel G + g, init (a + 0.5) / s -
    0.5), in low-res pixels from the pixel centre; the output pixel
    (i s + a, j s + b) of group g's channels reads ``feats`` there.
    """
    s, g_count = sampler.scale_factor, sampler.groups

    def norm(z, gn):
        if isinstance(gn, torch.nn.GroupNorm):
            return loop_group_norm(z, gn.num_groups, gn.weight.tolist(),
                                   gn.bias.tolist())
        return z

    hr = norm(hr, sampler.norm_hr)
    lr = norm(lr, sampler.norm_lr)
    hr = hr + loop_cosine(hr)
    lr = lr + loop_cosine(lr)
    off_lr = loop_conv(lr, *params(sampler.offset))
    scale_lr = loop_conv(lr, *params(sampler.direct_scale))
    off_hr = loop_conv(hr, *params(sampler.hr_offset))
    scale_hr = loop_conv(hr, *params(sampler.hr_direct_scale))
    c, out_h, out_w = len(feats), len(feats[0]), len(feats[0][0])
    h, w = out_h // s, out_w // s
    out = torch.zeros(1, c, out_h, out_w, dtype=torch.float64)
    for g in range(g_count):
        for i in range(h):
            for j in range(w):
                for a in range(s):
                    for b in range(s):
                        yy, xx = i * s + a, j * s + b
                        pos = []
                        for comp, init in ((0, (b + 0.5) / s - 0.5),
                                           (1, (a + 0.5) / s - 0.5)):
                            ch = comp * g_count * s * s + g * s * s + a * s + b
                            hc = comp * g_count + g
                            raw = off_lr[ch][i][j] + off_hr[hc][yy][xx]
                            gate = scale_lr[ch][i][j] + scale_hr[hc][yy][xx]
                            pos.append(raw / (1 + math.exp(-gate)) + init)
                        # In low-res pixels -> the high-res map's pixels.
                        px = (j + 0.5 + pos[0]) * s - 0.5
                        py = (i + 0.5 + pos[1]) * s - 0.5
                        size = c // g_count
                        for ch in range(g * size, (g + 1) * size):
                            out[0, ch, yy, xx] = loop_bilinear_border(
                                feats[ch], py, px)
    return out


def loop_freqfusion(layer, x, guide):
    """The authors' FreqFusion forward (semi-conv, compressed-feature
    upsampling, high-pass residual), one value at a time, in float64,
    returning the layer's part: resampled low-pass upsampling of x plus
    the guide's high-pass residual."""
    s, kl, kh = layer.scale_factor, layer.lowpass_kernel, layer.highpass_kernel
    ham = layer.hamming

    def t(z):
        return torch.tensor(z, dtype=torch.float64)[None]

    outs = []
    for n in range(x.shape[0]):
        hr = loop_conv(guide[n].tolist(), *params(layer.hr_channel_compressor))
        lr = loop_conv(x[n].tolist(), *params(layer.lr_channel_compressor))
        hp_hr = loop_conv(hr, *params(layer.content_encoder2))
        w0 = loop_normalize(hp_hr, kh, ham)
        sharp = 2 * t(hr) - loop_carafe(t(hr), w0, kh, 1, 1)
        sharp = sharp[0].tolist()
        lp_hr = loop_conv(sharp, *params(layer.content_encoder))
        w1 = loop_normalize(lp_hr, kl, ham)
        lp_lr = loop_conv(lr, *params(layer.content_encoder))
        lp = t(lp_hr) + loop_carafe(t(lp_lr), w1, kl, 1, s)
        w_lp = loop_normalize(lp[0].tolist(), kl, ham)
        hp_lr = loop_conv(lr, *params(layer.content_encoder2))
        hp = t(hp_hr) + loop_carafe(t(hp_lr), w_lp, kl, 1, s)
        w_hp = loop_normalize(hp[0].tolist(), kh, ham)
        up = loop_carafe(x[n:n + 1], w_lp, kl, 1, s)
        if layer.feature_resample:
            up = loop_resample(layer.dysampler, sharp, lr, up[0].tolist())
        high = guide[n:n + 1] - loop_carafe(guide[n:n + 1], w_hp, kh, 1, 1)
        outs.append(up + high)
    return torch.cat(outs)


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(resample_norm=False),
    dict(feature_resample=False, hamming=False),
    dict(lowpass_kernel=3, highpass_kernel=5, encoder_kernel=1),
    dict(scale_factor=3, resample_groups=1),
], ids=['authors', 'no-norm', 'no-resample-no-hamming', 'k3-k5-enc1', 's3'])
def test_freqfusion_matches_loop_reference(kwargs):
    layer = randomise(FreqFusion(**{**SMALL, **kwargs}).double(), scale=0.3)
    h, w = (2, 3) if layer.scale_factor == 3 else (3, 4)
    x, guide = maps(layer, h=h, w=w)
    expected = loop_freqfusion(layer, x, guide)
    with torch.no_grad():
        out = layer(x, guide)
    s = layer.scale_factor
    assert out.shape == expected.shape == (2, 8, s * h, s * w)
    torch.testing.assert_close(out, expected)


def test_local_cosine_similarity_matches_loop():
    z = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    z[0, :, 2, 3] = 0  # a zero vector scores 0 against everything
    out = local_cosine_similarity(z)
    assert out.shape == (2, 8, 6, 7)
    for n in range(2):
        torch.testing.assert_close(
            out[n], torch.tensor(loop_cosine(z[n].tolist()),
                                 dtype=torch.float64))
    assert out[0, :, 2, 3].abs().max() == 0


def test_freqfusion_kernels_are_hamming_weighted_partitions_of_unity():
    layer = randomise(FreqFusion(**SMALL).double(), scale=0.3)
    x, guide = maps(layer, h=4, w=5)
    with torch.no_grad():
        w_lp, w_hp, sharp, lr = layer.kernels(x, guide)
    assert w_lp.shape == (2, 25, 8, 10) and w_hp.shape == (2, 9, 8, 10)
    assert sharp.shape == (2, 8, 8, 10) and lr.shape == (2, 8, 4, 5)
    for kernels in (w_lp, w_hp):
        assert kernels.min() > 0
        torch.testing.assert_close(kernels.sum(1),
                                   torch.ones_like(kernels[:, 0]))
    # Uniform logits give the normalised Hamming window itself.
    with torch.no_grad():
        for conv in (layer.content_encoder, layer.content_encoder2):
            conv.weight.zero_()
            conv.bias.zero_()
        w_lp, w_hp, _, _ = layer.kernels(x, guide)
    window = torch.tensor(loop_hamming(3), dtype=torch.float64)
    torch.testing.assert_close(w_hp[0, :, 3, 4], window / window.sum())


def test_freqfusion_high_pass_of_a_constant_guide_is_zero_inside():
    """With x = 0 the output is the guide's high-pass residual alone: zero
    where the 3 x 3 window lies inside the map, not at the border (zero
    padding)."""
    layer = randomise(FreqFusion(**SMALL).double(), scale=0.3)
    x, guide = maps(layer, h=4, w=5)
    with torch.no_grad():
        out = layer(torch.zeros_like(x), torch.full_like(guide, 2.0))
    torch.testing.assert_close(out[..., 1:-1, 1:-1],
                               torch.zeros_like(out[..., 1:-1, 1:-1]))
    # The Hamming window gives the outside neighbours little weight.
    assert (out[..., 0, :] > 1e-5).all() and (out[..., :, -1] > 1e-5).all()


def test_freqfusion_zero_offsets_resample_to_the_low_pass_upsampling():
    """Zero offset convolutions leave the initial positions, the centres
    of the output pixels: the resampler is then the identity."""
    layer = randomise(FreqFusion(**SMALL).double(), scale=0.3)
    with torch.no_grad():
        for conv in (layer.dysampler.offset, layer.dysampler.hr_offset):
            conv.weight.zero_()
            conv.bias.zero_()
    reference = FreqFusion(**SMALL, feature_resample=False).double()
    reference.load_state_dict(layer.state_dict(), strict=False)
    x, guide = maps(layer)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, guide), reference(x, guide))


def test_freqfusion_gradcheck():
    layer = randomise(
        FreqFusion(2, compressed_channels=2, resample_groups=1,
                   resample_norm=False, lowpass_kernel=3).double(),
        scale=0.3)
    gradcheck_layer(layer)


def test_freqfusion_every_parameter_gets_a_gradient():
    check_every_gradient(randomise(FreqFusion(**SMALL), scale=0.3))


def test_freqfusion_parameter_counts_at_256_channels():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # compressors 2 x 16,448, encoders 14,425 + 5,193, resampler
    # 2 x 20,768 + 2 x 5,192 + GroupNorms 256: the authors' module
    assert count(FreqFusion(256)) == 104690
    assert count(build_upsampler('FreqFusion', 256)) == 104690
    assert count(FreqFusion(256, resample_norm=False)) == 104434
    assert count(FreqFusion(256, feature_resample=False)) == 104690 - 52176
    # three top-down stages in mmdet's FPN; four in the authors' neck
    assert (3 * 104690, 4 * 104690) == (314070, 418760)


def test_freqfusion_init_is_the_authors():
    layer = FreqFusion(64)
    encoders = (layer.content_encoder, layer.content_encoder2)
    for conv in encoders:
        assert conv.weight.std() < 0.002
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    sampler = layer.dysampler
    for conv in (layer.hr_channel_compressor, layer.lr_channel_compressor,
                 sampler.offset, sampler.direct_scale, sampler.hr_offset,
                 sampler.hr_direct_scale):
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.std() > bound / 4  # xavier, not N(0, 0.001)
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    # The windows are derived, not state.
    assert not any('window' in k
                   for k in layer.state_dict())
    assert {'hr_channel_compressor.weight', 'content_encoder2.bias',
            'dysampler.hr_direct_scale.weight',
            'dysampler.norm_lr.weight'} <= set(layer.state_dict())


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(scale_factor=1), ValueError, 'scale_factor must be >= 2'),
    (dict(lowpass_kernel=4), ValueError, 'lowpass_kernel must be odd'),
    (dict(highpass_kernel=2), ValueError, 'highpass_kernel must be odd'),
    (dict(compressed_channels=0), ValueError,
     'compressed_channels must be >= 1'),
    (dict(compressed_channels=44), ValueError,
     r'channels // 8 = 5 GroupNorm groups, which must divide channels \(44'),
    (dict(resample_groups=3, compressed_channels=8), ValueError,
     r'in_channels \(8\) must be divisible by resample_groups \(3\)'),
    (dict(guide_channels=4), ValueError,
     'guide_channels == in_channels; got guide_channels=4'),
    (dict(hamming=1), TypeError, 'hamming must be a bool'),
    (dict(feature_resample='yes'), TypeError,
     'feature_resample must be a bool'),
    (dict(resample_norm=None, compressed_channels=8), TypeError,
     'norm must be a bool'),
])
def test_freqfusion_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FreqFusion(8, **kwargs)


def test_freqfusion_rejects_a_guide_that_does_not_fit():
    layer = FreqFusion(**SMALL)
    x = torch.rand(1, 8, 5, 7)
    for shape in [(1, 8, 10, 13), (1, 4, 10, 14), (2, 8, 10, 14)]:
        with pytest.raises(ValueError, match=r'guide of shape \(1, 8, 10, 14'):
            layer(x, torch.rand(shape))
    with pytest.raises(TypeError, match='needs a guide tensor'):
        layer(x, None)


def test_freqfusion_is_a_registered_guided_upsampler():
    assert 'FreqFusion' in list_upsamplers(guided=True)
    layer = build_upsampler('FreqFusion', 16)
    assert isinstance(layer, FreqFusion) and needs_guide(layer)
    assert (layer.in_channels, layer.guide_channels, layer.scale_factor,
            layer.compressed_channels) == (16, 16, 2, 4)
    layer = build_upsampler(dict(type='FreqFusion', resample_norm=False), 16)
    assert isinstance(layer.dysampler.norm_hr, torch.nn.Identity)
    assert 'feature_resample=True' in repr(layer)


def test_freqfusion_runs_in_float32_and_on_odd_sizes():
    layer = FreqFusion(**SMALL)
    x, guide = maps(layer, dtype=torch.float32)
    assert layer(x, guide).dtype == torch.float32
    # A guide one row / column short of 2x: the host pads it (upsample).
    out = upsample(layer, x, guide[..., :-1, :-1])
    assert out.shape == (2, 8, 10, 14)


@pytest.mark.gpu
@pytest.mark.parametrize('norm', [True, False])
def test_freqfusion_cuda_matches_cpu(norm):
    check_cuda_matches_cpu(
        lambda: FreqFusion(16, compressed_channels=8, resample_norm=norm))
