# Copyright (c) mmdysample contributors. All rights reserved.
"""tools/analysis_tools/compare_upsamplers.py and mmdysample.experiments.

The slow part is one sweep on the tiny built-in data (SegFormer-B0, seed 0,
two iterations): ``bilinear``, an upsampler that always fails (registered
by a plugin module through ``custom_imports``) and ``DySample-S+``. A second
call with the two that finished must train nothing, and the tables must
hold the numbers of the runs' metrics files. The fast part checks the
statistics on hand-made numbers, the config walking and the errors that
stop a sweep before any training.
"""
import copy
import csv
import importlib.util
import json
import math
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from matplotlib.image import imread
from mmengine.config import Config
from train_helpers import (FASTER_RCNN, MASKFORMER, REPO, SEGFORMER,
                           assert_same_weights, tiny_seg_options, train,
                           weights)

from mmdysample.experiments import (config_for_run, difference,
                                    find_upsample_hosts, mean_std_se,
                                    plan_sweep, summarize)
from mmdysample.experiments import runs as runs_module
from mmdysample.experiments.report import fmt_diff, markdown
from mmdysample.models import build_upsampler
from mmdysample.utils.complexity import baseline_config
from mmdysample.utils.model import build_model

TOOL = 'tools/analysis_tools/compare_upsamplers.py'
FAILING = 'FailsOnPurpose'
PLUGIN = textwrap.dedent(f'''
    import torch.nn as nn
    from mmengine.registry import MODELS


    @MODELS.register_module('{FAILING}')
    class FailsOnPurpose(nn.Module):
        def __init__(self, in_channels, scale_factor=2):
            super().__init__()
            self.scale_factor = scale_factor

        def forward(self, x):
            raise RuntimeError('{FAILING} fails in every forward')
''')


def compare(work_dir, data_root, plugin_dir, *args):
    """``(returncode, output)`` of the tool on the tiny ADE data, with the
    failing upsampler's module importable and imported."""
    options = tiny_seg_options(data_root, 2) + [
        'custom_imports.imports=[mmdysample,failing_upsampler]'
    ]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([REPO, str(plugin_dir)]),
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, TOOL, SEGFORMER, '--work-dir',
         str(work_dir), *args, *options],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    return proc.returncode, proc.stdout


def run_files(work_dir):
    """Every file under the run directories, with its mtime."""
    found = {}
    for root, _, files in os.walk(work_dir):
        if osp.relpath(root, work_dir) == '.':
            continue  # the results files are rewritten on purpose
        for name in files:
            path = osp.join(root, name)
            found[path] = os.stat(path).st_mtime_ns
    return found


@pytest.fixture(scope='module')
def sweep(data_root, tmp_path_factory):
    """The first call (three upsamplers), then the second (the two that
    finished); what each printed and left."""
    plugin_dir = tmp_path_factory.mktemp('plugin')
    (plugin_dir / 'failing_upsampler.py').write_text(PLUGIN)
    work_dir = tmp_path_factory.mktemp('compare')
    first = compare(work_dir, data_root, plugin_dir, '--upsamplers',
                    'bilinear', FAILING, 'DySample-S+', '--seeds', '0')
    first_md = (work_dir / 'results.md').read_text()
    files = run_files(work_dir)
    second = compare(work_dir, data_root, plugin_dir, '--upsamplers',
                     'bilinear', 'DySample-S+', '--seeds', '0')
    return dict(
        work_dir=work_dir,
        data_root=data_root,
        plugin_dir=plugin_dir,
        first=first,
        first_md=first_md,
        files=files,
        second=second)


def record(work_dir, name):
    with open(work_dir / name / 'seed_0' / 'metrics.json') as f:
        return json.load(f)


