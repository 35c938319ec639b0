# Copyright (c) mmdysample contributors. All rights reserved.
"""The CPU CARAFE twin and the upsampler benchmark tool."""
import contextlib
import importlib.util
import io
import json
import os.path as osp
import re

import cv2
import pytest
import torch

from mmdysample.benchmark import CARAFEUnfold, carafe_unfold
from mmdysample.benchmark import upsamplers as bench
from mmdysample.models.upsamplers import sampling

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/analysis_tools/benchmark_upsamplers.py')


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
# carafe_unfold / CARAFEUnfold


@pytest.mark.parametrize('k,groups,s', [(1, 1, 1), (3, 1, 2), (5, 2, 2),
                                        (3, 4, 3), (5, 1, 1)])
def test_carafe_unfold_matches_loop(k, groups, s):
    gen = torch.Generator().manual_seed(k * 100 + groups * 10 + s)
    features = torch.randn(2, 8, 3, 5, generator=gen, dtype=torch.float64)
    # Unnormalised, signed masks: nothing may rely on a softmax.
    masks = torch.randn(
        2, groups * k * k, 3 * s, 5 * s, generator=gen, dtype=torch.float64)
    expected = loop_carafe(features, masks, k, groups, s)
    out = carafe_unfold(features, masks, k, groups, s)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


def test_carafe_unfold_non_contiguous_and_empty_batch():
    features = torch.randn(1, 4, 6, 5, dtype=torch.float64).transpose(2, 3)
    masks = torch.randn(1, 9, 10, 12, dtype=torch.float64)
    torch.testing.assert_close(
        carafe_unfold(features, masks, 3, 1, 2),
        loop_carafe(features, masks, 3, 1, 2))
    empty = carafe_unfold(torch.rand(0, 4, 3, 3), torch.rand(0, 9, 6, 6), 3,
                          1, 2)
    assert empty.shape == (0, 4, 6, 6)


def test_carafe_unfold_gradcheck():
    features = torch.randn(1, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    masks = torch.randn(
        1, 2 * 9, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda f, m: carafe_unfold(f, m, 3, 2, 2), (features, masks))


@pytest.mark.parametrize('kwargs,match', [
    (dict(kernel_size=4), 'kernel_size must be odd, got 4'),
    (dict(group_size=3), r'channels \(8\) must be divisible by group_size'),
    (dict(scale_factor=0), 'scale_factor must be >= 1, got 0'),
    (dict(scale_factor=3), r'masks must have shape \(1, 9, 9, 12\)'),
])
def test_carafe_unfold_rejects_bad_arguments(kwargs, match):
    args = {**dict(kernel_size=3, group_size=1, scale_factor=2), **kwargs}
    with pytest.raises(ValueError, match=match):
        carafe_unfold(torch.rand(1, 8, 3, 4), torch.rand(1, 9, 6, 8), **args)


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


def test_carafe_unfold_module_loads_carafepack_and_matches_its_pipeline():
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


def test_carafe_unfold_module_shapes_and_gradients():
    layer = CARAFEUnfold(8, scale_factor=3, up_group=2)
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 8, 15, 21)
    out.backward(torch.randn_like(out))
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.gpu
def test_carafe_unfold_matches_mmcv_on_cuda():
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
    names = bench.candidate_names()
    configs = results['upsamplers']
    assert [c['shape'] for c in configs] == [[1, 16, 8, 8], [2, 16, 8, 8]]
    for config in configs:
        assert [r['name'] for r in config['results']] == names
        assert config['skipped'] == []
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
