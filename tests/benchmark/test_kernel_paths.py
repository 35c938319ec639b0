# Copyright (c) mmdysample contributors. All rights reserved.
"""The benchmark's view of DySample's fused kernels, and its CUDA wiring.

No GPU is needed: the CUDA calls the harness makes are replaced by fakes
that record what they were asked.
"""
import importlib.util
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.registry import MODELS

from mmdysample import DYSAMPLE_PRESETS
from mmdysample.benchmark import models
from mmdysample.benchmark import upsamplers as bench
from mmdysample.benchmark.candidates import fused_kernels_off
from mmdysample.models.upsamplers import (DySample, dysample_sample_reference,
                                          fast_cpu, fast_triton)

CPU, CUDA = torch.device('cpu'), torch.device('cuda')
TOOL = osp.join(
    osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools',
    'benchmark_upsamplers.py')
SWITCHES = ('MMDYSAMPLE_FAST_CPU', 'MMDYSAMPLE_FAST_CUDA')


def test_sampler_names_follow_the_switches(monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    expected = ('cpu kernel' if fast_cpu.available() else
                'grid_sample (the CPU kernel could not be built)')
    assert bench.dysample_sampler(CPU) == expected
    monkeypatch.setenv('MMDYSAMPLE_FAST_CPU', '0')
    assert bench.dysample_sampler(CPU) == 'grid_sample (MMDYSAMPLE_FAST_CPU=0)'
    monkeypatch.setattr(fast_triton, '_import_triton', lambda: True)
    monkeypatch.setattr(fast_triton, '_installed_triton', lambda: '3.4.0')
    assert bench.dysample_sampler(CUDA) == 'triton'
    monkeypatch.setenv('MMDYSAMPLE_FAST_CUDA', '0')
    assert bench.dysample_sampler(CUDA) == (
        'grid_sample (MMDYSAMPLE_FAST_CUDA=0)')
    monkeypatch.delenv('MMDYSAMPLE_FAST_CUDA')
    monkeypatch.setattr(fast_triton, '_installed_triton', lambda: '2.1.0')
    assert bench.dysample_sampler(CUDA) == (
        'grid_sample (needs triton >= 3.4, found 2.1.0)')
    monkeypatch.setattr(fast_triton, '_installed_triton', lambda: None)
    assert bench.dysample_sampler(CUDA) == (
        'grid_sample (triton is not installed)')
    monkeypatch.setattr(fast_triton, '_installed_triton', lambda: '3.4.0')
    monkeypatch.setattr(fast_triton, '_import_triton', lambda: False)
    assert bench.dysample_sampler(CUDA) == (
        'grid_sample (triton failed to import)')


def test_fused_kernels_off_switches_and_restores(monkeypatch):
    monkeypatch.setenv('MMDYSAMPLE_FAST_CPU', '1')
    monkeypatch.delenv('MMDYSAMPLE_FAST_CUDA', raising=False)
    for name in ('dysample_sample_cpu', 'fused_sample_cpu'):
        monkeypatch.setattr(fast_cpu, name,
                            lambda *a: pytest.fail('a fused kernel ran'))
    layer = DySample(8, groups=2)
    x = torch.randn(1, 8, 4, 5)
    with fused_kernels_off():
        assert [os.environ[n] for n in SWITCHES] == ['0', '0']
        out = layer(x)
    torch.testing.assert_close(
        out, dysample_sample_reference(x, layer.sampling_offsets(x), 2, 2))
    assert os.environ['MMDYSAMPLE_FAST_CPU'] == '1'
    assert 'MMDYSAMPLE_FAST_CUDA' not in os.environ


def test_grid_sample_model_variant_runs_with_kernels_off():
    seen = []

    def record():
        seen.append(tuple(os.environ.get(n) for n in SWITCHES))

    task = models._with_fused_kernels_off(bench.Task(record, record))
    task.prepare()
    task.run()
    assert seen == [('0', '0')] * 2
    assert os.environ.get('MMDYSAMPLE_FAST_CPU') != '0'


def test_reference_candidate_is_the_papers_formulation(monkeypatch):
    torch.manual_seed(0)
    cand = bench.build_candidate(bench.REFERENCE, 16, 2, CPU)
    layer = cand.layer.layer
    torch.nn.init.normal_(layer.offset.weight, std=0.3)
    x = torch.randn(1, 16, 5, 4)
    expected = dysample_sample_reference(
        x, layer.sampling_offsets_reference(x), 2, 4)
    monkeypatch.setattr(
        DySample, 'sampling_offsets',
        lambda *a: pytest.fail('the fused projection ran'))
    monkeypatch.setattr(fast_cpu, 'dysample_sample_cpu',
                        lambda *a: pytest.fail('the CPU kernel ran'))
    torch.testing.assert_close(cand.layer(x), expected)
    assert cand.sampler == 'grid_sample'
    assert bench.build_candidate('DySample-S+', 16, 2, CPU).sampler == (
        bench.dysample_sampler(CPU))


def test_cuda_rounds_are_synchronised(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda device=None: events.append(('sync', device)))
    tasks = {
        'a': bench.Task(lambda: None, lambda: events.append('a')),
        'b': bench.Task(lambda: None, lambda: events.append('b')),
    }
    samples = bench.interleaved_timings(tasks, rounds=2, warmup=1,
                                        device=CUDA)
    assert {k: len(v) for k, v in samples.items()} == {'a': 2, 'b': 2}
    # Every call is bracketed by a synchronisation on the measured device.
    calls = [i for i, e in enumerate(events) if e in ('a', 'b')]
    assert len(calls) == 6
    for i in calls:
        assert events[i - 1] == events[i + 1] == ('sync', CUDA)


def test_cuda_peak_memory_is_the_allocator_peak(monkeypatch):
    state = dict(allocated=100, peak=100)
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda device=None: None)
    monkeypatch.setattr(torch.cuda, 'reset_peak_memory_stats',
                        lambda device=None: state.update(peak=100))
    monkeypatch.setattr(torch.cuda, 'memory_allocated',
                        lambda device=None: state['allocated'])
    monkeypatch.setattr(torch.cuda, 'max_memory_allocated',
                        lambda device=None: state['peak'])

    def run():
        state['peak'] = 450
        state['allocated'] = 150

    assert bench.peak_memory_bytes(bench.Task(lambda: None, run), CUDA) == 350


