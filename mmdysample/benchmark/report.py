# Copyright (c) mmdysample contributors. All rights reserved.
"""The benchmark's report: machine facts, tables, the chart, the JSON."""
import datetime
import json
import os
import os.path as osp
import platform
from typing import Dict, List, Optional, Sequence

import torch

from .candidates import REFERENCE, grid_sample_names, reference_sampler
from .layers import LAYER_PASSES
from .models import MODEL_PASSES


def machine_info(devices: Sequence[torch.device]) -> Dict:
    """CPU model, cores, load, library versions, threads and GPUs.

    ``mmcv`` is None where it is not installed (the upsampler family runs
    without it, as ``make gpu-check`` does).
    """
    import mmengine
    try:
        import mmcv
        mmcv_version = mmcv.__version__
    except ImportError:
        mmcv_version = None
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(
            os, 'sched_getaffinity') else os.cpu_count(),
        load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg')
        else None,
        threads=torch.get_num_threads(),
        python=platform.python_version(),
        platform=platform.platform(),
        torch=torch.__version__,
        mmcv=mmcv_version,
        mmengine=mmengine.__version__,
        dysample_reference=reference_sampler() is not None,
        date=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'))
    if any(d.type == 'cuda' for d in devices):
        info.update(
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu=torch.cuda.get_device_name())
    return info


def _si(value: float, unit: str = '') -> str:
    for prefix, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{prefix}{unit}'
    return f'{value:.0f}{unit}'


def _fmt_ratio(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _fmt_ms(value: float) -> str:
    return f'{value:.3g}' if value < 100 else f'{value:.0f}'


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in
              range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(width) for c, width in zip(row[1:], widths[1:])]
        lines.append('  '.join(cells))
    lines.insert(1, '-' * len(lines[0]))
    return '\n'.join(lines)


def _title(what: str, result: Dict, threads: int, ratio_note: str) -> str:
    return (f"{what} on {result['device']} ({threads} threads): median of "
            f"{result['rounds']} interleaved rounds after {result['warmup']}"
            f' warm-up; {ratio_note}')


def _cost_columns(passes: Dict[str, str], ratio: str) -> List[str]:
    """Header of :func:`_cost_cells`: ``passes`` maps keys to column names.
    """
    return [col for name in passes.values()
            for col in (f'{name} ms', ratio)] + [
                col for name in passes.values()
                for col in (f'{name} MiB', ratio)]


def _cost_cells(result: Dict, passes: Dict[str, str],
                ratios: Dict[str, Optional[float]]) -> List[str]:
    """Median ms and ratio, then peak MiB and ratio, per pass."""
    cells = []
    for pass_ in passes:
        cells += [
            _fmt_ms(result[pass_]['median_ms']),
            _fmt_ratio(ratios[pass_])
        ]
    for pass_ in passes:
        cells += [
            f"{result[pass_]['peak_mem_bytes'] / 2**20:.2f}",
            _fmt_ratio(ratios[pass_ + '_mem'])
        ]
    return cells


def format_upsampler_table(result: Dict, threads: int) -> str:
    """The table of :func:`benchmark_shape`'s result, ratios to bilinear."""
    shape = ' x '.join(map(str, result['shape']))
    lines = [
        _title(f"x{result['scale_factor']} upsampling of {shape}", result,
               threads, '"/bil" = ratio to bilinear')
    ]
    header = ['upsampler', 'Params', 'FLOPs'] + _cost_columns(
        LAYER_PASSES, '/bil')
    rows = [[r['label'], _si(r['params']),
             _si(r['flops'])] +
            _cost_cells(r, LAYER_PASSES, r['ratio_to_bilinear'])
            for r in result['results']]
    lines.append(_table(header, rows))
    lines += [f"skipped {s['label']}: {s['reason']}"
              for s in result['skipped']]
    lines += [f"note on {r['label']}: {note}" for r in result['results']
              for note in r['notes']]
    lines += _guide_notes(result)
    # The rows whose sampling path is fixed do not say what the presets run.
    fixed = {REFERENCE, *grid_sample_names()}
    samplers = sorted({r['sampler'] for r in result['results']
                       if r.get('sampler') and r['name'] not in fixed})
    if samplers:
        lines.append(f"DySample samples with: {', '.join(samplers)}")
    for r in result['results']:
        if r.get('ratio_to_reference'):
            ratio = r['ratio_to_reference']
            lines.append(
                f"{r['label']} ({r['sampler']}) / {REFERENCE}: "
                f"fwd {_fmt_ratio(ratio['fwd'])}, "
                f"fwd+bwd {_fmt_ratio(ratio['fwd_bwd'])}")
    return '\n'.join(lines)