def md_rows(text, header_start):
    """The rows of the markdown table whose header starts so, as dicts."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip('|').split('|')]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def assert_shown(cell, value):
    """The first number of a cell is ``value`` to the digits shown."""
    text = cell.split()[0]
    decimals = len(text.split('.')[1]) if '.' in text else 0
    assert abs(float(text) - value) <= 0.5 * 10**-decimals + 1e-12, (cell,
                                                                     value)


@pytest.mark.slow
def test_first_call_records_the_failure_and_goes_on(sweep):
    code, log = sweep['first']
    assert code == 1, log[-3000:]  # some run failed
    assert re.search(
        rf'run 2/3: {FAILING} seed 0: FAILED: RuntimeError: {FAILING} '
        r'fails in every forward', log), log[-3000:]
    assert re.search(r'run 3/3: DySample-S\+ seed 0: done in', log)
    assert '1 trained now' not in log and '2 trained now' in log
    # Progress: how many are left and an ETA from the finished runs.
    assert 'run 1/3: bilinear seed 0: training (3 left' in log
    assert 'ETA unknown until a run finishes' in log
    assert re.search(r'run 3/3: DySample-S\+ seed 0: training \(1 left '
                     r'including this one; ETA \d+ s', log)

    failed_dir = sweep['work_dir'] / FAILING / 'seed_0'
    assert not (failed_dir / 'metrics.json').exists()
    error = json.loads((failed_dir / 'error.json').read_text())
    assert error['error'] == (f'RuntimeError: {FAILING} fails in every '
                              'forward')
    assert 'Traceback' in open(error['log']).read()
    failures = md_rows(sweep['first_md'], '| upsampler | seed | error')
    assert failures[FAILING]['error'] == error['error']


@pytest.mark.slow
def test_second_call_trains_nothing(sweep):
    code, log = sweep['second']
    assert code == 0, log[-3000:]
    for name in ('bilinear', r'DySample-S\+'):
        assert re.search(rf'{name} seed 0: done before \(metrics.json '
                         r'present\), skipped', log)
    assert '2 runs: 0 trained now, 2 done before, 0 failed' in log
    assert 'Iter(train)' not in log and 'Iter(test)' not in log
    # No file of a run directory was written or added.
    before = {
        p: t
        for p, t in sweep['files'].items() if f'{os.sep}{FAILING}' not in p
    }
    after = {
        p: t
        for p, t in run_files(sweep['work_dir']).items()
        if f'{os.sep}{FAILING}' not in p
    }
    assert after == before


@pytest.mark.slow
def test_report_only_trains_nothing_and_lists_the_pending(
        sweep, tool, tmp_path, monkeypatch, capsys):
    """On a copy of the sweep (moved: the records still match), a third
    upsampler named: the tables of the finished runs, that one pending,
    no run directory written (in process: the ``tool`` fixture fails the
    test if a run starts)."""
    work_dir = tmp_path / 'moved'
    shutil.copytree(sweep['work_dir'], work_dir)
    before = run_files(work_dir)
    monkeypatch.syspath_prepend(str(sweep['plugin_dir']))
    options = tiny_seg_options(sweep['data_root'], 2) + [
        'custom_imports.imports=[mmdysample,failing_upsampler]'
    ]
    code = tool([
        SEGFORMER, '--work-dir',
        str(work_dir), '--upsamplers', 'bilinear', 'DySample-S+', 'DySample',
        '--seeds', '0', '--report-only', *options
    ])
    log = capsys.readouterr().out
    assert code == 0, log[-3000:]
    assert ('report only: 2 of 3 runs finished, 1 pending, nothing '
            'trained') in log
    assert run_files(work_dir) == before
    assert not (work_dir / 'DySample').exists()
    results = json.loads((work_dir / 'results.json').read_text())
    assert results['pending'] == [['DySample', 0]]
    text = (work_dir / 'results.md').read_text()
    assert 'Not run yet: DySample seed 0.' in text
    rows = md_rows(text, '| upsampler | seeds')
    assert_shown(rows['DySample-S+']['mIoU (mean ± std)'],
                 record(work_dir, 'DySample-S+')['metrics']['mIoU'])
    assert rows['DySample']['seeds'] == '0'


@pytest.mark.slow
def test_tables_hold_the_runs_numbers(sweep):
    work_dir = sweep['work_dir']
    names = ['bilinear', 'DySample-S+']
    records = {name: record(work_dir, name) for name in names}
    assert set(records['bilinear']['metrics']) == {
        'aAcc', 'mIoU', 'mAcc', 'bIoU'
    }
    results = json.loads((work_dir / 'results.json').read_text())
    assert results['main_metric'] == 'mIoU'
    assert results['baseline'] == 'bilinear'
    for run in results['runs']:
        assert run['metrics'] == records[run['upsampler']]['metrics']
    with open(work_dir / 'results.csv') as f:
        rows = {row['upsampler']: row for row in csv.DictReader(f)}
    md = (work_dir / 'results.md').read_text()
    every = md_rows(md, '| upsampler | aAcc')
    main = md_rows(md, '| upsampler | seeds')
    for name in names:
        for key, value in records[name]['metrics'].items():
            assert float(rows[name][key]) == value
            assert_shown(every[name][key], value)
        assert_shown(main[name]['mIoU (mean ± std)'],
                     records[name]['metrics']['mIoU'])
        latency = records[name]['latency']['ms_per_image']
        assert float(rows[name]['latency_ms_per_image']) == latency
        assert latency > 0
    diff = (records['DySample-S+']['metrics']['mIoU'] -
            records['bilinear']['metrics']['mIoU'])
    assert_shown(main['DySample-S+']['Δ vs bilinear, unpaired (± SE)'],
                 diff)
    assert_shown(main['DySample-S+']['Δ paired (± SE)'], diff)
    # One seed: no spread, so no t test and nothing to detect with.
    assert main['DySample-S+']['t (95 % threshold)'] == 'n/a'
    assert main['DySample-S+']['verdict'] == 'n/a'
    assert main['DySample-S+']['detectable Δ'] == 'n/a'
    assert '**What this sweep can detect** on `mIoU`: n/a' in md

    # +Params: bilinear adds nothing to the stock head; DySample-S+ adds
    # one layer per x2 stage at the head's channels.
    cfg = Config.fromfile(SEGFORMER)
    head = cfg.model.decode_head
    stages = sum(range(len(head.in_channels)))  # 0 + 1 + 2 + 3
    layer = build_upsampler('DySample-S+', head.channels)
    expected = stages * sum(p.numel() for p in layer.parameters())
    assert stages == 6 and expected > 0
    summary = {s['upsampler']: s for s in results['summary']}
    stock = build_model(baseline_config(cfg))
    assert summary['bilinear']['params'] == sum(
        p.numel() for p in stock.parameters())
    assert summary['bilinear']['delta_params'] == 0
    assert summary['DySample-S+']['delta_params'] == expected
    assert int(rows['DySample-S+']['delta_params']) == expected
    assert main['bilinear']['+Params'] == '0'
    assert main['DySample-S+']['+Params'] == f'{expected:+,d}'

    image = imread(str(work_dir / 'results.png'))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image.std() > 0  # not a blank canvas


@pytest.mark.slow
def test_a_sweep_run_is_what_tools_train_does(sweep, tmp_path):
    """DySample-S+ was the third Runner of the sweep's process, after a
    failed one; tools/train.py alone trains the same weights."""
    alone = tmp_path / 'alone'
    train(SEGFORMER, alone,
          tiny_seg_options(sweep['data_root'], 2) +
          ['model.decode_head.upsample_cfg=DySample-S+', 'randomness.seed=0'])
    ours = record(sweep['work_dir'], 'DySample-S+')['checkpoint']
    assert_same_weights(weights(alone / 'iter_2.pth'), weights(ours))


@pytest.mark.slow
def test_a_metric_not_reported_stops_before_training(sweep):
    code, log = compare(sweep['work_dir'], sweep['data_root'],
                        sweep['plugin_dir'], '--upsamplers', 'bilinear',
                        'DySample-S+', '--seeds', '0', '--metric', 'mAP')
    assert code == 2, log[-3000:]
    assert "error: --metric 'mAP' is not among the metrics" in log
    assert "['aAcc', 'mIoU', 'mAcc', 'bIoU']" in log
    assert 'Iter(train)' not in log


# --- fast: statistics -------------------------------------------------------


def test_mean_std_se_on_hand_made_numbers():
    stats = mean_std_se([86.33, 86.42])
    assert stats['n'] == 2
    assert stats['mean'] == pytest.approx(86.375)
    assert stats['std'] == pytest.approx(0.09 / math.sqrt(2))
    assert stats['se'] == pytest.approx(0.045)
    assert mean_std_se([1.0, 2.0, 6.0]) == pytest.approx(
        dict(n=3, mean=3.0, std=math.sqrt(7), se=math.sqrt(7 / 3)))
    assert mean_std_se([5.0]) == dict(n=1, mean=5.0, std=None, se=None)
    assert mean_std_se([])['mean'] is None


def test_difference_exceeds_two_standard_errors_or_not():
    """The unpaired ``beyond_2se`` that results.json keeps for older
    readers."""
    base = mean_std_se([86.33, 86.42])  # se 0.045
    clear = difference(mean_std_se([87.0, 87.1]), base)
    assert clear['diff'] == pytest.approx(87.05 - 86.375)
    assert clear['se'] == pytest.approx(math.hypot(0.05, 0.045))
    assert clear['beyond_2se'] is True
    # the pilot of issue 19: DySample-S+ 86.49 / 86.31 against bilinear
    noise = difference(mean_std_se([86.49, 86.31]), base)
    assert noise['diff'] == pytest.approx(0.025)
    assert noise['beyond_2se'] is False
    single = difference(mean_std_se([90.0]), base)
    assert single['diff'] == pytest.approx(90.0 - 86.375)
    assert single['se'] is None and single['beyond_2se'] is None


def _record(name, seed, miou, status='ok'):
    return dict(
        upsampler=name,
        seed=seed,
        status=status,
        metrics=dict(mIoU=miou) if status == 'ok' else {},
        train_time_s=10.0 + seed,
        latency=dict(ms_per_image=2.0 * (seed + 1)))


def test_summarize_hand_made_records():
    records = [_record('bilinear', s, v) for s, v in enumerate([1, 2, 3])]
    records += [_record('DySample', s, v) for s, v in enumerate([5, 6, 7])]
    records += [_record('DySample', 3, None, status='failed')]
    complexity = dict(
        bilinear=dict(params=100, flops=1e9),
        DySample=dict(params=124, flops=1.5e9))
    base, dys = summarize(records, ['bilinear', 'DySample'], complexity)
    assert base['upsampler'] == 'bilinear' and base['delta_params'] == 0
    assert dys['seeds'] == [0, 1, 2] and dys['failed'] == [3]
    assert dys['delta_params'] == 24 and dys['delta_flops'] == 0.5e9
    assert dys['metrics']['mIoU']['values'] == [5, 6, 7]
    assert dys['metrics']['mIoU']['mean'] == 6.0
    assert dys['latency_ms'] == pytest.approx(4.0)
    assert dys['train_time_s'] == pytest.approx(11.0)
    versus = dys['vs_baseline']['mIoU']
    assert versus['diff'] == 4.0
    assert versus['se'] == pytest.approx(math.sqrt(2 / 3))
    assert versus['beyond_2se'] is True
    # every seed 4 above its baseline: no spread, a certain difference
    assert versus['paired']['diff'] == 4.0 and versus['paired']['sd'] == 0
    assert versus['paired']['t'] is None and versus['significant'] is True
    assert versus['verdict'] == 'better'
    assert base['vs_baseline']['mIoU']['diff'] == 0.0

    info = dict(
        config='c.py',
        seeds=[0, 1, 2, 3],
        baseline='bilinear',
        main_metric='mIoU',
        created='now')
    rows = md_rows(markdown(info, [base, dys], records),
                   '| upsampler | seeds')
    assert rows['DySample']['verdict'] == 'better'
    assert rows['DySample']['t (95 % threshold)'] == '+inf (4.30)'
    assert rows['DySample']['Δ paired (± SE)'] == '+4.000 ± 0.000'
    assert rows['DySample']['seeds'] == '3 (+1 failed)'
    assert rows['DySample']['mIoU (mean ± std)'] == '6.000 ± 1.000'
    assert rows['DySample']['+Params'] == '+24'
    assert rows['bilinear']['Δ vs bilinear, unpaired (± SE)'] == 'baseline'


def test_a_metric_with_no_ground_truth_leaves_the_every_metric_table():
    records = []
    maps = dict(nearest=[0.60, 0.62], DySample=[0.63, 0.65])
    for name, values in maps.items():
        for seed, value in enumerate(values):
            records.append(
                dict(
                    _record(name, seed, None),
                    metrics={
                        'coco/bbox_mAP': value,
                        'coco/bbox_mAP_s': value - 0.1,
                        'coco/bbox_mAP_l': -1.0
                    }))
    summaries = summarize(records, ['nearest', 'DySample'], {})
    info = dict(
        config='c.py',
        seeds=[0, 1],
        baseline='nearest',
        main_metric='coco/bbox_mAP',
        created='now')
    text = markdown(info, summaries, records)
    rows = md_rows(text, '| upsampler | coco/bbox_mAP |')
    assert set(rows['DySample']) == {
        'upsampler', 'coco/bbox_mAP', 'coco/bbox_mAP_s'
    }
    assert_shown(rows['DySample']['coco/bbox_mAP_s'], 0.54)
    assert 'Left out: `coco/bbox_mAP_l` (-1 in every run' in text

    # one run that did measure it keeps the column
    records[0]['metrics']['coco/bbox_mAP_l'] = 0.7
    summaries = summarize(records, ['nearest', 'DySample'], {})
    text = markdown(info, summaries, records)
    rows = md_rows(text, '| upsampler | coco/bbox_mAP |')
    assert 'coco/bbox_mAP_l' in rows['nearest']
    assert 'Left out' not in text


def test_equal_means_read_as_no_difference():
    # DySample-S+ against bilinear on the default scenes (mAcc): equal
    # means, -1.4e-14 apart in floating point, not a difference to print
    stats = mean_std_se([92.52, 92.46, 92.36])
    base = mean_std_se([92.37, 92.6, 92.37])
    diff = difference(stats, base)
    assert diff['diff'] != 0.0
    assert fmt_diff(diff, with_se=False) == '+0.00'
    assert fmt_diff(dict(diff=-0.00012, se=None)) == '-0.000120'


# --- fast: config walking ---------------------------------------------------


def _node(root, path):
    for key in path:
        root = root[key]
    return root


@pytest.mark.parametrize('config, hosts', [
    (FASTER_RCNN, [('neck', )]),
    (SEGFORMER, [('decode_head', )]),
    (MASKFORMER, [('decode_head', 'pixel_decoder')]),
],
                         ids=['faster_rcnn', 'segformer', 'maskformer'])
def test_hosts_of_the_synthetic_configs(config, hosts):
    cfg = Config.fromfile(config)
    assert find_upsample_hosts(cfg.model) == hosts
    run = config_for_run(cfg, hosts, 'bilinear', 7)
    for path in hosts:
        # the name alone: the preset's extra arguments are gone
        assert _node(run.model, path)['upsample_cfg'] == 'bilinear'
        assert isinstance(_node(cfg.model, path)['upsample_cfg'], dict)
    assert run.randomness.seed == 7
    # Nothing else changed.
    restored = copy.deepcopy(run)
    for path in hosts:
        _node(restored.model, path)['upsample_cfg'] = _node(
            cfg.model, path)['upsample_cfg']
    restored.randomness = cfg.randomness
    assert restored.to_dict() == cfg.to_dict()


@pytest.mark.parametrize('config, hosts', [
    (FASTER_RCNN, [('neck', )]),
    (SEGFORMER, [('decode_head', )]),
],
                         ids=['faster_rcnn', 'segformer'])
def test_stock_is_each_hosts_own_upsampling(config, hosts):
    from mmdysample.experiments.hosts import STOCK, check_upsampler_names
    from mmdysample.utils.model import build_model
    assert check_upsampler_names([STOCK, 'bilinear']) == [STOCK, 'bilinear']
    cfg = Config.fromfile(config)
    run = config_for_run(cfg, hosts, STOCK, 0)
    stock = {FASTER_RCNN: dict(mode='nearest'), SEGFORMER: None}[config]
    for path in hosts:
        assert _node(run.model, path)['upsample_cfg'] == stock
    model = build_model(run)
    host = getattr(model, hosts[0][0])
    # no upsampler modules: the stock FPN / SegFormer forward
    assert not any('upsample' in name for name, _ in host.named_modules())


# --- fast: errors before any training ---------------------------------------


@pytest.fixture
def tool(monkeypatch):
    """The tool's ``main``, with training and testing made to fail the
    test if they are reached."""
    spec = importlib.util.spec_from_file_location('compare_tool',
                                                  osp.join(REPO, TOOL))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def reached(*args, **kwargs):
        pytest.fail('a run was started')

    monkeypatch.setattr(runs_module, 'train', reached)
    monkeypatch.setattr(runs_module, 'test', reached)
    return module.main


def test_unknown_upsampler_is_refused(tool, tmp_path, capsys):
    work_dir = tmp_path / 'work'
    code = tool([
        SEGFORMER, '--upsamplers', 'bilinear', 'DySample-XL', '--work-dir',
        str(work_dir)
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown upsampler(s) ['DySample-XL']" in err
    for known in ("'DySample-S+'", "'bilinear'", "'deconv'", "'FADE'"):
        assert known in err
    assert not work_dir.exists()


def test_unwritable_work_dir_is_refused(tool, tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a directory')
    code = tool([
        SEGFORMER, '--upsamplers', 'bilinear', '--work-dir',
        str(blocker / 'work')
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert 'is not writable' in err and str(blocker / 'work') in err


def test_missing_dataset_is_refused_before_training(tool, tmp_path,
                                                   capsys):
    work_dir = tmp_path / 'work'
    code = tool([
        SEGFORMER, '--upsamplers', 'bilinear', '--work-dir',
        str(work_dir), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path / "nowhere"}'
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert 'no dataset at ' in err
    assert f"train_dataloader.dataset.data_root='{tmp_path / 'nowhere'}'" in err
    assert 'make data' in err
    assert not (work_dir / 'bilinear').exists()


def test_config_without_host_is_refused(tool, tmp_path, capsys):
    config = tmp_path / 'plain.py'
    config.write_text(
        textwrap.dedent('''
        default_scope = 'mmseg'
        model = dict(
            type='EncoderDecoder',
            backbone=dict(type='ResNetV1c', depth=18),
            decode_head=dict(type='FCNHead', in_channels=512, channels=64,
                             num_classes=3))
        '''))
    work_dir = tmp_path / 'work'
    code = tool([
        str(config), '--upsamplers', 'bilinear', '--work-dir',
        str(work_dir)
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert 'no module of the model' in err
    assert 'can take an upsampler' in err and 'DySampleFPN' in err
    assert not work_dir.exists()


def test_repeated_seed_is_refused(tool, tmp_path, capsys):
    code = tool([
        SEGFORMER, '--upsamplers', 'bilinear', '--seeds', '1', '1',
        '--work-dir',
        str(tmp_path / 'work')
    ])
    assert code == 2
    assert 'more than once' in capsys.readouterr().err



def test_runs_of_another_config_are_refused(tmp_path):
    """A run directory started with other --cfg-options is not reused."""
    run_dir = tmp_path / 'bilinear' / 'seed_0'
    run_dir.mkdir(parents=True)
    # (no dataset needed: nothing is trained)
    plan = plan_sweep(
        SEGFORMER, ['bilinear'], [0], work_dir=str(tmp_path), need_data=False)
    (run_dir / 'run.json').write_text(
        json.dumps(dict(config_digest=plan.runs[0].digest)))
    # the same config and options: accepted
    assert plan_sweep(
        SEGFORMER, ['bilinear'], [0], work_dir=str(tmp_path),
        need_data=False).runs[0].record is None
    with pytest.raises(ValueError, match='made with another config'):
        plan_sweep(
            SEGFORMER, ['bilinear'], [0],
            work_dir=str(tmp_path),
            cfg_options={'train_cfg.max_iters': 3},
            need_data=False)


def test_an_unfinished_run_resumes_from_its_last_checkpoint(tmp_path):
    assert runs_module.resume_point(str(tmp_path)) is None
    torch.save({'meta': {}}, tmp_path / 'iter_2.pth')
    (tmp_path / 'iter_4.pth').write_bytes(b'PK\x03\x04 cut short')
    # no last_checkpoint: the newest complete checkpoint
    assert runs_module.resume_point(str(tmp_path)) == str(
        tmp_path / 'iter_2.pth')
    # last_checkpoint: mmengine's resume, repaired by SafeResumeHook
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert runs_module.resume_point(str(tmp_path)) == 'auto'
