# Copyright (c) mmdysample contributors. All rights reserved.
"""The sweep's result files: ``results.json``, ``.csv`` and ``.md``.

``results.json`` holds every run's record, each upsampler's summary and
the sweep's ``statistics`` (what it can detect on the main metric);
``results.csv`` one row per run, numbers unrounded; ``results.md`` one row
per upsampler (mean +- std over seeds, the unpaired and the paired
difference to the baseline, the paired t and its 95 % threshold, the
verdict, the detectable difference, +Params, +FLOPs, latency), what the
sweep can detect, every metric, and the failed runs with their errors.
"""
import csv
import datetime
import io
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..engine import atomic_write
from .records import write_json
from .results import sweep_summary
from .statistics import lower_is_better

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
    write_json(
        dict(
            info,
            statistics=sweep_summary(summaries, info['main_metric']),
            runs=list(rows),
            summary=list(summaries)), path)


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


def fmt_t(versus: Optional[Dict]) -> str:
    """The paired ``t`` and, in brackets, its 95 % threshold: ``'+2.37
    (4.30)'``; ``'n/a'`` with fewer than two paired seeds.

    Example:
        >>> fmt_t(dict(paired=dict(t=2.367, threshold=4.303, diff=5.27)))
        '+2.37 (4.30)'
        >>> fmt_t(dict(paired=dict(t=None, threshold=12.71, diff=0.5)))
        '+inf (12.71)'
    """
    paired = (versus or {}).get('paired') or {}
    if paired.get('threshold') is None:
        return 'n/a'
    if paired['t'] is None:  # identical differences: no spread at all
        value = ('+inf' if paired['diff'] > 0 else
                 '-inf' if paired['diff'] < 0 else '0.00')
    else:
        value = f"{paired['t']:+.2f}"
    return f"{value} ({paired['threshold']:.2f})"


def fmt_verdict(versus: Optional[Dict]) -> str:
    return (versus or {}).get('verdict') or 'n/a'


def fmt_detectable(versus: Optional[Dict]) -> str:
    """``'9.587'``; ``'4.968 (baseline spread)'`` where fewer than two
    seeds pair up; ``'n/a'``."""
    value = (versus or {}).get('detectable')
    if value is None:
        return 'n/a'
    text = f'{value:.{_decimals(value)}f}'
    if versus['detectable_from'] != 'paired':
        text += f" ({versus['detectable_from']})"
    return text


def fmt_paired(versus: Optional[Dict]) -> str:
    return fmt_diff((versus or {}).get('paired'))


def metric_label(key: str) -> str:
    """A column's name: the key, marked where lower is better.

    Example:
        >>> metric_label('mIoU'), metric_label('rmse')
        ('mIoU', 'rmse (lower is better)')
    """
    return f'{key} (lower is better)' if lower_is_better(key) else key