def _guide_notes(result: Dict) -> List[str]:
    """One line per guide shape: which rows also read a guide."""
    by_shape = {}
    for r in result['results']:
        if r.get('guide_shape'):
            by_shape.setdefault(tuple(r['guide_shape']), []).append(
                r['label'])
    return [
        f"guided (also read a guide of {' x '.join(map(str, shape))}, "
        f"FLOPs and fwd+bwd include it): {', '.join(labels)}"
        for shape, labels in by_shape.items()
    ]


def format_model_table(result: Dict, threads: int) -> str:
    """The table of :func:`benchmark_models`' result, ratios to baseline."""
    shape = ' x '.join(map(str, result['input']))
    lines = [
        _title(f'whole models, input {shape},', result, threads,
               '"/base" = ratio to the stock upsampling')
    ]
    header = ['model', 'upsampling', 'Params'] + _cost_columns(
        MODEL_PASSES, '/base')
    rows = [[r['model'], r['variant'],
             _si(r['params'])] +
            _cost_cells(r, MODEL_PASSES, r['ratio_to_baseline'])
            for r in result['results']]
    lines.append(_table(header, rows) if rows else '(no model measured)')
    lines += [f"skipped {s['model']}: {s['reason']}"
              for s in result['skipped']]
    return '\n'.join(lines)


_COLOURS = {
    'nearest': 'tab:gray',
    'bilinear': 'tab:gray',
    'deconv': 'tab:blue',
    'pixel_shuffle': 'tab:blue',
    'carafe': 'tab:green',
    'CARAFEUnfold': 'tab:green',
}
#: Upsamplers that read a guide: their own colour and marker in the chart.
_GUIDED_STYLE = dict(color='tab:purple', marker='^')


def _style(result: Dict) -> Dict:
    if result.get('guide_shape'):
        return _GUIDED_STYLE
    return dict(color=_COLOURS.get(result['name'], 'tab:red'), marker='o')


def plot_latency_chart(results: List[Dict], path: str) -> None:
    """Fig. 1-style chart of the first (paper-shape) result per device.

    x: forward latency (ms, log); y: FLOPs (left) and Params (right), log
    (symlog where a value is 0, so that the parameter-free resizes show).
    One labelled marker per upsampler; DySample variants in red, guided
    upsamplers (which also read a guide) as purple triangles.
    """
    from matplotlib.figure import Figure  # Agg through savefig, no pyplot
    from matplotlib.ticker import NullFormatter
    firsts = {}
    for result in results:
        firsts.setdefault(result['device'], result)
    if not firsts:
        raise ValueError('nothing to plot: results is empty')
    fig = Figure(figsize=(12, 4.6 * len(firsts)), layout='constrained')
    axes = fig.subplots(len(firsts), 2, squeeze=False)
    for row, result in zip(axes, firsts.values()):
        for ax, key, name in zip(row, ('flops', 'params'),
                                 ('FLOPs', 'Params')):
            # Neighbours in y get their labels above / below in turn.
            ranked = sorted(result['results'], key=lambda r: r[key])
            for i, r in enumerate(ranked):
                x, y = r['fwd']['median_ms'], r[key]
                ax.scatter(x, y, s=60, zorder=3, **_style(r))
                ax.annotate(
                    r['label'], (x, y),
                    xytext=(6, 5 if i % 2 else -11),
                    textcoords='offset points',
                    fontsize=8)
            low, top = ranked[0][key], max(ranked[-1][key], 1)
            ax.set_xscale('log')
            # Minor-tick labels of a short log axis overlap; keep the majors.
            ax.xaxis.set_minor_formatter(NullFormatter())
            if low > 0:
                ax.set_yscale('log')
                ax.set_ylim(low / 10, top * 10)
            else:  # symlog shows the parameter-free resizes at 0
                ax.set_yscale('symlog', linthresh=1)
                ax.set_ylim(0, top * 10)
            xs = [r['fwd']['median_ms'] for r in ranked]
            ax.set_xlim(min(xs) / 1.5, max(xs) * 3)
            ax.set_xlabel('forward latency (ms, median)')
            ax.set_ylabel(f'{name} (log scale)')
            ax.grid(True, which='major', alpha=0.3)
            ax.set_title(
                f"{name} vs forward latency on {result['device']}",
                fontsize=10)
    first = next(iter(firsts.values()))
    guides = _guide_notes(first)
    fig.suptitle(
        f"x{first['scale_factor']} upsampling of "
        f"{' x '.join(map(str, first['shape']))}: median of "
        f"{first['rounds']} interleaved rounds" +
        (f"\n{'; '.join(guides)} (triangles)" if guides else ''),
        fontsize=11)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)


def write_json(results: Dict, path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)
