# Copyright (c) mmdysample contributors. All rights reserved.
"""Data and training runs shared by the tools tests.

A training subprocess costs seconds of imports and model building before
its first iteration, so the runs several tests read are made once per test
run: a tiny copy of the built-in data, and Faster R-CNN trained for four
iterations in one go and for two. Tests that change a run's work
directory copy it first (``train_helpers.copy_run``).

Under ``pytest -n`` (``make test``) the workers share them too: the first
worker that needs one makes it in the run's common temporary directory
under a file lock, the others wait and read it (pytest-xdist's recipe for
session fixtures made once).
"""
import os
import shutil

import pytest
from filelock import FileLock
from train_helpers import FASTER_RCNN, ITERS, NO_BUILD, run_options, train

from mmdysample.datasets import generate_synthetic_dataset


def made_once(tmp_path_factory, name, make):
    """A directory that ``make(path)`` fills once per test run.

    Without xdist it is a fresh temporary directory of this session; in an
    xdist worker it lives beside the workers' own temporary directories,
    and a ``.done`` marker written after ``make`` returns tells the other
    workers it is complete (a failed ``make`` leaves none, so the next
    worker tries again).
    """
    if 'PYTEST_XDIST_WORKER' not in os.environ:
        path = tmp_path_factory.mktemp(name)
        make(path)
        return path
    root = tmp_path_factory.getbasetemp().parent
    path, done = root / name, root / f'{name}.done'
    with FileLock(str(root / f'{name}.lock')):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            make(path)
            done.touch()
    return path


@pytest.fixture(scope='session')
def data_root(tmp_path_factory):
    """Four training and two validation images of every format the tools
    tests train on (COCO detection and ADE20K-style semantic), 96 px."""
    return str(
        made_once(
            tmp_path_factory, 'synthetic',
            lambda path: generate_synthetic_dataset(
                str(path),
                num_train=4,
                num_val=2,
                img_size=96,
                tasks=('coco', 'ade'))))


@pytest.fixture(scope='session')
def uninterrupted(data_root, tmp_path_factory):
    """Work directory of Faster R-CNN trained for ``ITERS`` iterations in
    one go (checkpoints ``iter_2.pth`` and ``iter_4.pth``)."""
    return made_once(
        tmp_path_factory, 'uninterrupted',
        lambda path: train(FASTER_RCNN, path, run_options(data_root, ITERS),
                           env=NO_BUILD))


@pytest.fixture(scope='session')
def two_iterations(data_root, tmp_path_factory):
    """Work directory of Faster R-CNN trained for two iterations (the run
    ends there: ``max_iters=2``)."""
    return made_once(
        tmp_path_factory, 'two_iterations',
        lambda path: train(FASTER_RCNN, path, run_options(data_root, 2),
                           env=NO_BUILD))
