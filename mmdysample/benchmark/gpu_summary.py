# Copyright (c) mmdysample contributors. All rights reserved.
"""The closing summary of ``make gpu-check``, from the files it wrote.

Reads the step record (``steps.json``), the tests' JUnit XML
(``junit.xml``) and the benchmark JSON (``benchmark.json``) in the output
folder, writes ``benchmark.md`` (the benchmark's table in markdown) and
``summary.md``, and prints the summary: each step's status, tests passed /
failed / skipped, and each DySample preset's fwd and fwd+bwd latency ratio
to bilinear on its fused path (Triton on CUDA) and on its ``grid_sample``
path, side by side. A missing or unreadable file is reported with the step
that should have written it, and the rest is summarised all the same.

    python -m mmdysample.benchmark.gpu_summary work_dirs/gpu_check

Standard library only, so that ``tools/misc/gpu_check.py`` can also run
this file by its path where its environment is broken.
"""
import argparse
import json
import os.path as osp
import re
import sys
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence

#: Row names of the benchmark (``mmdysample.benchmark.candidates``; a test
#: checks that they agree).
BASELINE = 'bilinear'
REFERENCE = 'DySample (reference)'
GRID_SAMPLE = ' (grid_sample)'
#: The files of the output folder, and the step that writes each.
FILES = dict(
    steps='steps.json',
    junit='junit.xml',
    benchmark='benchmark.json',
    markdown='benchmark.md',
    summary='summary.md')
WRITTEN_BY = dict(junit='tests', benchmark='benchmark')


