# Copyright (c) mmdysample contributors. All rights reserved.
"""Export, trace and compile of every DySample preset, at sizes other than
the one they were traced at: a size frozen into a graph shows up there."""
import itertools
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from mmdysample import DYSAMPLE_PRESETS
from mmdysample.deployment import (export_module, export_upsampler,
                                   symbolic_input_axes, verify_onnx)
from mmdysample.models.upsamplers.sampling import pixel_unshuffle

pytest.importorskip('onnxruntime')

PRESETS = list(DYSAMPLE_PRESETS)
#: Divisible by every preset's groups and, for 'pl', by s**2 for s = 2, 3.
CHANNELS = {'lp': 16, 'pl': 72}
TRACE_SIZE = (1, 8, 8)
#: (N, H, W) other than TRACE_SIZE, odd and non-square.
OTHER_SIZES = [(2, 5, 11), (3, 13, 7)]
ATOL = 1e-4

pytestmark = pytest.mark.filterwarnings(
    # The TorchScript exporter and torch.jit announce their deprecation.
    'ignore::DeprecationWarning', 'ignore::FutureWarning')


def make_layer(name, scale, seed=0):
    """A preset whose weights move sampling points across pixels."""
    channels = CHANNELS[DYSAMPLE_PRESETS[name]['style']]
    layer = MODELS.build(
        dict(type=name, in_channels=channels, scale_factor=scale)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return layer


def inputs(channels, sizes, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, channels, h, w, generator=gen) for n, h, w in sizes]


def output_dims(path):
    import onnx
    out = onnx.load(path).graph.output[0]
    return [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]


def export_and_check(module, channels, path, dynamo, sizes=None,
                     reference=None):
    """Export at ``sizes[0]``; onnxruntime must match at every size."""
    sizes = sizes or [TRACE_SIZE] + OTHER_SIZES
    n, h, w = sizes[0]
    if dynamo:
        export_module(module, path, (n, channels, h, w), dynamo=True)
    else:
        # A TracerWarning means a size became a Python number in the trace.
        with warnings.catch_warnings():
            warnings.simplefilter('error', torch.jit.TracerWarning)
            export_module(module, path, (n, channels, h, w), dynamo=False)
    assert symbolic_input_axes(path) == [0, 2, 3]
    reference = reference or module
    for x in inputs(channels, sizes):
        with torch.no_grad():
            expected = reference(x)
        assert verify_onnx(path, {'input': x}, expected) < ATOL, x.shape


