# Copyright (c) mmdysample contributors. All rights reserved.
"""The sweep's result files: ``results.json``, ``.csv`` and ``.md``.

``results.json`` holds every run's record (and each upsampler's summary);
``results.csv`` one row per run, numbers unrounded; ``results.md`` one row
per upsampler (mean +- std over seeds, the difference to the baseline and
whether it exceeds two standard errors, +Params, +FLOPs, latency), every
metric, and the failed runs with their errors.
"""
import csv
import datetime
import io
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..engine import atomic_write
from .records import write_json

RESULTS_JSON = 'results.json'
RESULTS_CSV = 'results.csv'
RESULTS_MD = 'results.md'
#: What COCO's evaluator reports for an area range with no ground truth
#: (``coco/bbox_mAP_l`` on data without large objects).
NO_GROUND_TRUTH = -1.0
#: Below this a difference of two means is floating-point noise.
ROUNDING_NOISE = 1e-9


def run_rows(records: Sequence[Dict], summaries: Sequence[Dict]) -> List:
    """The records with ``params`` / ``flops`` and their deltas to the
    baseline filled in from the summaries."""
    cost = {s['upsampler']: s for s in summaries}
    rows = []
    for record in records:
        summary = cost[record['upsampler']]
        rows.append(
            dict(
                record,
                **{
                    key: summary[key]
                    for key in ('params', 'delta_params', 'flops',
                                'delta_flops')
                }))
    return rows


def metric_keys(summaries: Sequence[Dict]) -> List[str]:
    keys = []
    for summary in summaries:
        keys += [k for k in summary['metrics'] if k not in keys]
    return keys


def unmeasured(summaries: Sequence[Dict], key: str) -> bool:
    """Whether ``key`` reads :data:`NO_GROUND_TRUTH` in every finished run:
    nothing was measured, so the markdown table leaves it out (the json
    and csv keep it)."""
    values = [
        v for s in summaries
        for v in s['metrics'].get(key, {}).get('values', [])
    ]
    return bool(values) and all(v == NO_GROUND_TRUTH for v in values)


def write_results_json(path: str, info: Dict, rows: Sequence[Dict],
                       summaries: Sequence[Dict]) -> None:
    write_json(dict(info, runs=list(rows), summary=list(summaries)), path)


def write_results_csv(path: str, rows: Sequence[Dict],
                      keys: Sequence[str]) -> None:
    columns = (['upsampler', 'seed', 'status'] + list(keys) + [
        'params', 'delta_params', 'flops', 'delta_flops', 'train_time_s',
        'test_time_s', 'latency_ms_per_image', 'resumed_from', 'error', 'log',
        'train_log', 'test_log'
    ])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        line = {k: row.get(k) for k in columns if k in row}
        line.update({k: row.get('metrics', {}).get(k) for k in keys})
        line['latency_ms_per_image'] = (row.get('latency')
                                        or {}).get('ms_per_image')
        writer.writerow({k: '' if v is None else v for k, v in line.items()})
    atomic_write(buf.getvalue().encode(), path)


def _decimals(value: float) -> int:
    """Decimals that show four significant digits of ``value``."""
    if value == 0 or not math.isfinite(value):
        return 2
    return min(6, max(0, 3 - math.floor(math.log10(abs(value)))))


def fmt_stats(stats: Dict) -> str:
    """``'86.33 ± 0.06'``, ``'86.33'`` for one seed, ``'n/a'`` for none."""
    if stats.get('mean') is None:
        return 'n/a'
    d = _decimals(stats['mean'])
    if stats.get('std') is None:
        return f"{stats['mean']:.{d}f}"
    return f"{stats['mean']:.{d}f} ± {stats['std']:.{d}f}"


def fmt_diff(diff: Dict, with_se: bool = True) -> str:
    if diff is None or diff.get('diff') is None:
        return 'n/a'
    value = diff['diff']
    if abs(value) < ROUNDING_NOISE:  # equal means, apart from the sums
        value = 0.0
    d = _decimals(value)
    text = f"{value:+.{d}f}"
    if with_se and diff.get('se') is not None:
        text += f" ± {diff['se']:.{d}f}"
    return text


def fmt_flag(diff: Optional[Dict]) -> str:
    flag = (diff or {}).get('beyond_2se')
    return 'n/a' if flag is None else ('yes' if flag else 'no')


def fmt_params(value: Optional[int]) -> str:
    """``'+2,064'``, ``'0'``, ``'-96'``."""
    if value is None:
        return 'n/a'
    return f'{int(value):+,d}' if value else '0'


def fmt_flops(value: Optional[float]) -> str:
    """``'+0.110G'``, ``'+52.4K'``, ``'0'``."""
    if value is None:
        return 'n/a'
    if not value:
        return '0'
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3), ('', 1)):
        if abs(value) >= scale or not unit:
            return f'{value / scale:+.3g}{unit}'


