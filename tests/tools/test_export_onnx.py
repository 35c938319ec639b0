# Copyright (c) mmdysample contributors. All rights reserved.
"""tools/deployment/export_onnx.py and the model export behind it.

The CLI runs as a subprocess, as users run it; the model export API runs
in-process where a test needs the PyTorch model beside the graph.
"""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from mmdysample.deployment import (build_export_model, compare_with_torch,
                                   export_model, export_module, other_shape,
                                   symbolic_input_axes, verify_onnx)

pytest.importorskip('onnxruntime')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/deployment/export_onnx.py')
FASTER_RCNN = osp.join(
    REPO, 'configs/faster_rcnn/faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py')
SEGFORMER = osp.join(
    REPO, 'configs/segformer/segformer_mit-b0-dysample-lpg4_synthetic.py')
ATOL = 1e-4

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning',
                                        'ignore::FutureWarning')


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, TOOL, *args],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def verified(stdout):
    """``{shape: max abs error}`` from the ``--verify`` lines."""
    found = re.findall(r'at \(([\d, ]+)\): max abs error (\S+)', stdout)
    return {
        tuple(int(v) for v in shape.split(',')): float(error)
        for shape, error in found
    }


def load_tool():
    spec = importlib.util.spec_from_file_location('export_onnx', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestCli:

    def test_layer(self, tmp_path):
        out = str(tmp_path / 'layer.onnx')
        stdout = run_tool('--layer', 'DySample-S+', '--channels', '72',
                          '--scale-factor', '3', '--shape', '7', '9',
                          '--batch', '2', '--out', out, '--verify')
        errors = verified(stdout)
        assert set(errors) == {(2, 72, 7, 9), (3, 72, 10, 14)}, stdout
        assert max(errors.values()) < ATOL
        assert symbolic_input_axes(out) == [0, 2, 3]

    @pytest.mark.parametrize('name,dynamo', [('FADE', False),
                                             ('IndexNet', True)])
    def test_guided_layer(self, name, dynamo, tmp_path):
        """A guided upsampler's graph takes the guide as its second input.
        """
        import onnx
        out = str(tmp_path / 'guided.onnx')
        stdout = run_tool('--layer', name, '--channels', '16', '--shape',
                          '7', '9', '--out', out, '--verify',
                          *(['--dynamo'] if dynamo else []))
        assert 'guide (1, 16, 14, 18)' in stdout, stdout
        errors = verified(stdout)
        assert set(errors) == {(1, 16, 7, 9), (2, 16, 10, 14)}, stdout
        assert max(errors.values()) < ATOL
        assert 'max abs error' in stdout and '(guide (2, 16, 20, 28))' in \
            stdout, stdout
        assert [v.name for v in onnx.load(out).graph.input] == [
            'input', 'guide'
        ]
        for name in ('input', 'guide'):
            assert symbolic_input_axes(out, name) == [0, 2, 3]

    def test_torchscript_refusal_suggests_dynamo(self, tmp_path, capsys,
                                                 monkeypatch):
        # torch.onnx.errors: on torch 2.1 torch.onnx.OnnxExporterError is
        # the dynamo exporter's class (another signature).
        from torch.onnx.errors import OnnxExporterError

        def refuse(*args, **kwargs):
            raise OnnxExporterError('Unsupported: ONNX export of operator '
                                    'Unfold\nmore')

        tool = load_tool()
        monkeypatch.setattr(tool.deploy.torch.onnx, 'export', refuse)
        out = tmp_path / 'x.onnx'
        assert tool.main(['--layer', 'IndexNet', '--channels', '8', '--out',
                          str(out)]) == 1
        err = capsys.readouterr().err
        assert 'operator Unfold' in err and 'Try --dynamo' in err, err
        assert 'more' not in err and not out.exists()

    def test_detector_config(self, tmp_path):
        import onnx
        out = str(tmp_path / 'det.onnx')
        stdout = run_tool('--config', FASTER_RCNN, '--out', out, '--verify')
        assert 'backbone + neck' in stdout
        errors = verified(stdout)
        assert set(errors) == {(1, 3, 64, 64), (2, 3, 160, 224)}, stdout
        assert max(errors.values()) < ATOL
        assert symbolic_input_axes(out) == [0, 2, 3]
        # One output per FPN level (4 + 1 max-pooled).
        assert len(onnx.load(out).graph.output) == 5

    @pytest.mark.slow
    @pytest.mark.skipif(
        not osp.exists(SEGFORMER), reason=f'{SEGFORMER} does not exist')
    @pytest.mark.dynamo_export
    def test_segmentor_config_dynamo(self, tmp_path):
        import onnx
        out = str(tmp_path / 'seg.onnx')
        stdout = run_tool('--config', SEGFORMER, '--out', out, '--dynamo',
                          '--verify')
        assert 'decode head' in stdout
        errors = verified(stdout)
        assert set(errors) == {(1, 3, 64, 64), (2, 3, 160, 224)}, stdout
        assert max(errors.values()) < ATOL
        assert symbolic_input_axes(out) == [0, 2, 3]
        assert len(onnx.load(out).graph.output) == 1

    @pytest.mark.parametrize('argv,message', [
        (['--layer', 'DySample'], '--channels'),
        (['--config', FASTER_RCNN, '--channels', '8'], '--channels'),
        (['--layer', 'DySample', '--channels', '8', '--checkpoint', 'a.pth'],
         '--checkpoint'),
        (['--layer', 'DySample', '--config', FASTER_RCNN], 'not allowed'),
        (['--config', FASTER_RCNN, '--allow-partial-checkpoint'],
         '--allow-partial-checkpoint is for --checkpoint'),
    ])
    def test_argument_errors(self, argv, message, capsys, tmp_path):
        tool = load_tool()
        with pytest.raises(SystemExit) as exc:
            tool.main(argv + ['--out', str(tmp_path / 'x.onnx')])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / 'x.onnx').exists()


