# Copyright (c) mmdysample contributors. All rights reserved.
"""CARAFE in plain PyTorch: the shared reassembly and the ``CARAFEPack``
twin registered as ``'CARAFEUnfold'``."""
import pytest
import torch

from mmdysample.models import build_upsampler, list_upsamplers
from mmdysample.models.upsamplers import CARAFEUnfold, carafe_reassemble

def loop_carafe(features, masks, k, group_size, s):
    """CARAFE reassembly, one output value at a time (paper eq. 4).

    Output pixel (i, j) of channel ch sums the k x k neighbours of input
    pixel (i // s, j // s), zero outside the map, weighted by the mask of
    the channel's group at (i, j); mask channel (g * k + dy) * k + dx
    weighs the neighbour at offset (dy - k // 2, dx - k // 2).
    """
    n, c, h, w = features.shape
    r = k // 2
    out = torch.zeros(n, c, s * h, s * w, dtype=torch.float64)
    for b in range(n):
        for ch in range(c):
            g = ch // (c // group_size)
            for i in range(s * h):
                for j in range(s * w):
                    total = 0.0
                    for dy in range(k):
                        for dx in range(k):
                            y, x = i // s + dy - r, j // s + dx - r
                            if 0 <= y < h and 0 <= x < w:
                                weight = masks[b, (g * k + dy) * k + dx, i, j]
                                total += float(features[b, ch, y, x]) * float(
                                    weight)
                    out[b, ch, i, j] = total
    return out


# --------------------------------------------------------------------------
# carafe_reassemble / CARAFEUnfold


@pytest.mark.parametrize('k,groups,s', [(1, 1, 1), (3, 1, 2), (5, 2, 2),
                                        (3, 4, 3), (5, 1, 1)])
def test_carafe_reassemble_matches_loop(k, groups, s):
    gen = torch.Generator().manual_seed(k * 100 + groups * 10 + s)
    features = torch.randn(2, 8, 3, 5, generator=gen, dtype=torch.float64)
    # Unnormalised, signed masks: nothing may rely on a softmax.
    masks = torch.randn(
        2, groups * k * k, 3 * s, 5 * s, generator=gen, dtype=torch.float64)
    expected = loop_carafe(features, masks, k, groups, s)
    out = carafe_reassemble(features, masks, k, groups, s)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


def test_carafe_reassemble_non_contiguous_and_empty_batch():
    features = torch.randn(1, 4, 6, 5, dtype=torch.float64).transpose(2, 3)
    masks = torch.randn(1, 9, 10, 12, dtype=torch.float64)
    torch.testing.assert_close(
        carafe_reassemble(features, masks, 3, 1, 2),
        loop_carafe(features, masks, 3, 1, 2))
    empty = carafe_reassemble(torch.rand(0, 4, 3, 3), torch.rand(0, 9, 6, 6), 3,
                          1, 2)
    assert empty.shape == (0, 4, 6, 6)


def test_carafe_reassemble_gradcheck():
    features = torch.randn(1, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    masks = torch.randn(
        1, 2 * 9, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda f, m: carafe_reassemble(f, m, 3, 2, 2), (features, masks))


@pytest.mark.parametrize('kwargs,match', [
    (dict(kernel_size=4), 'kernel_size must be odd, got 4'),
    (dict(group_size=3), r'channels \(8\) must be divisible by group_size'),
    (dict(scale_factor=0), 'scale_factor must be >= 1, got 0'),
    (dict(scale_factor=3), r'masks must have shape \(1, 9, 9, 12\)'),
])
def test_carafe_reassemble_rejects_bad_arguments(kwargs, match):
    args = {**dict(kernel_size=3, group_size=1, scale_factor=2), **kwargs}
    with pytest.raises(ValueError, match=match):
        carafe_reassemble(torch.rand(1, 8, 3, 4), torch.rand(1, 9, 6, 8), **args)


def _carafe_pack(**kwargs):
    ops = pytest.importorskip('mmcv.ops')
    return ops.CARAFEPack(**kwargs)


PACK_ARGS = dict(
    channels=8,
    scale_factor=2,
    up_kernel=3,
    up_group=2,
    encoder_kernel=3,
    encoder_dilation=2,
    compressed_channels=6)


def test_carafe_reassemble_module_loads_carafepack_and_matches_its_pipeline():
    pack = _carafe_pack(**PACK_ARGS)
    layer = CARAFEUnfold(**PACK_ARGS)
    layer.load_state_dict(pack.state_dict(), strict=True)
    x = torch.randn(2, 8, 5, 4)
    # CARAFEPack's own kernel prediction runs on CPU; only its reassembly
    # op does not, so that part is the loop.
    with torch.no_grad():
        masks = pack.kernel_normalizer(
            pack.content_encoder(pack.channel_compressor(x)))
        out = layer(x)
    expected = loop_carafe(x, masks, 3, 2, 2)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)


def test_carafe_reassemble_module_shapes_and_gradients():
    layer = CARAFEUnfold(8, scale_factor=3, up_group=2)
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 8, 15, 21)
    out.backward(torch.randn_like(out))
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.gpu
def test_carafe_reassemble_matches_mmcv_on_cuda():
    pack = _carafe_pack(channels=16, scale_factor=2, up_group=2).cuda()
    layer = CARAFEUnfold(16, scale_factor=2, up_group=2).cuda()
    layer.load_state_dict(pack.state_dict(), strict=True)
    x = torch.randn(2, 16, 9, 11, device='cuda', requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    out, expected = layer(x2), pack(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(layer.named_parameters(), pack.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5)


def test_carafe_unfold_is_a_registered_upsampler():
    assert 'CARAFEUnfold' in list_upsamplers()
    layer = build_upsampler('CARAFEUnfold', in_channels=16)
    assert isinstance(layer, CARAFEUnfold)
    assert (layer.channels, layer.scale_factor, layer.up_kernel) == (16, 2, 5)
    # the paper's CARAFE setting: 74,148 parameters per x2 stage at 256
    full = build_upsampler(dict(type='CARAFEUnfold'), in_channels=256)
    assert sum(p.numel() for p in full.parameters()) == 74148
    assert build_upsampler('CARAFEUnfold', 16)(torch.rand(1, 16, 3, 5)).shape \
        == (1, 16, 6, 10)


def test_carafe_unfold_state_dict_moves_both_ways():
    pack = _carafe_pack(**PACK_ARGS)
    layer = CARAFEUnfold(**PACK_ARGS)
    assert list(layer.state_dict()) == list(pack.state_dict())
    layer.load_state_dict(pack.state_dict(), strict=True)
    other = _carafe_pack(**PACK_ARGS)
    other.load_state_dict(layer.state_dict(), strict=True)
    for key, value in other.state_dict().items():
        torch.testing.assert_close(value, pack.state_dict()[key])


@pytest.mark.parametrize('k,groups,s', [(5, 1, 2), (3, 2, 3)])
def test_carafe_reassemble_graph_path_matches_loop(k, groups, s, monkeypatch):
    """The formulation traced graphs take (``F.unfold`` + ``einsum``)."""
    from mmdysample.models.upsamplers import carafe
    monkeypatch.setattr(carafe, 'is_eager', lambda: False)
    gen = torch.Generator().manual_seed(7)
    features = torch.randn(2, 8, 3, 5, generator=gen, dtype=torch.float64)
    masks = torch.randn(
        2, groups * k * k, 3 * s, 5 * s, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        carafe_reassemble(features, masks, k, groups, s),
        loop_carafe(features, masks, k, groups, s))