def fmt_number(value: Optional[float], decimals: int = 1) -> str:
    return 'n/a' if value is None else f'{value:.{decimals}f}'


def markdown(info: Dict, summaries: Sequence[Dict],
             rows: Sequence[Dict]) -> str:
    main, base = info['main_metric'], info['baseline']
    label = main or 'main metric'  # None until a run has finished
    shape = info.get('complexity_shape')
    lines = [
        f"# Upsamplers compared on `{osp.basename(info['config'])}`", '',
        f"Config `{info['config']}`; seeds {info['seeds']}; baseline "
        f"`{base}`; main metric `{main}`; {info['created']}.", '',
        f'| upsampler | seeds | {label} (mean ± std) | Δ vs {base} '
        f'(± SE) | beyond 2 SE | +Params | +FLOPs | latency (ms / image) '
        f'| train time (s) |', '| --- ' * 9 + '|'
    ]
    for s in summaries:
        stats = s['metrics'].get(main, {})
        diff = s['vs_baseline'].get(main)
        versus = (('baseline', '') if s['upsampler'] == base else
                  (fmt_diff(diff), fmt_flag(diff)))
        seeds = str(len(s['seeds']))
        if s['failed']:
            seeds += f" (+{len(s['failed'])} failed)"
        lines.append(
            f"| {s['upsampler']} | {seeds} | {fmt_stats(stats)} "
            f'| {versus[0]} | {versus[1]} '
            f"| {fmt_params(s['delta_params'])} "
            f"| {fmt_flops(s['delta_flops'])} "
            f"| {fmt_number(s['latency_ms'])} "
            f"| {fmt_number(s['train_time_s'])} |")
    keys, left_out = [], []
    for key in metric_keys(summaries):
        (left_out if unmeasured(summaries, key) else keys).append(key)
    lines += [
        '', '## Every metric', '',
        'Mean ± std over seeds; in brackets the difference to the '
        'baseline, with `*` where it exceeds two standard errors.' +
        (' Left out: ' + ', '.join(f'`{k}`' for k in left_out) +
         f' ({NO_GROUND_TRUTH:g} in every run: the evaluator found no '
         'ground truth to measure it on).' if left_out else ''), '',
        '| upsampler | ' + ' | '.join(keys) + ' |', '| --- ' *
        (len(keys) + 1) + '|'
    ]
    for s in summaries:
        cells = []
        for key in keys:
            stats = s['metrics'].get(key)
            cell = fmt_stats(stats) if stats else 'n/a'
            diff = s['vs_baseline'].get(key)
            if s['upsampler'] != base and diff and diff['diff'] is not None:
                mark = '*' if diff['beyond_2se'] else ''
                cell += f' ({fmt_diff(diff, with_se=False)}{mark})'
            cells.append(cell)
        lines.append(f"| {s['upsampler']} | " + ' | '.join(cells) + ' |')
    failed = [r for r in rows if r['status'] != 'ok']
    lines += ['', '## Failed runs', '']
    if failed:
        lines += ['| upsampler | seed | error | log |', '| --- ' * 4 + '|']
        for r in failed:
            error = str(r.get('error', '')).replace('|', '\\|')
            lines.append(f"| {r['upsampler']} | {r['seed']} | {error} "
                         f"| `{r.get('log')}` |")
    else:
        lines.append('None.')
    if info.get('pending'):
        lines += ['', 'Not run yet: ' + ', '.join(
            f'{name} seed {seed}' for name, seed in info['pending']) + '.']
    lines += [
        '', '## How the numbers are made', '',
        '- std: sample standard deviation over seeds; SE of the '
        'difference: sqrt(se² + se_baseline²) with se = std / sqrt(n) '
        '(unpaired); "beyond 2 SE": |Δ| > 2 SE, n/a with fewer than two '
        'seeds on either side.',
        '- +Params / +FLOPs: the whole model against the baseline\'s, '
        '`get_flops.py`\'s counting (one multiply-add = one FLOP)' +
        (f' at {shape[0]} x {shape[1]}' if shape else '') + '.',
        '- latency: `model.test_step` per image while testing (data '
        'preprocessing, forward, post-processing; data loading and metric '
        'computation excluded; first batch a warm-up), mean over seeds, '
        f"on {info.get('device') or 'the test device'}.",
        '- train time: wall time of `Runner.train()`; a resumed run '
        'counts only its resumed part.', ''
    ]
    return '\n'.join(lines)


def write_results_md(path: str, info: Dict, summaries: Sequence[Dict],
                     rows: Sequence[Dict]) -> None:
    atomic_write(markdown(info, summaries, rows).encode(), path)


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec='seconds')
