# Copyright (c) mmdysample contributors. All rights reserved.
"""The upsampler benchmark: the harness, the guided candidates, the tool."""
import contextlib
import importlib.util
import io
import json
import os.path as osp
import re

import cv2
import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from mmdysample.benchmark import upsamplers as bench
from mmdysample.models.guide import GuidedUpsampler
from mmdysample.models.upsamplers import carafe_reassemble, sampling

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/analysis_tools/benchmark_upsamplers.py')
CPU = torch.device('cpu')
#: The guided upsamplers of the paper's tables (issue 17).
PAPER_GUIDED = ('IndexNet', 'A2U', 'FADE', 'SAPA-B')


# --------------------------------------------------------------------------
# Measurement


def test_interleaving_runs_every_task_once_per_round_in_varying_order():
    calls = []
    tasks = {
        key: bench.Task(lambda: None, lambda key=key: calls.append(key))
        for key in 'abcd'
    }
    samples = bench.interleaved_timings(
        tasks, rounds=5, warmup=2, device=torch.device('cpu'), seed=1)
    rounds = [calls[i:i + 4] for i in range(0, len(calls), 4)]
    assert len(rounds) == 7
    assert all(sorted(r) == list('abcd') for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1, 'order never changes'
    assert {k: len(v) for k, v in samples.items()} == dict.fromkeys('abcd', 5)
    assert all(t > 0 for v in samples.values() for t in v)


def test_cpu_peak_memory_sees_tensors_held_at_once():
    mib = 2**20

    def two_at_once():
        a = torch.ones(mib // 4)  # 1 MiB
        b = torch.ones(mib // 2)  # 2 MiB
        del a, b

    def one_after_another():
        for _ in range(3):
            torch.ones(mib // 4)

    cpu = torch.device('cpu')
    peak = bench.peak_memory_bytes(bench.Task(lambda: None, two_at_once), cpu)
    assert 3 * mib <= peak < 3 * mib + 64 * 1024
    peak = bench.peak_memory_bytes(
        bench.Task(lambda: None, one_after_another), cpu)
    assert mib <= peak < mib + 64 * 1024


def test_sweep_shapes():
    assert bench.sweep_shapes((16, 8, 8)) == [(1, 16, 8, 8)]
    assert bench.sweep_shapes((16, 8, 8), [8, 4], [1, 2]) == [
        (1, 16, 8, 8), (2, 16, 8, 8), (1, 16, 4, 4), (2, 16, 4, 4)
    ]
    assert bench.sweep_shapes((16, 8, 6), None, [3]) == [
        (1, 16, 8, 6), (3, 16, 8, 6)
    ]


def test_reference_candidate_follows_the_sampling_module(monkeypatch):
    monkeypatch.delattr(
        sampling, 'dysample_sample_reference', raising=False)
    assert bench.REFERENCE not in bench.candidate_names()
    with pytest.raises(ValueError, match=re.escape(repr(bench.REFERENCE))):
        bench.check_candidates([bench.REFERENCE])

    monkeypatch.setattr(
        sampling, 'dysample_sample_reference', sampling.dysample_sample,
        raising=False)
    assert bench.candidate_names()[-1] == bench.REFERENCE
    torch.manual_seed(0)
    cand = bench.build_candidate(bench.REFERENCE, 16, 2, torch.device('cpu'))
    torch.manual_seed(0)
    layer = bench.build_candidate('DySample', 16, 2, torch.device('cpu'))
    x = torch.randn(1, 16, 4, 5)
    assert cand.label == bench.REFERENCE
    torch.testing.assert_close(cand.layer(x), layer.layer(x))


def test_models_missing_configs_are_skipped_with_a_note(tmp_path):
    notes = []
    result = bench.benchmark_models(
        torch.device('cpu'), config_dir=str(tmp_path), log=notes.append)
    assert result['results'] == []
    assert [s['model'] for s in result['skipped']] == [
        p[0] for p in bench.MODEL_PAIRS
    ]
    assert len(notes) == 2 and all('missing' in n for n in notes)


# --------------------------------------------------------------------------
# Guided candidates


class TinyGuided(GuidedUpsampler):
    """A guided upsampler no table can know: kernels from the guide."""

    def __init__(self, in_channels: int, scale_factor: int = 2) -> None:
        super().__init__(in_channels, scale_factor)
        self.encoder = nn.Conv2d(in_channels, 9, 1)

    def forward(self, x, guide):
        self.check_guide(x, guide)
        masks = self.encoder(guide).softmax(1)
        return carafe_reassemble(x, masks, 3, 1, self.scale_factor)


def conv_flops(layer, inputs):
    """Multiply-adds of the layer's convolutions alone: a lower bound that
    leaves out the reassembly (and everything else)."""
    total, hooks = [0], []

    def count(conv, _, out):
        taps = conv.in_channels // conv.groups * conv.weight[0, 0].numel()
        total[0] += out.numel() * taps

    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(count))
    with torch.no_grad():
        layer.eval()(*inputs)
    for h in hooks:
        h.remove()
    return total[0]


def test_guided_candidates_come_from_the_registry(monkeypatch):
    names = bench.guided_upsamplers()
    assert set(PAPER_GUIDED) <= set(names), names
    monkeypatch.setitem(MODELS._module_dict, 'TinyGuidedForTest', TinyGuided)
    assert bench.guided_upsamplers() == names + ['TinyGuidedForTest']
    order = bench.candidate_names()
    # Between the stock upsamplers and DySample, as in the paper's tables.
    assert order.index('carafe') < order.index(bench.CARAFE_UNFOLD) < min(
        order.index(n) for n in names) < order.index('DySample')
    cand = bench.build_candidate('TinyGuidedForTest', 8, 2, CPU)
    assert cand.guided and cand.label == 'TinyGuidedForTest'
    assert not bench.build_candidate('DySample', 16, 2, CPU).guided
    assert bench.check_candidates(['TinyGuidedForTest']) == [
        'bilinear', 'TinyGuidedForTest'
    ]


def test_guided_candidates_run_with_their_guide():
    """Every guided candidate on a tiny input: called with a guide of
    (N, C, sH, sW) in both passes (the guide gets a gradient in fwd+bwd),
    its Params those of the layer, its FLOPs counted with the guide and
    above what its convolutions alone cost."""
    names = bench.guided_upsamplers()
    candidates = [bench.build_candidate(n, 32, 2, CPU) for n in names]
    seen = {}

    def record(layer, args):
        seen.setdefault(id(layer), []).append(
            [(tuple(a.shape), a.requires_grad) for a in args])

    hooks = [c.layer.register_forward_pre_hook(record) for c in candidates]
    shape = (2, 32, 5, 6)
    result = bench.benchmark_shape(candidates, shape, 2, CPU, rounds=1,
                                   warmup=0)
    for h in hooks:
        h.remove()
    assert [r['name'] for r in result['results']] == names
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    guide = torch.randn(2, 32, 10, 12, generator=gen)
    for cand, r in zip(candidates, result['results']):
        assert r['guide_shape'] == [2, 32, 10, 12], r['name']
        calls = seen[id(cand.layer)]
        assert all([s for s, _ in call] == [shape, (2, 32, 10, 12)]
                   for call in calls), (r['name'], calls)
        # x and the guide need a gradient in the fwd+bwd calls (one timed,
        # one for the memory), and neither does elsewhere.
        grads = [tuple(g for _, g in call) for call in calls]
        assert grads.count((True, True)) == 2, (r['name'], grads)
        assert set(grads) == {(False, False), (True, True)}, r['name']
        assert r['params'] == sum(p.numel() for p in cand.layer.parameters())
        assert r['params'] > 0
        assert r['flops'] > conv_flops(cand.layer, (x, guide)) > 0, r['name']
        for pass_ in ('fwd', 'fwd_bwd'):
            assert r[pass_]['median_ms'] > 0
            assert r[pass_]['peak_mem_bytes'] > 0
    table = bench.format_upsampler_table(result, 2)
    assert re.search(
        r'^guided \(also read a guide of 2 x 32 x 10 x 12, .*\): ' +
        ', '.join(map(re.escape, names)) + '$', table, re.M), table


def test_carafe_unfold_is_not_timed_twice_on_cpu():
    both = bench.build_candidates(['carafe', bench.CARAFE_UNFOLD], 16, 2, CPU)
    assert both[0].label == 'carafe (unfold, CPU)' and not both[0].skip
    assert 'same layer' in both[1].skip
    alone, = bench.build_candidates([bench.CARAFE_UNFOLD], 16, 2, CPU)
    assert alone.label == bench.CARAFE_UNFOLD_LABEL and not alone.skip
    result = bench.benchmark_shape(both, (1, 16, 4, 4), 2, CPU, 1, 0)
    assert [r['name'] for r in result['results']] == ['carafe']
    assert [s['name'] for s in result['skipped']] == [bench.CARAFE_UNFOLD]


# --------------------------------------------------------------------------
# The CLI


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('benchmark_upsamplers',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def quick_run(tool, tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    argv = [
        '--quick', '--device', 'cpu', '--sweep', '8', '--batch-sizes', '1',
        '2', '--out-json',
        str(out / 'b.json'), '--out-png',
        str(out / 'b.png')
    ]
    stdout = io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(stdout):
        tool.main(argv)
    assert torch.get_num_threads() == threads, 'threads not restored'
    with open(out / 'b.json') as f:
        return json.load(f), stdout.getvalue(), out / 'b.png'


def test_quick_json_has_every_candidate_with_positive_medians(quick_run):
    results, _, _ = quick_run
    # On a CPU the carafe row times CARAFEUnfold already.
    names = [n for n in bench.candidate_names() if n != bench.CARAFE_UNFOLD]
    configs = results['upsamplers']
    assert [c['shape'] for c in configs] == [[1, 32, 8, 8], [2, 32, 8, 8]]
    for config in configs:
        assert [r['name'] for r in config['results']] == names
        assert [s['name'] for s in config['skipped']] == [bench.CARAFE_UNFOLD]
        n = config['shape'][0]
        guided = [r['name'] for r in config['results'] if r['guide_shape']]
        assert guided == bench.guided_upsamplers()
        assert all(r['guide_shape'] == [n, 32, 16, 16]
                   for r in config['results'] if r['guide_shape'])
        for r in config['results']:
            for pass_ in ('fwd', 'fwd_bwd'):
                stats = r[pass_]
                assert len(stats['samples_ms']) == 3
                assert stats['median_ms'] > 0
                assert stats['peak_mem_bytes'] > 0
            assert r['flops'] > 0
        base = next(r for r in config['results'] if r['name'] == 'bilinear')
        assert set(base['ratio_to_bilinear'].values()) == {1.0}
        assert base['params'] == 0
        dysample = next(
            r for r in config['results'] if r['name'] == 'DySample')
        assert dysample['ratio_to_bilinear']['fwd'] == pytest.approx(
            dysample['fwd']['median_ms'] / base['fwd']['median_ms'])
        carafe = next(r for r in config['results'] if r['name'] == 'carafe')
        assert carafe['label'] == 'carafe (unfold, CPU)'
        reference = next(
            r for r in config['results'] if r['name'] == bench.REFERENCE)
        assert dysample['ratio_to_reference']['fwd_bwd'] == pytest.approx(
            dysample['fwd_bwd']['median_ms'] /
            reference['fwd_bwd']['median_ms'])
        assert dysample['sampler'] == bench.dysample_sampler(
            torch.device('cpu'))
        assert reference['sampler'] == 'grid_sample'
        assert 'ratio_to_reference' not in reference
    machine = results['machine']
    assert machine['cpu'] and machine['torch'] == torch.__version__
    assert results['settings']['threads'] == machine['threads'] == 2
    assert results['models'] == []


def test_quick_table_lists_every_candidate(quick_run):
    results, stdout, _ = quick_run
    number = r'\s+[\d.]+[KMG]?'
    for label in (r['label'] for r in results['upsamplers'][0]['results']):
        rows = re.findall(
            rf'^{re.escape(label)}' + number * 10 + r'\s*$', stdout, re.M)
        assert len(rows) == 2, (label, stdout)
    bilinear = re.search(r'^bilinear\s.*$', stdout, re.M).group(0).split()
    assert bilinear[4::2] == ['1.00'] * 4
    sampler = bench.dysample_sampler(torch.device('cpu'))
    assert len(re.findall(
        rf'^DySample \({re.escape(sampler)}\) / DySample \(reference\): '
        r'fwd [\d.]+, fwd\+bwd [\d.]+$', stdout, re.M)) == 2, stdout


def test_quick_chart_reads_back(quick_run):
    _, _, png = quick_run
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_cli_guided_candidate(tool, tmp_path, capsys):
    results = tool.main([
        '--quick', '--device', 'cpu', '--candidates', 'FADE', '--rounds',
        '1', '--out-json',
        str(tmp_path / 'b.json'), '--out-png',
        str(tmp_path / 'b.png')
    ])
    config, = results['upsamplers']
    assert [r['name'] for r in config['results']] == ['bilinear', 'FADE']
    bilinear, fade = config['results']
    assert bilinear['guide_shape'] is None
    assert fade['guide_shape'] == [1, 32, 16, 16]
    assert fade['params'] > 0 and fade['flops'] > bilinear['flops']
    out = capsys.readouterr().out
    number = r'\s+[\d.]+[KMG]?'
    assert re.search(r'^FADE' + number * 10 + r'\s*$', out, re.M), out
    assert re.search(r'^guided \(also read a guide of 1 x 32 x 16 x 16, .*'
                     r'\): FADE$', out, re.M), out
    with open(tmp_path / 'b.json') as f:
        assert json.load(f)['upsamplers'][0]['results'][1]['guide_shape'] \
            == [1, 32, 16, 16]
    assert cv2.imread(str(tmp_path / 'b.png')) is not None


@pytest.mark.parametrize('argv,named', [
    (['--candidates', 'bilinear', 'DySampel'], 'DySampel'),
    (['--rounds', '0'], "'0'|0"),
    (['--rounds', '-2'], '-2'),
    (['--warmup', '-1'], '-1'),
    (['--shape', '16', '0', '8'], '0'),
])
def test_bad_options_are_named(tool, capsys, argv, named):
    with pytest.raises(SystemExit) as exc:
        tool.parse_args(['--quick'] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(named, err.splitlines()[-1]), err


def test_bad_arguments_to_the_library_are_named():
    with pytest.raises(ValueError, match="'nope'"):
        bench.check_candidates(['bilinear', 'nope'])
    with pytest.raises(ValueError, match='rounds must be an int >= 1, got 0'):
        bench.run_benchmark(rounds=0)
    with pytest.raises(ValueError, match='warmup must be an int >= 0'):
        bench.interleaved_timings({}, 1, -1, torch.device('cpu'))


@pytest.mark.slow
def test_quick_models(tool, tmp_path, capsys):
    results = tool.main([
        '--quick', '--device', 'cpu', '--models', '--candidates', 'DySample',
        '--out-json',
        str(tmp_path / 'b.json'), '--out-png',
        str(tmp_path / 'b.png')
    ])
    models = results['models'][0]
    assert models['skipped'] == []
    assert [(r['model'], r['variant']) for r in models['results']] == [
        ('Faster R-CNN R50-FPN', 'DySample'),
        ('Faster R-CNN R50-FPN', 'nearest'),
        ('SegFormer-B1', 'DySample'),
        ('SegFormer-B1', 'bilinear'),
    ]
    for r in models['results']:
        assert r['inference']['median_ms'] > 0
        assert r['train_step']['peak_mem_bytes'] > 0
        if r['variant'] != 'DySample':
            assert set(r['ratio_to_baseline'].values()) == {1.0}
        else:
            assert r['params'] > 0
    out = capsys.readouterr().out
    assert re.search(r'^SegFormer-B1\s+DySample\s', out, re.M)
