# Copyright (c) mmdysample contributors. All rights reserved.
"""``results.png``: the main metric against +Params, as in the paper's
Fig. 1.

One labelled marker per upsampler at (its +Params against the baseline,
its mean main metric), with the standard deviation over seeds as error
bars (none with a single seed); the DySample family in red, the baseline
in black with a dashed line at its mean. The x axis is logarithmic, but
parameter-free upsamplers (``bilinear``, ``nearest``, ...) add 0 and the
baseline is at 0, which a log axis cannot show: it is a *symlog* axis,
linear within ``±L`` around 0 (``L`` the power of ten at or below the
smallest non-zero |+Params|) and logarithmic beyond; the caption says so.
A metric where lower is better (depth errors) says so on its axis.
"""
import math
import os
import os.path as osp
import textwrap
from typing import Dict, Sequence

from .statistics import lower_is_better

_OTHER_COLOURS = ('tab:blue', 'tab:green', 'tab:orange', 'tab:purple',
                  'tab:brown', 'tab:pink', 'tab:olive', 'tab:cyan',
                  'tab:gray')


def _colours(names: Sequence[str], baseline: str) -> Dict[str, str]:
    """Black for the baseline, red for the DySample family, and the other
    upsamplers in turn from a palette of nine."""
    colours, others = {}, 0
    for name in names:
        if name == baseline:
            colours[name] = 'black'
        elif name.lower().startswith('dysample'):
            colours[name] = 'tab:red'
        else:
            colours[name] = _OTHER_COLOURS[others % len(_OTHER_COLOURS)]
            others += 1
    return colours


def linear_threshold(deltas: Sequence[float]) -> float:
    """``L``: the power of ten at or below the smallest non-zero |delta|
    (1 when every delta is 0).

    Example:
        >>> linear_threshold([0, 2064, -96]), linear_threshold([0])
        (10.0, 1.0)
    """
    nonzero = [abs(d) for d in deltas if d]
    if not nonzero:
        return 1.0
    return 10.0**math.floor(math.log10(min(nonzero)))


def symlog_ticks(threshold: float, low: float, high: float) -> list:
    """0 and the powers of ten from ``threshold`` out to ``low`` / ``high``.

    Example:
        >>> symlog_ticks(10.0, 0, 2064)
        [0, 10.0, 100.0, 1000.0, 10000.0]
    """
    first = round(math.log10(threshold))
    ticks = [0]
    for end, sign in ((high, 1), (low, -1)):
        if sign * end > 0:
            last = math.ceil(math.log10(abs(end)))
            ticks += [sign * 10.0**k for k in range(first, last + 1)]
    return sorted(ticks)


def _tick_label(value: float, _pos=None) -> str:
    if value == 0:
        return '0'
    sign = '-' if value < 0 else ''
    return f'{sign}$10^{{{round(math.log10(abs(value)))}}}$'


def plot_results(summaries: Sequence[Dict], main_metric: str,
                 baseline: str, path: str, title: str = '') -> None:
    """Draw the chart of :func:`~mmdysample.experiments.results.summarize`'s
    output into ``path`` (PNG); upsamplers without a finished run or
    without a parameter count are listed in the caption instead."""
    from matplotlib.figure import Figure  # Agg through savefig, no pyplot
    from matplotlib.ticker import FuncFormatter, NullLocator
    fig = Figure(figsize=(8, 5.2), layout='constrained')
    ax = fig.subplots()
    shown, missing = [], []
    for s in summaries:
        stats = s['metrics'].get(main_metric, {})
        if stats.get('mean') is None or s['delta_params'] is None:
            missing.append(s['upsampler'])
        else:
            shown.append((s, stats))
    deltas = [s['delta_params'] for s, _ in shown]
    threshold = linear_threshold(deltas)
    colours = _colours([s['upsampler'] for s, _ in shown], baseline)
    # Neighbours in x get their labels above / below in turn.
    rank = {
        s['upsampler']: i
        for i, (s, _) in enumerate(sorted(shown, key=lambda p: p[0][
            'delta_params']))
    }
    for s, stats in shown:
        name = s['upsampler']
        colour = colours[name]
        ax.errorbar(
            s['delta_params'],
            stats['mean'],
            yerr=stats['std'] if stats['std'] is not None else None,
            fmt='o',
            color=colour,
            markersize=7,
            capsize=4,
            zorder=3)
        ax.annotate(
            f"{name} (n={stats['n']})", (s['delta_params'], stats['mean']),
            xytext=(7, 6 if rank[name] % 2 else -12),
            textcoords='offset points',
            fontsize=8,
            color=colour)
        if name == baseline:
            ax.axhline(
                stats['mean'], color='black', linestyle='--', linewidth=0.8)
    ax.set_xscale('symlog', linthresh=threshold, linscale=0.5)
    low, high = min(deltas + [0]), max(deltas + [0])
    ax.set_xlim(low * 3 if low < 0 else -threshold / 2,
                high * 3 if high > 0 else threshold * 2)
    ax.set_xticks(symlog_ticks(threshold, low, high))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(0, color='0.6', linewidth=0.6)
    ax.grid(True, which='major', alpha=0.3)
    ax.set_xlabel(f'+Params against {baseline}\n(symlog axis: linear '
                  f'within ±{threshold:g}, logarithmic beyond; 0 = no extra '
                  'parameters)')
    better = ('; lower is better'
              if main_metric and lower_is_better(main_metric) else '')
    ax.set_ylabel(f'{main_metric} (mean over seeds, bars: ±1 std{better})')
    caption = title or f'{main_metric} against +Params'
    if missing:
        # Wrapped: a long sweep lists many names before its runs finish.
        caption += '\n' + textwrap.fill(
            f"not drawn (no finished run): {', '.join(missing)}", 110)
    if not shown:
        ax.text(
            0.5,
            0.5,
            'no finished run to draw',
            transform=ax.transAxes,
            ha='center')
    ax.set_title(caption, fontsize=10)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
