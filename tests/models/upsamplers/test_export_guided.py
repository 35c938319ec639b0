# Copyright (c) mmdysample contributors. All rights reserved.
"""ONNX export of the guided upsamplers (a graph of two inputs, ``input``
and ``guide``) and of ``CARAFEUnfold`` and LDA-AQU, checked with
onnxruntime at sizes other than the trace size: a size frozen into a graph
shows up there.

The layers are found in the registry through ``needs_guide``, so a guided
upsampler registered later is exported here without a change to this file.
"""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmdysample  # noqa: F401 (registers the upsamplers)
from mmdysample.deployment import (compare_with_torch, export_upsampler,
                                   random_inputs, symbolic_input_axes,
                                   verify_onnx)
from mmdysample.models import build_upsampler, list_upsamplers
from mmdysample.models.guide import GuidedUpsampler, guide_shape, needs_guide

pytest.importorskip('onnxruntime')

#: The guided upsamplers of the paper's tables (issue 17).
PAPER_GUIDED = ('IndexNet', 'A2U', 'FADE', 'SAPA-B')
#: Upsamplers without a guide whose graphs are exported here too.
UNGUIDED = ['CARAFEUnfold', 'LDA-AQU']
#: Divisible by the 32 groups of SAPA-B's and A2U's GroupNorms.
CHANNELS = 32
#: (N, H, W) of the trace, and other sizes, odd and non-square.
TRACE_SIZE = (1, 8, 8)
OTHER_SIZES = [(2, 5, 11), (3, 13, 7)]
ATOL = 1e-4

pytestmark = pytest.mark.filterwarnings(
    # The TorchScript exporter and torch.jit announce their deprecation.
    'ignore::DeprecationWarning', 'ignore::FutureWarning')


class TinyGuided(GuidedUpsampler):
    """A guided upsampler of the protocol's shape, independent of the real
    ones (and of ``carafe_reassemble``): a gate from the guide (local conv
    + global context) on the nearest-upsampled ``x``."""

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 guide_channels=None) -> None:
        super().__init__(in_channels, scale_factor, guide_channels)
        self.encoder = nn.Conv2d(self.guide_channels, in_channels, 3,
                                 padding=1)

    def forward(self, x, guide):
        self.check_guide(x, guide)
        context = guide.mean((2, 3), keepdim=True)
        gate = self.encoder(guide - context).sigmoid()
        return F.interpolate(x, scale_factor=self.scale_factor) * gate


def registered_guided():
    """Registered upsamplers that read a guide, by the protocol."""
    return list_upsamplers(guided=True)


GUIDED = registered_guided()


def perturbed(layer, seed=0):
    """``layer`` in eval mode, every parameter moved off its init (some
    inits make kernels uniform, which would hide a frozen size)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return layer.eval()


def export_and_check(layer, path, dynamo, channels=CHANNELS):
    """Export at TRACE_SIZE; onnxruntime must match at the other sizes."""
    n, h, w = TRACE_SIZE
    shape = (n, channels, h, w)
    if dynamo:
        export_upsampler(layer, path, shape, dynamo=True)
    else:
        # A TracerWarning about a Python int / float / index means a size
        # became a number in the trace. Booleans are allowed: the shape
        # checks of check_guide and carafe_reassemble only decide whether
        # to raise (a branch taken on a size would show at OTHER_SIZES).
        with warnings.catch_warnings():
            warnings.simplefilter('error', torch.jit.TracerWarning)
            warnings.filterwarnings(
                'ignore', 'Converting a tensor to a Python boolean',
                torch.jit.TracerWarning)
            export_upsampler(layer, path, shape, dynamo=False)
    names = ['input', 'guide'] if needs_guide(layer) else ['input']
    for name in names:
        assert symbolic_input_axes(path, name) == [0, 2, 3], name
    shapes = [(n, channels, h, w) for n, h, w in OTHER_SIZES]
    for shape, error in compare_with_torch(layer, path, shapes):
        assert error < ATOL, (shape, error)


def graph_dims(path, name):
    import onnx
    graph = onnx.load(path).graph
    value = next(v for v in list(graph.input) + list(graph.output)
                 if v.name == name)
    dims = value.type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


EXPORTERS = pytest.mark.parametrize('dynamo', [False, True],
                                    ids=['torchscript', 'dynamo'])


def test_the_paper_guided_upsamplers_are_registered():
    # A sweep over an empty list would pass: the four must be found.
    assert set(PAPER_GUIDED) | {'FreqFusion'} <= set(GUIDED), GUIDED
    assert not set(UNGUIDED) & set(GUIDED)


@EXPORTERS
@pytest.mark.parametrize('name', GUIDED + UNGUIDED)
def test_registered_layer_exports_with_dynamic_sizes(name, dynamo, tmp_path):
    layer = perturbed(build_upsampler(name, CHANNELS, 2))
    export_and_check(layer, str(tmp_path / 'up.onnx'), dynamo)


@EXPORTERS
@pytest.mark.parametrize('scale', [2, 3])
def test_two_input_graph(scale, dynamo, tmp_path):
    """The protocol on a layer of this file: inputs ``input`` and ``guide``
    (``guide_channels`` other than ``in_channels``), symbolic axes, the
    output ``s`` times the input; under dynamo the guide's axes are the
    input's times ``s``."""
    layer = perturbed(TinyGuided(8, scale, guide_channels=4))
    path = str(tmp_path / 'tiny.onnx')
    export_and_check(layer, path, dynamo, channels=8)
    x_dims, guide_dims = graph_dims(path, 'input'), graph_dims(path, 'guide')
    assert x_dims[1] == 8 and guide_dims[1] == 4
    assert guide_dims[0] == x_dims[0]  # one batch axis
    assert guide_dims[2] != x_dims[2] and guide_dims[3] != x_dims[3]
    if dynamo:
        assert str(scale) in guide_dims[2] and x_dims[2] in guide_dims[2]
        assert str(scale) in guide_dims[3] and x_dims[3] in guide_dims[3]
    out_dims = graph_dims(path, 'output')
    assert all(isinstance(out_dims[i], str) for i in (0, 2, 3)), out_dims


def test_default_example_shape_and_missing_guide(tmp_path):
    layer = perturbed(TinyGuided(8))
    path = export_upsampler(layer, str(tmp_path / 'sub' / 'tiny.onnx'))
    inputs = random_inputs(layer, (2, 8, 3, 5))
    assert inputs['guide'].shape == guide_shape(layer, (2, 8, 3, 5))
    with torch.no_grad():
        expected = layer(*inputs.values())
    assert verify_onnx(path, inputs, expected) < ATOL
    with pytest.raises(ValueError, match=r"inputs \['input', 'guide'\]"):
        verify_onnx(path, {'input': inputs['input']}, expected)
    # CARAFEUnfold names its channels ``channels``.
    carafe = build_upsampler('CARAFEUnfold', 8).eval()
    path = export_upsampler(carafe, str(tmp_path / 'carafe.onnx'))
    x = torch.randn(1, 8, 3, 5)
    with torch.no_grad():
        assert verify_onnx(path, {'input': x}, carafe(x)) < ATOL