def test_machine_info_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'get_device_name',
                        lambda device=None: 'Fake GPU 80GB')
    monkeypatch.setattr(torch.backends.cudnn, 'version', lambda: 90100)
    info = bench.machine_info([CPU, CUDA])
    assert info['gpu'] == 'Fake GPU 80GB' and info['cudnn'] == 90100
    assert 'cuda' in info
    assert 'gpu' not in bench.machine_info([CPU])


# --------------------------------------------------------------------------
# Each preset on its grid_sample path, and the family without mmcv


@pytest.mark.parametrize('preset', list(DYSAMPLE_PRESETS))
def test_grid_sample_candidate_is_the_layer_with_its_kernels_off(
        preset, monkeypatch):
    name = preset + bench.GRID_SAMPLE
    cand = bench.build_candidate(name, 16, 2, CPU)
    layer = cand.layer.layer
    assert type(layer) is DySample and cand.sampler == 'grid_sample'
    torch.nn.init.normal_(layer.offset.weight, std=0.3)
    x = torch.randn(1, 16, 5, 4)
    with fused_kernels_off():
        expected = layer(x)
    for kernel in ('dysample_sample_cpu', 'fused_sample_cpu'):
        monkeypatch.setattr(fast_cpu, kernel,
                            lambda *a: pytest.fail('the CPU kernel ran'))
    torch.testing.assert_close(cand.layer(x), expected)


def test_grid_sample_candidates_are_opt_in_beside_their_preset():
    names = bench.grid_sample_names()
    assert names == [p + ' (grid_sample)' for p in DYSAMPLE_PRESETS]
    assert not set(names) & set(bench.candidate_names())
    assert bench.check_candidates(None) == bench.candidate_names()
    assert bench.check_candidates(['DySample+ (grid_sample)', 'DySample+',
                                   'DySample']) == [
        'bilinear', 'DySample', 'DySample+', 'DySample+ (grid_sample)'
    ]


def test_tool_adds_the_grid_sample_rows_of_the_measured_presets():
    spec = importlib.util.spec_from_file_location(
        'benchmark_upsamplers_paths', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(['--candidates', 'DySample-S', 'nearest',
                            '--grid-sample-paths'])
    assert args.candidates == [
        'DySample-S', 'nearest', 'DySample-S (grid_sample)'
    ]
    every = tool.parse_args(['--grid-sample-paths']).candidates
    assert every == bench.candidate_names() + bench.grid_sample_names()
    assert tool.parse_args([]).candidates is None


def test_stock_upsamplers_without_mmcv(monkeypatch):
    # What the registry holds where mmcv.cnn never registered its layers.
    for name in ('nearest', 'bilinear', 'deconv', 'pixel_shuffle'):
        monkeypatch.delitem(MODELS._module_dict, name, raising=False)
    x = torch.randn(1, 8, 5, 4)
    for name in ('nearest', 'bilinear'):
        layer = bench.build_candidate(name, 8, 2, CPU).layer
        assert type(layer) is torch.nn.Upsample
        torch.testing.assert_close(
            layer(x), torch.nn.functional.interpolate(
                x, scale_factor=2, mode=name,
                align_corners=False if name == 'bilinear' else None))
    cands = bench.build_candidates(['deconv', 'pixel_shuffle', 'bilinear'],
                                   8, 2, CPU)
    skips = {c.name: c.skip for c in cands}
    assert skips['bilinear'] == ''
    for name in ('deconv', 'pixel_shuffle'):
        assert 'mmcv.cnn' in skips[name] and repr(name) in skips[name]
    result = bench.benchmark_shape(cands, (1, 8, 5, 4), 2, CPU, rounds=1,
                                   warmup=0)
    assert [r['name'] for r in result['results']] == ['bilinear']
    assert [s['name'] for s in result['skipped']] == ['deconv',
                                                      'pixel_shuffle']
    # The machine facts name no mmcv where it cannot be imported.
    monkeypatch.setitem(sys.modules, 'mmcv', None)
    assert bench.machine_info([CPU])['mmcv'] is None