def read_steps(path: str) -> Optional[List[Dict]]:
    """The orchestrator's step records, or None if there are none."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _skip_reason(skip: ET.Element) -> str:
    """The reason of a ``<skipped>``; a module skipped whole (at
    collection) keeps its reason in the text, ``(path, line, 'Skipped:
    reason')``."""
    reason = skip.get('message') or 'skipped'
    if reason == 'collection skipped' and skip.text:
        found = re.search(r'Skipped: (.*)[\'"]\)\s*$', skip.text)
        reason += ': ' + (found.group(1) if found else skip.text.strip())
    return reason


def read_junit(path: str) -> Dict:
    """Counts and details of a pytest JUnit XML file.

    Returns:
        dict: ``passed``, ``failed`` (failures and errors), ``skipped``
        (counts); ``failures`` (``(test id, message)``) and ``skips``
        (``{reason: count}``).

    Raises:
        OSError, ET.ParseError: If the file cannot be read or parsed.
    """
    root = ET.parse(path).getroot()
    out = dict(passed=0, failed=0, skipped=0, failures=[], skips={})
    for case in root.iter('testcase'):
        name = '::'.join(
            p for p in (case.get('classname', ''), case.get('name', '')) if p)
        bad = [c for c in case if c.tag in ('failure', 'error')]
        skip = case.find('skipped')
        if bad:
            out['failed'] += 1
            message = bad[0].get('message') or (bad[0].text or '').strip()
            out['failures'].append((name, message.splitlines()[0]
                                    if message else bad[0].tag))
        elif skip is not None:
            out['skipped'] += 1
            reason = _skip_reason(skip)
            out['skips'][reason] = out['skips'].get(reason, 0) + 1
        else:
            out['passed'] += 1
    return out


def read_benchmark(path: str) -> Dict:
    """The benchmark JSON. Raises OSError or ValueError if unreadable."""
    with open(path) as f:
        data = json.load(f)
    if not data.get('upsamplers'):
        raise ValueError(f'{path} holds no upsampler results')
    return data


def main_result(data: Dict) -> Dict:
    """The first CUDA result (the paper's shape), else the first one."""
    results = data['upsamplers']
    return next((r for r in results if r['device'].startswith('cuda')),
                results[0])


def _ratio(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _ms(row: Dict, pass_: str) -> str:
    return f"{row[pass_]['median_ms']:.3g}"


def _markdown(header: Sequence[str], rows: List[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(['---'] * len(header)) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def dysample_paths(result: Dict) -> List[Dict]:
    """Each DySample preset with its fused and ``grid_sample`` rows.

    A preset is a row that names its sampler, other than the paper's
    reference and the ``grid_sample`` rows; ``grid`` is None where the
    benchmark did not time that path.
    """
    rows = {r['name']: r for r in result['results']}
    presets = [
        r for r in result['results'] if r.get('sampler')
        and r['name'] != REFERENCE and not r['name'].endswith(GRID_SAMPLE)
    ]
    return [
        dict(name=r['name'], fused=r, grid=rows.get(r['name'] + GRID_SAMPLE))
        for r in presets
    ]


def paths_table(result: Dict) -> str:
    """The presets' ratios to bilinear, fused and grid_sample paths."""
    header = [
        'preset', 'fused path', 'fwd /bil', 'fwd /bil (grid_sample)',
        'fwd+bwd /bil', 'fwd+bwd /bil (grid_sample)', 'fused / grid_sample '
        'fwd', 'fused / grid_sample fwd+bwd'
    ]
    rows = []
    for entry in dysample_paths(result):
        fused, grid = entry['fused'], entry['grid']
        cells = [entry['name'], fused['sampler']]
        speed = []
        for pass_ in ('fwd', 'fwd_bwd'):
            cells.append(_ratio(fused['ratio_to_bilinear'][pass_]))
            cells.append(
                _ratio(grid['ratio_to_bilinear'][pass_]) if grid else '-')
            speed.append(
                _ratio(fused[pass_]['median_ms'] / grid[pass_]['median_ms'])
                if grid else '-')
        rows.append(cells + speed)
    return _markdown(header, rows)


def benchmark_markdown(data: Dict) -> str:
    """Every result of the benchmark JSON as markdown tables."""
    machine = data.get('machine', {})
    parts = [
        f"Machine: {machine.get('gpu') or machine.get('cpu', '?')}, torch "
        f"{machine.get('torch', '?')}, CUDA {machine.get('cuda', '-')}, "
        f"mmcv {machine.get('mmcv') or 'not installed'}; "
        f"{machine.get('date', '')}"
    ]
    for result in data['upsamplers']:
        shape = ' x '.join(map(str, result['shape']))
        parts.append(
            f"### x{result['scale_factor']} upsampling of {shape} on "
            f"{result['device']} (median of {result['rounds']} rounds)")
        rows = [[
            r['label'], r.get('sampler') or '',
            f"{r['params']:,}",
            f"{r['flops'] / 1e6:.2f}M",
            _ms(r, 'fwd'),
            _ratio(r['ratio_to_bilinear']['fwd']),
            _ms(r, 'fwd_bwd'),
            _ratio(r['ratio_to_bilinear']['fwd_bwd']),
            f"{r['fwd_bwd']['peak_mem_bytes'] / 2**20:.1f}",
        ] for r in result['results']]
        parts.append(
            _markdown([
                'upsampler', 'sampler', 'Params', 'FLOPs', 'fwd ms',
                'fwd /bil', 'fwd+bwd ms', 'fwd+bwd /bil', 'fwd+bwd MiB'
            ], rows))
        parts += [f"skipped {s['label']}: {s['reason']}"
                  for s in result['skipped']]
        parts.append(paths_table(result))
    return '\n\n'.join(parts) + '\n'


def _step_lines(steps: Optional[List[Dict]]) -> List[str]:
    if steps is None:
        return ['No step record (steps.json): the orchestrator did not run.']
    rows = [[s['name'], s['status'], f"{s.get('seconds', 0):.1f} s",
             s.get('note', '')] for s in steps]
    return [_markdown(['step', 'status', 'time', 'note'], rows)]


def _why_missing(kind: str, steps: Optional[List[Dict]], err) -> str:
    step = WRITTEN_BY[kind]
    status = next((s['status'] for s in steps or [] if s['name'] == step),
                  'not recorded')
    return (f'no readable {FILES[kind]} ({type(err).__name__}: {err}); '
            f"step '{step}': {status}")


def _test_lines(path: str, steps: Optional[List[Dict]]) -> List[str]:
    try:
        tests = read_junit(path)
    except (OSError, ET.ParseError) as err:
        return ['Tests: ' + _why_missing('junit', steps, err)]
    total = tests['passed'] + tests['failed'] + tests['skipped']
    lines = [f"Tests: {tests['passed']} passed, {tests['failed']} failed, "
             f"{tests['skipped']} skipped ({total} results in junit.xml)"]
    lines += [f'- failed: {name}: {message}'
              for name, message in tests['failures']]
    lines += [f'- skipped ({count}): {reason}'
              for reason, count in tests['skips'].items()]
    return lines


def _benchmark_lines(data: Optional[Dict], error: Optional[str]) -> List[str]:
    if data is None:
        return ['Benchmark: ' + error]
    result = main_result(data)
    base = next((r for r in result['results'] if r['name'] == BASELINE),
                None)
    shape = ' x '.join(map(str, result['shape']))
    machine = data.get('machine', {})
    lines = [
        f"Benchmark: x{result['scale_factor']} upsampling of {shape} on "
        f"{result['device']} ({machine.get('gpu') or machine.get('cpu')}, "
        f"torch {machine.get('torch')})" +
        (f"; bilinear fwd {_ms(base, 'fwd')} ms, fwd+bwd "
         f"{_ms(base, 'fwd_bwd')} ms" if base else '; no bilinear row'),
        '',
        'DySample latency, ratio to bilinear (median):', '',
        paths_table(result)
    ]
    return lines


def summarize(out_dir: str) -> str:
    """Write ``benchmark.md`` and ``summary.md`` into ``out_dir``; return the
    summary text."""
    steps = read_steps(osp.join(out_dir, FILES['steps']))
    data, error = None, None
    try:
        data = read_benchmark(osp.join(out_dir, FILES['benchmark']))
    except (OSError, ValueError, KeyError) as err:
        error = _why_missing('benchmark', steps, err)
    if data is not None:
        with open(osp.join(out_dir, FILES['markdown']), 'w') as f:
            f.write(benchmark_markdown(data))
    lines = ['## make gpu-check summary', '']
    lines += _step_lines(steps) + ['']
    lines += _test_lines(osp.join(out_dir, FILES['junit']), steps) + ['']
    lines += _benchmark_lines(data, error)
    lines += ['', f'Files in {out_dir}: ' + ', '.join(
        name for name in FILES.values()
        if osp.exists(osp.join(out_dir, name)) or name == FILES['summary'])]
    text = '\n'.join(lines) + '\n'
    with open(osp.join(out_dir, FILES['summary']), 'w') as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='the folder make gpu-check wrote')
    args = parser.parse_args(argv)
    if not osp.isdir(args.out_dir):
        parser.error(f'out_dir must be a folder, got {args.out_dir!r}')
    sys.stdout.write(summarize(args.out_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