class TestOnnx:

    @pytest.mark.parametrize('dynamo', [False, True],
                             ids=['torchscript', 'dynamo'])
    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(PRESETS, [2, 3])))
    def test_preset_dynamic_export(self, name, scale, dynamo, tmp_path):
        layer = make_layer(name, scale)
        path = str(tmp_path / 'dysample.onnx')
        export_and_check(layer, layer.in_channels, path, dynamo)
        # Output batch, height and width are symbolic too, not 8 * s.
        dims = output_dims(path)
        assert all(isinstance(dims[i], str) for i in (0, 2, 3)), dims

    @pytest.mark.parametrize('dynamo', [False, True],
                             ids=['torchscript', 'dynamo'])
    @pytest.mark.parametrize('scale', [2, 3])
    def test_pixel_unshuffle_exports(self, scale, dynamo, tmp_path):

        class Unshuffle(nn.Module):

            def forward(self, x):
                return pixel_unshuffle(x, scale)

        class Reference(nn.Module):

            def forward(self, x):
                return F.pixel_unshuffle(x, scale)

        sizes = [(1, 8 * scale, 8 * scale), (2, 5 * scale, 11 * scale)]
        export_and_check(Unshuffle().eval(), 4, str(tmp_path / 'u.onnx'),
                         dynamo, sizes, Reference())

    def test_frozen_normaliser_is_caught(self, tmp_path):
        """The authors' ``torch.tensor([w, h])`` normaliser freezes the size
        in a TorchScript export; the checks above must notice."""

        class AuthorsNormaliser(nn.Module):
            """Identity resampling, coordinates normalised as upstream."""

            def forward(self, x):
                n, _, h, w = x.shape
                xs = torch.arange(w, dtype=x.dtype) + 0.5
                ys = torch.arange(h, dtype=x.dtype) + 0.5
                # (2, H, W); not meshgrid, whose TorchScript symbolic
                # fails on torch 2.1 with indexing='xy'.
                coords = torch.stack(
                    [xs.view(1, w).expand(h, w),
                     ys.view(h, 1).expand(h, w)])
                normaliser = torch.tensor([w, h], dtype=x.dtype).view(2, 1, 1)
                grid = (2 * coords / normaliser - 1).permute(1, 2, 0)
                return F.grid_sample(
                    x,
                    grid.expand(n, h, w, 2),
                    align_corners=False,
                    padding_mode='border')

        module = AuthorsNormaliser().eval()
        x = torch.randn(1, 4, 8, 8)
        torch.testing.assert_close(module(x), x)  # eager is exact
        path = str(tmp_path / 'frozen.onnx')
        with pytest.warns(torch.jit.TracerWarning, match='constant'):
            export_module(module, path, x.shape, dynamo=False)
        assert symbolic_input_axes(path) == [0, 2, 3]  # declared, yet ...
        assert verify_onnx(path, {'input': x}, x) < ATOL
        other = torch.randn(2, 4, 5, 11)
        assert verify_onnx(path, {'input': other}, other) > 0.1  # ... frozen

    @pytest.mark.dynamo_export
    def test_dynamo_specialisation_is_an_error(self, tmp_path):
        """torch.export silently fixes a size the code branches on."""

        class BranchesOnHeight(nn.Module):

            def forward(self, x):
                return x * 2 if x.shape[2] == 8 else x

        path = tmp_path / 'static.onnx'
        with pytest.raises(RuntimeError, match=r"\['height'\]"):
            export_module(
                BranchesOnHeight().eval(), str(path), (1, 2, 8, 8),
                dynamo=True)
        assert not path.exists()

    def test_default_example_shape_and_bad_arguments(self, tmp_path):
        layer = make_layer('DySample', 2)
        path = export_upsampler(layer, str(tmp_path / 'sub' / 'up.onnx'))
        x = torch.randn(2, 16, 3, 5)
        with torch.no_grad():
            assert verify_onnx(path, {'input': x}, layer(x)) < ATOL
        with pytest.raises(ValueError, match='opset'):
            export_upsampler(layer, path, opset=15)
        with pytest.raises(ValueError, match='size_divisor=32'):
            export_module(layer, path, (1, 16, 40, 64), size_divisor=32)
        with pytest.raises(ValueError, match='example_shape'):
            export_upsampler(nn.Upsample(scale_factor=2), path)
        with pytest.raises(ValueError, match='shape'):
            verify_onnx(path, {'input': x}, layer(x)[:, :, 1:])


class TestTraceAndCompile:

    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(PRESETS, [2, 3])))
    def test_jit_trace_is_size_generic(self, name, scale):
        layer = make_layer(name, scale)
        n, h, w = TRACE_SIZE
        with warnings.catch_warnings():
            warnings.simplefilter('error', torch.jit.TracerWarning)
            traced = torch.jit.trace(
                layer, torch.randn(n, layer.in_channels, h, w))
        for x in inputs(layer.in_channels, [TRACE_SIZE] + OTHER_SIZES):
            with torch.no_grad():
                out = traced(x)
                n, c, h, w = x.shape
                assert out.shape == (n, c, scale * h, scale * w)
                torch.testing.assert_close(out, layer(x))

    @pytest.mark.slow
    @pytest.mark.parametrize('name', PRESETS)
    def test_compile_dynamic(self, name):
        """Inductor (C++ codegen with gcc) with dynamic sizes: one graph
        serves both sizes, no recompilation."""
        torch._dynamo.reset()
        layer = make_layer(name, 2)
        compiled = torch.compile(layer, dynamic=True, fullgraph=True)
        with torch.no_grad(), torch._dynamo.config.patch(
                error_on_recompile=True):
            for x in inputs(layer.in_channels, OTHER_SIZES):
                torch.testing.assert_close(
                    compiled(x), layer(x), rtol=1e-5, atol=1e-5)
        torch._dynamo.reset()