def detectable_lines(stats: Dict) -> List[str]:
    """What the sweep can detect on the main metric, in words."""
    key = stats['metric']
    if stats['detectable'] is None:
        return [
            f"**What this sweep can detect** on `{key}`: n/a (fewer than "
            'two seeds of the baseline, and fewer than two paired seeds of '
            'any upsampler).'
        ]
    d = _decimals(stats['detectable'])
    spread = f"{stats['spread']:.{_decimals(stats['spread'])}f}"
    if stats['spread_from'] == 'paired':
        source = (f"pooled over the {stats['upsamplers']} upsampler(s) with "
                  'two or more paired seeds')
    else:
        source = ("the baseline's std times sqrt(2): fewer than two seeds "
                  'pair up with the baseline')
    df = stats['n'] - 1
    return [
        f"**What this sweep can detect** on `{key}`: with {stats['n']} "
        f"paired seeds, {stats['detectable']:.{d}f} is the smallest "
        'difference that is significant (95 %, two-sided: '
        f"{stats['threshold']:.2f} standard errors, Student's t at {df} "
        f"degree{'' if df == 1 else 's'} of freedom), at a spread of a "
        f'per-seed difference of {spread} ({source}). A difference of 1 '
        f"point (= {stats['point']:g} of `{key}`) would need "
        f"{stats['seeds_for_one_point']:,d} paired seeds at that spread."
    ]


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
        f'| upsampler | seeds | {metric_label(label)} (mean ± std) '
        f'| Δ vs {base}, unpaired (± SE) | Δ paired (± SE) '
        f'| t (95 % threshold) | verdict | detectable Δ | +Params '
        f'| +FLOPs | latency (ms / image) | train time (s) |',
        '| --- ' * 12 + '|'
    ]
    for s in summaries:
        stats = s['metrics'].get(main, {})
        versus = s['vs_baseline'].get(main)
        cells = (['baseline', '', '', '', ''] if s['upsampler'] == base else [
            fmt_diff(versus),
            fmt_paired(versus),
            fmt_t(versus),
            fmt_verdict(versus),
            fmt_detectable(versus)
        ])
        seeds = str(len(s['seeds']))
        if s['failed']:
            seeds += f" (+{len(s['failed'])} failed)"
        lines.append(
            f"| {s['upsampler']} | {seeds} | {fmt_stats(stats)} | " +
            ' | '.join(cells) + f" | {fmt_params(s['delta_params'])} "
            f"| {fmt_flops(s['delta_flops'])} "
            f"| {fmt_number(s['latency_ms'])} "
            f"| {fmt_number(s['train_time_s'])} |")
    if main:
        lines += [''] + detectable_lines(sweep_summary(summaries, main))
    keys, left_out = [], []
    for key in metric_keys(summaries):
        (left_out if unmeasured(summaries, key) else keys).append(key)
    lines += [
        '', '## Every metric', '',
        'Mean ± std over seeds; in brackets the difference of the means to '
        'the baseline, with "better" or "worse" where the paired t test '
        '(95 %) finds one; in a column marked "lower is better" a negative '
        'difference is the better one.' +
        (' Left out: ' + ', '.join(f'`{k}`' for k in left_out) +
         f' ({NO_GROUND_TRUTH:g} in every run: the evaluator found no '
         'ground truth to measure it on).' if left_out else ''), '',
        '| upsampler | ' + ' | '.join(map(metric_label, keys)) + ' |',
        '| --- ' * (len(keys) + 1) + '|'
    ]
    for s in summaries:
        cells = []
        for key in keys:
            stats = s['metrics'].get(key)
            cell = fmt_stats(stats) if stats else 'n/a'
            diff = s['vs_baseline'].get(key)
            if s['upsampler'] != base and diff and diff['diff'] is not None:
                word = diff['verdict']
                mark = f', {word}' if word in ('better', 'worse') else ''
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
        '- std: sample standard deviation over seeds (n - 1). Unpaired Δ: '
        'the difference of the means, SE sqrt(se² + se_baseline²) with se '
        '= std / sqrt(n). Paired Δ: the mean of the per-seed differences '
        'over the seeds both have (a seed fixes the data order and the '
        'initialisation of all but the upsampler), SE = their std / '
        'sqrt(n).',
        '- t: paired Δ / SE; in brackets the 95 % two-sided threshold, '
        "Student's t at n - 1 degrees of freedom (12.71 for two paired "
        'seeds, 4.30 for three, 2.78 for five). Verdict: better / worse '
        'where |t| exceeds it (lower is better for depth errors and '
        'latency), within noise where not, n/a with fewer than two paired '
        'seeds. Each row is its own test: of k upsamplers no different '
        'from the baseline, about 0.05 k pass by chance.',
        '- detectable Δ: threshold x paired SE, the smallest difference '
        'these seeds can tell from noise; "(baseline spread)" where fewer '
        'than two seeds pair up: t(n_b - 1) x std_b x sqrt(1/n + 1/n_b). '
        'Seeds for 1 point: the fewest n with t(n - 1) x sd / sqrt(n) <= 1 '
        'point (1.0 for percentages such as mIoU and PQ, 0.01 for COCO AP, '
        'a fraction, and for depth metrics).',
        '- +Params / +FLOPs: the whole model against the baseline\'s, '
        '`get_flops.py`\'s counting (one multiply-add = one FLOP)' +
        (f' at {shape[0]} x {shape[1]}' if shape else '') + '.',
        '- latency: `model.test_step` per image while testing (data '
        'preprocessing, forward, post-processing; data loading and metric '
        'computation excluded; first batch a warm-up), mean over seeds, '
        f"on {info.get('device') or 'the test device'} (lower is better).",
        '- train time: wall time of `Runner.train()`; a resumed run '
        'counts only its resumed part.', ''
    ]
    return '\n'.join(lines)


def write_results_md(path: str, info: Dict, summaries: Sequence[Dict],
                     rows: Sequence[Dict]) -> None:
    atomic_write(markdown(info, summaries, rows).encode(), path)


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec='seconds')
