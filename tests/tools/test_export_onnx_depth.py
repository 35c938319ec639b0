# Copyright (c) mmdysample contributors. All rights reserved.
"""ONNX export of the depth model (DepthFormer with DySample+): a graph of
one input size (``--static``) that onnxruntime runs as PyTorch does, and the
reason a dynamic one cannot be had (its reshape sizes are constants)."""
import importlib.util
import os.path as osp
import re

import pytest

from mmdysample.deployment import (build_export_model, compare_with_torch,
                                   export_module, symbolic_input_axes)

pytest.importorskip('onnxruntime')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/deployment/export_onnx.py')
DEPTH = osp.join(
    REPO,
    'configs/depthformer/depthformer_swin-slim_dysample-lpg4ds_synthetic.py')
ATOL = 1e-4

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning',
                                        'ignore::FutureWarning',
                                        'ignore::UserWarning')


@pytest.fixture(scope='module')
def depth_model():
    return build_export_model(DEPTH)


def load_tool():
    spec = importlib.util.spec_from_file_location('export_onnx', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_static_export_runs_as_pytorch_does(tmp_path, capsys):
    import onnx
    out = str(tmp_path / 'depth.onnx')
    code = load_tool().main([
        '--config', DEPTH, '--shape', '96', '128', '--static', '--opset',
        '16', '--out', out, '--verify'
    ])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert 'fixed input (1, 3, 96, 128)' in stdout
    errors = [float(e) for e in re.findall(
        r'at \(1, 3, 96, 128\): max abs error (\S+)', stdout)]
    assert len(errors) == 2 and max(errors) < ATOL, stdout
    assert symbolic_input_axes(out) == []
    graph = onnx.load(out).graph
    ops = {node.op_type for node in graph.node}
    assert 'GridSample' in ops  # DySample+'s sampling, ONNX's own op
    assert {node.domain for node in graph.node} <= {'', 'ai.onnx'}
    # the depth at half the input size: the decode head's output
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 48, 64]


def test_dynamic_export_is_frozen_at_its_size(depth_model, tmp_path):
    path = str(tmp_path / 'dynamic.onnx')
    export_module(depth_model, path, (1, 3, 64, 64), size_divisor=32)
    # the axes are declared dynamic, yet the graph's reshapes are not
    assert symbolic_input_axes(path) == [0, 2, 3]
    (shape, error), = compare_with_torch(depth_model, path, [(1, 3, 64, 64)])
    assert error < ATOL
    with pytest.raises(RuntimeError, match='does not run at input shape'):
        compare_with_torch(depth_model, path, [(1, 3, 96, 64)])
