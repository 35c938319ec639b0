# Copyright (c) mmdysample contributors. All rights reserved.
"""Checks shared by the tests of the kernel-predicting guided upsamplers
(FADE, SAPA-B): random weights, input pairs, the kernels' sums, gradcheck,
the ONNX export of the kernels and CUDA against CPU."""
import torch

from mmdysample.deployment import exporter_kwargs


def randomise(layer, seed=0, scale=0.5):
    """Random weights instead of the init: nothing may rely on it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return layer


def maps(layer, n=2, h=5, w=7, seed=1, dtype=torch.float64, offset=0.0):
    """``x`` ``(n, C, h, w)`` and a guide ``(n, C_g, sh, sw)`` for ``layer``.
    """
    gen = torch.Generator().manual_seed(seed)
    s = layer.scale_factor
    x = torch.randn(n, layer.in_channels, h, w, generator=gen, dtype=dtype)
    guide = offset + torch.randn(
        n, layer.guide_channels, s * h, s * w, generator=gen, dtype=dtype)
    return x, guide


def check_kernels_partition_unity(layer, **maps_kwargs):
    """The kernels are positive and sum to one per output pixel, so a
    constant ``x`` stays constant where every window lies inside the map,
    and loses weight to the zero padding at the border."""
    h, w = 7, 8
    x, guide = maps(layer, h=h, w=w, **maps_kwargs)
    with torch.no_grad():
        kernels = layer.kernels(x, guide)
        assert kernels.min() > 0
        torch.testing.assert_close(
            kernels.sum(1), torch.ones_like(kernels[:, 0]))
        out = layer(torch.full_like(x, 3.0), guide)
    s, r = layer.scale_factor, layer.up_kernel // 2
    inner = out[..., s * r:s * (h - r), s * r:s * (w - r)]
    torch.testing.assert_close(inner, torch.full_like(inner, 3.0))
    assert (out[..., 0, :] < 3.0 - 1e-6).all()
    assert (out[..., :, -1] < 3.0 - 1e-6).all()


def gradcheck_layer(layer):
    """float64 gradcheck w.r.t. x, the guide and every weight."""
    x, guide = maps(layer, n=1, h=2, w=3)
    x.requires_grad_()
    guide.requires_grad_()
    assert torch.autograd.gradcheck(layer, (x, guide))
    # The weights too, through random projections (the full Jacobian of
    # some 300 weights is slow on a shared CPU).
    names = [name for name, _ in layer.named_parameters()]

    def fn(x, guide, *weights):
        return torch.func.functional_call(layer, dict(zip(names, weights)),
                                          (x, guide))

    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(fn, (x, guide, *weights), fast_mode=True)


class KernelsOnly(torch.nn.Module):
    """A layer's own ops: everything up to the shared reassembly."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, guide):
        return self.layer.kernels(x, guide)


def check_kernels_export(layer, path):
    """The kernels export (TorchScript exporter, opset 17, dynamic batch and
    size) and onnxruntime matches them at another size to 1e-4.

    Only the kernels: ``carafe_reassemble`` takes its windows with
    ``Tensor.unfold``, which this exporter cannot convert at dynamic sizes;
    ``test_export_guided.py`` exports the whole layers.
    """
    import onnxruntime as ort
    module = KernelsOnly(layer.float().eval())
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    torch.onnx.export(
        module,
        maps(layer, n=1, h=4, w=6, dtype=torch.float32),
        path,
        input_names=['x', 'guide'],
        output_names=['kernels'],
        dynamic_axes=dict(x=axes, guide=axes, kernels=axes),
        opset_version=17,
        **exporter_kwargs(dynamo=False))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    x, guide = maps(layer, n=2, h=5, w=9, seed=3, dtype=torch.float32)
    with torch.no_grad():
        expected = module(x, guide)
    out, = session.run(None, dict(x=x.numpy(), guide=guide.numpy()))
    torch.testing.assert_close(
        torch.from_numpy(out), expected, rtol=0, atol=1e-4)


def check_every_gradient(layer):
    """``x``, the guide and every parameter get a non-zero gradient."""
    x, guide = maps(layer, dtype=torch.float32)
    x.requires_grad_()
    guide.requires_grad_()
    out = layer(x, guide)
    out.backward(torch.randn_like(out))
    for name, param in [('x', x), ('guide', guide),
                        *layer.named_parameters()]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def check_cuda_matches_cpu(make_layer):
    """Outputs and gradients of ``make_layer()`` agree on CUDA and CPU."""
    layer = randomise(make_layer())
    x, guide = maps(layer, h=9, w=11, dtype=torch.float32)
    x.requires_grad_()
    guide.requires_grad_()
    out = layer(x, guide)
    grad = torch.randn_like(out)
    out.backward(grad)
    cuda = randomise(make_layer()).cuda()
    x_cuda = x.detach().cuda().requires_grad_()
    guide_cuda = guide.detach().cuda().requires_grad_()
    out_cuda = cuda(x_cuda, guide_cuda)
    out_cuda.backward(grad.cuda())
    torch.testing.assert_close(out_cuda.cpu(), out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        x_cuda.grad.cpu(), x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        guide_cuda.grad.cpu(), guide.grad, rtol=1e-3, atol=1e-4)
    for (name, a), b in zip(cuda.named_parameters(), layer.parameters()):
        torch.testing.assert_close(
            a.grad.cpu(), b.grad, rtol=1e-3, atol=1e-4, msg=name)
