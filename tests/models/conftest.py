# Copyright (c) mmdysample contributors. All rights reserved.
"""Puts this folder on ``sys.path`` so that the host tests of ``necks/`` and
``decode_heads/`` share ``host_checks`` (the test folders are not
packages)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
