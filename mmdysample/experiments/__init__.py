# Copyright (c) mmdysample contributors. All rights reserved.
"""Experiments: one config trained and tested with each upsampler and seed.

Not imported by ``import mmdysample``; the CLI is
``tools/analysis_tools/compare_upsamplers.py``. Its files: ``hosts`` (where
a config takes ``upsample_cfg``, the config of one run), ``runs`` (train
and test one run), ``latency`` (the per-image timing hook), ``records``
(the files of a run directory), ``complexity`` (+Params / +FLOPs, cached),
``plan`` (the inputs checked, the runs laid out), ``sweep`` (resume,
the loop), ``claims`` (which process holds a
run), ``coordination`` (what a process or rank does with a run),
``result_files`` (results.* from the records on disk), ``progress`` (what
rank 0 prints, the ETA), ``results`` (mean, std, standard error, the
summaries per upsampler), ``statistics`` (the paired difference to the
baseline and its t test, the detectable difference, the seeds a
difference needs, which metrics are lower-better), ``report`` (json / csv
/ md) and ``plot`` (results.png).
"""
from .hosts import (config_for_run, find_upsample_hosts, known_upsamplers,
                    require_hosts)
from .results import (DEFAULT_MAIN_METRICS, choose_main_metric, difference,
                      mean_std_se, summarize)
from .plan import plan_sweep
from .sweep import report_sweep, run_sweep

__all__ = [
    'DEFAULT_MAIN_METRICS', 'choose_main_metric', 'config_for_run',
    'difference', 'find_upsample_hosts', 'known_upsamplers', 'mean_std_se',
    'plan_sweep', 'report_sweep', 'require_hosts', 'run_sweep', 'summarize'
]
