# Copyright (c) mmdysample contributors. All rights reserved.
"""tools/analysis_tools/benchmark_biou.py: runs, and its band finders agree."""
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/analysis_tools/benchmark_biou.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('benchmark_biou', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_the_cost(tool, capsys):
    tool.main(['--quick', '--compare', '--dataset-size', '10'])
    out = capsys.readouterr().out
    assert re.search(r'2 label maps of 64x85, 150 classes \(\d+-\d+ present',
                     out)
    assert re.search(r'boundary_intersect_and_union: [\d.]+ ms per image '
                     r'\(median; mean [\d.]+ ms\) -> [\d.]+ s for 10 images',
                     out)
    for name in ['package', *tool.ALTERNATIVES]:
        assert re.search(rf'bands of one label map, .*{name}.*: [\d.]+ ms',
                         out), name


def test_ade_like_maps(tool):
    rng = np.random.default_rng(0)
    pred, label = tool.ade_like_pair(rng, (128, 171), 150)
    assert pred.shape == label.shape == (128, 171)
    classes = set(np.unique(label.numpy())) - {tool.IGNORE}
    assert 5 <= len(classes) <= 30 and max(classes) < 150
    assert (label == tool.IGNORE).any() and not (pred == tool.IGNORE).any()
    agree = (pred == label)[label != tool.IGNORE].float().mean()
    assert 0.5 < agree < 1  # a prediction with errors, not a copy


def test_an_alternative_that_disagrees_is_refused(tool, monkeypatch, capsys):
    monkeypatch.setitem(tool.ALTERNATIVES, 'wrong',
                        lambda label, d: np.zeros(label.shape, bool))
    with pytest.raises(RuntimeError, match='wrong finds other band pixels'):
        tool.main(['--quick', '--compare'])


def test_bad_arguments(tool, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(['--images', '0'])
    assert '--images must be >= 1' in capsys.readouterr().err
