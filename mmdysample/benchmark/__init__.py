# Copyright (c) mmdysample contributors. All rights reserved.
"""Measuring upsamplers side by side: latency, memory, Params and FLOPs.

Not imported by ``import mmdysample``; the CLI is
``tools/analysis_tools/benchmark_upsamplers.py``.
"""
