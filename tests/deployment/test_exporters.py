# Copyright (c) mmdysample contributors. All rights reserved.
"""The exporter choice on this torch and, simulated, on a torch older than
2.5 (``torch.onnx.export`` without the ``dynamo`` keyword): the
TorchScript-based export still runs, ``dynamo=True`` is refused by name
before any tracing, in the API and in the CLI."""
import importlib.util
import inspect
import os.path as osp

import pytest
import torch

from mmdysample.deployment import (DYNAMO_MIN_TORCH, dynamo_exporter_available,
                                   export_upsampler, exporter_kwargs,
                                   verify_onnx)
from mmdysample.models import build_upsampler

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/deployment/export_onnx.py')

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning',
                                        'ignore::FutureWarning')


@pytest.fixture
def old_torch_export(monkeypatch):
    """``torch.onnx.export`` as torch < 2.5 has it: no ``dynamo`` keyword
    (a call with one fails as it would there); it records each call and
    hands it to the TorchScript-based exporter of this torch."""
    real = torch.onnx.export
    calls = []

    def export(model, args, f, export_params=True, verbose=False,
               input_names=None, output_names=None, opset_version=None,
               dynamic_axes=None):
        calls.append(dict(input_names=input_names, dynamic_axes=dynamic_axes))
        return real(model, args, f, export_params=export_params,
                    verbose=verbose, input_names=input_names,
                    output_names=output_names, opset_version=opset_version,
                    dynamic_axes=dynamic_axes, **real_kwargs)

    real_kwargs = {'dynamo': False} if 'dynamo' in inspect.signature(
        real).parameters else {}
    monkeypatch.setattr(torch.onnx, 'export', export)
    return calls


def test_this_torch():
    has = 'dynamo' in inspect.signature(torch.onnx.export).parameters
    assert dynamo_exporter_available() is has
    if has:
        assert exporter_kwargs(False) == {'dynamo': False}
        assert exporter_kwargs(True) == {'dynamo': True}
    else:
        assert exporter_kwargs(False) == {}


def test_old_torch_refuses_dynamo_by_name(old_torch_export):
    assert not dynamo_exporter_available()
    assert exporter_kwargs(False) == {}
    with pytest.raises(RuntimeError) as err:
        exporter_kwargs(True)
    message = str(err.value)
    assert f'torch >= {DYNAMO_MIN_TORCH}' in message
    assert f'this is torch {torch.__version__}' in message
    assert 'dynamo=False' in message


def test_old_torch_exports_with_torchscript(old_torch_export, tmp_path):
    pytest.importorskip('onnxruntime')
    layer = build_upsampler('DySample', 16, 2).eval()
    path = str(tmp_path / 'up.onnx')
    export_upsampler(layer, path, (1, 16, 8, 8), dynamo=False)
    assert len(old_torch_export) == 1
    assert old_torch_export[0]['input_names'] == ['input']
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        expected = layer(x)
    assert verify_onnx(path, {'input': x}, expected) < 1e-4

    other = str(tmp_path / 'dynamo.onnx')
    with pytest.raises(RuntimeError, match=DYNAMO_MIN_TORCH):
        export_upsampler(layer, other, (1, 16, 8, 8), dynamo=True)
    assert len(old_torch_export) == 1  # refused before tracing
    assert not osp.exists(other)


def test_cli_refuses_dynamo_on_old_torch(old_torch_export, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('export_onnx', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'up.onnx')
    code = tool.main(['--layer', 'DySample', '--channels', '16', '--out',
                      out, '--dynamo'])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith('error: dynamo=True') and DYNAMO_MIN_TORCH in err
    assert not osp.exists(out) and not old_torch_export