class TestExportModel:

    def test_checkpoint_is_loaded(self, tmp_path):
        torch.manual_seed(0)
        source = build_export_model(FASTER_RCNN)
        ckpt = str(tmp_path / 'model.pth')
        torch.save({'state_dict': source.model.state_dict()}, ckpt)
        torch.manual_seed(1)  # the export builds other weights, then loads
        path = export_model(FASTER_RCNN, ckpt, str(tmp_path / 'det.onnx'))
        torch.manual_seed(1)
        unloaded = build_export_model(FASTER_RCNN)
        x = torch.randn(2, 3, 96, 64)
        with torch.no_grad():
            assert verify_onnx(path, {'input': x}, source(x)) < ATOL
            assert verify_onnx(path, {'input': x}, unloaded(x)) > 1e-2

    def test_checkpoint_that_does_not_fit_is_refused(self, tmp_path,
                                                     capsys):
        torch.manual_seed(0)
        state = build_export_model(FASTER_RCNN).model.state_dict()
        del state['neck.upsample_modules.2.offset.bias']
        ckpt = str(tmp_path / 'model.pth')
        torch.save({'state_dict': state}, ckpt)
        out = tmp_path / 'det.onnx'
        argv = ['--config', FASTER_RCNN, '--checkpoint', ckpt, '--out',
                str(out)]
        tool = load_tool()
        assert tool.main(argv) == 1
        err = capsys.readouterr().err
        assert 'does not fit the model' in err
        assert 'neck.upsample_modules.2.offset.bias' in err
        assert not out.exists()
        # The flag loads what fits and exports.
        assert tool.main(argv + ['--allow-partial-checkpoint']) == 0
        assert out.exists()

    def test_size_must_be_a_multiple_of_the_stride(self, tmp_path):
        with pytest.raises(ValueError, match='size_divisor=32'):
            export_model(FASTER_RCNN, None, str(tmp_path / 'x.onnx'),
                         shape=(64, 80))

    @pytest.mark.skipif(
        not osp.exists(SEGFORMER), reason=f'{SEGFORMER} does not exist')
    @pytest.mark.xfail(
        strict=True,
        raises=RuntimeError,
        reason='the TorchScript exporter freezes the key/value length of '
        "MiT's nn.MultiheadAttention (see mmdysample.deployment.onnx)")
    def test_segformer_torchscript_is_not_size_generic(self, tmp_path):
        module = build_export_model(SEGFORMER)
        path = str(tmp_path / 'seg.onnx')
        export_module(module, path, (1, 3, 64, 64), size_divisor=32)
        compare_with_torch(module, path, [(1, 3, 64, 64), (1, 3, 96, 64)])

    @pytest.mark.slow
    @pytest.mark.dynamo_export
    def test_detector_dynamo(self, tmp_path):
        """The SegFormer counterpart is the CLI test above."""
        torch.manual_seed(0)
        module = build_export_model(FASTER_RCNN)
        path = str(tmp_path / 'det.onnx')
        export_module(module, path, (1, 3, 64, 96), dynamo=True,
                      size_divisor=32)
        assert symbolic_input_axes(path) == [0, 2, 3]
        shapes = [(1, 3, 64, 96), other_shape((1, 3, 64, 96), 32)]
        for shape, error in compare_with_torch(module, path, shapes):
            assert error < ATOL, shape
