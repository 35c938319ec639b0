# Copyright (c) mmdysample contributors. All rights reserved.
"""Data and training runs shared by the tools tests.

A training subprocess costs seconds of imports and model building before
its first iteration, so the runs several tests read are made once per
session: a tiny copy of the built-in data, and Faster R-CNN trained for
four iterations in one go and for two. Tests that change a run's work
directory copy it first (``train_helpers.copy_run``). The modules that use
these runs share the ``faster_rcnn_runs`` xdist group, so that ``pytest -n``
trains each of them once.
"""
import pytest
from train_helpers import FASTER_RCNN, ITERS, NO_BUILD, run_options, train

from mmdysample.datasets import generate_synthetic_dataset


@pytest.fixture(scope='session')
def data_root(tmp_path_factory):
    """Four training and two validation images of every format the tools
    tests train on (COCO detection and ADE20K-style semantic), 96 px."""
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_dataset(
        root, num_train=4, num_val=2, img_size=96, tasks=('coco', 'ade'))
    return root


@pytest.fixture(scope='session')
def uninterrupted(data_root, tmp_path_factory):
    """Work directory of Faster R-CNN trained for ``ITERS`` iterations in
    one go (checkpoints ``iter_2.pth`` and ``iter_4.pth``)."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    train(FASTER_RCNN, work_dir, run_options(data_root, ITERS), env=NO_BUILD)
    return work_dir


@pytest.fixture(scope='session')
def two_iterations(data_root, tmp_path_factory):
    """Work directory of Faster R-CNN trained for two iterations (the run
    ends there: ``max_iters=2``)."""
    work_dir = tmp_path_factory.mktemp('two_iterations')
    train(FASTER_RCNN, work_dir, run_options(data_root, 2), env=NO_BUILD)
    return work_dir
