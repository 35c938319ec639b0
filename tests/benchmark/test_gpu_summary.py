# Copyright (c) mmdysample contributors. All rights reserved.
"""The closing summary of ``make gpu-check``, on recorded files.

``tests/data/gpu_check`` holds a real benchmark JSON (``benchmark_upsamplers
.py --quick --device cpu`` with the presets, their grid_sample rows and the
reference) and a real pytest JUnit XML (3 passed, 1 failed, 1 error in
set-up, 3 skipped for two reasons, one module skipped at collection).
"""
import json
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmdysample.benchmark import candidates
from mmdysample.benchmark import gpu_summary as summary
from mmdysample.models import DYSAMPLE_PRESETS

DATA = osp.join(osp.dirname(__file__), '..', 'data', 'gpu_check')
STEPS = [
    dict(name='venv', status='ok', seconds=0.4, note=''),
    dict(name='tests', status='failed (exit 1)', seconds=61.0, note=''),
    dict(name='benchmark', status='ok', seconds=42.5, note=''),
]


@pytest.fixture
def out_dir(tmp_path):
    for name in ('junit.xml', 'benchmark.json'):
        shutil.copy(osp.join(DATA, name), tmp_path / name)
    (tmp_path / 'steps.json').write_text(json.dumps(STEPS))
    return tmp_path


def test_row_names_are_the_benchmarks():
    assert summary.BASELINE == candidates.BASELINE
    assert summary.REFERENCE == candidates.REFERENCE
    assert summary.GRID_SAMPLE == candidates.GRID_SAMPLE


def test_junit_counts_and_reasons():
    tests = summary.read_junit(osp.join(DATA, 'junit.xml'))
    assert (tests['passed'], tests['failed'], tests['skipped']) == (3, 2, 4)
    assert tests['failures'] == [
        ('test_recorded::test_fails', 'AssertionError: arithmetic'),
        ('test_recorded::test_errors_in_set_up',
         'failed on setup with "RuntimeError: fixture broke"'),
    ]
    assert tests['skips'] == {
        "could not import 'mmcv_not_here': No module named "
        "'mmcv_not_here'": 2,
        'needs a CUDA device': 1,
        "collection skipped: could not import 'triton_not_here': No module "
        "named 'triton_not_here'": 1,
    }


def test_summary_gives_each_presets_ratios_on_both_paths(out_dir):
    text = summary.summarize(str(out_dir))
    assert text == (out_dir / 'summary.md').read_text()
    assert '| tests | failed (exit 1) | 61.0 s |' in text
    assert 'Tests: 3 passed, 2 failed, 4 skipped (9 results in junit.xml)' in text
    assert '- skipped (2): could not import' in text
    with open(osp.join(DATA, 'benchmark.json')) as f:
        rows = {r['name']: r for r in json.load(f)['upsamplers'][0]['results']}
    lines = text.splitlines()
    for preset in DYSAMPLE_PRESETS:
        fused, grid = rows[preset], rows[preset + ' (grid_sample)']
        ratio = [f"{r['ratio_to_bilinear'][p]:.2f}" for p in ('fwd', 'fwd_bwd')
                 for r in (fused, grid)]
        speed = [f"{fused[p]['median_ms'] / grid[p]['median_ms']:.2f}"
                 for p in ('fwd', 'fwd_bwd')]
        row = f"| {preset} | {fused['sampler']} | " + ' | '.join(
            ratio + speed) + ' |'
        assert row in lines, (row, text)
    # The reference and the grid_sample rows are not presets of their own.
    assert not any(line.startswith(('| DySample (', '| DySample+ ('))
                   for line in lines)
    bilinear = rows['bilinear']
    assert f"bilinear fwd {bilinear['fwd']['median_ms']:.3g} ms" in text


def test_benchmark_markdown_has_every_row(out_dir):
    summary.summarize(str(out_dir))
    markdown = (out_dir / 'benchmark.md').read_text()
    with open(osp.join(DATA, 'benchmark.json')) as f:
        labels = [r['label'] for r in json.load(f)['upsamplers'][0]['results']]
    for label in labels:
        assert f'\n| {label} |' in markdown
    assert 'mmcv 2.1.0' in markdown or 'mmcv not installed' in markdown


def test_missing_files_name_the_step_that_failed(tmp_path):
    (tmp_path / 'steps.json').write_text(json.dumps([
        dict(name='tests', status='timed out after 300 s', seconds=300.0),
    ]))
    text = summary.summarize(str(tmp_path))
    assert ("Tests: no readable junit.xml (FileNotFoundError" in text
            and "step 'tests': timed out after 300 s" in text)
    assert "step 'benchmark': not recorded" in text
    assert not (tmp_path / 'benchmark.md').exists()
    (tmp_path / 'junit.xml').write_text('<testsuites><testsuite>')
    (tmp_path / 'benchmark.json').write_text('{"upsamplers": []}')
    text = summary.summarize(str(tmp_path))
    assert 'Tests: no readable junit.xml (ParseError' in text
    assert 'Benchmark: no readable benchmark.json (ValueError' in text


def test_runs_by_its_path_on_the_standard_library_alone(out_dir):
    # -I -S: no site-packages at all, as where the environment is broken.
    proc = subprocess.run(
        [sys.executable, '-I', '-S', summary.__file__, str(out_dir)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (out_dir / 'summary.md').read_text()
    assert 'Tests: 3 passed, 2 failed' in proc.stdout
    proc = subprocess.run(
        [sys.executable, '-I', '-S', summary.__file__,
         str(out_dir / 'nope')], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and 'out_dir must be a folder' in proc.stderr
