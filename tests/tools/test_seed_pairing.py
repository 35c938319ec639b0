# Copyright (c) mmdysample contributors. All rights reserved.
"""What a seed fixes across the runs of a sweep.

``compare_upsamplers`` pairs the runs of one seed (its paired difference
and t test). That is sound whatever the runs share, but it gains only what
they share: here two Runners of the synthetic Faster R-CNN, built as a
sweep builds them (``config_for_run``, one seed, ``nearest`` and
``DySample``), are compared on what the Runner fixes before the first
iteration: the initial weights of every module but the upsampler (after
``model.init_weights()``, as ``Runner.train`` calls it) and the first
training batches (which images, and their pixels after augmentation).
Both hold; ``docs/user_guides/compare_upsamplers.md`` says what a seed
fixes.
"""
import itertools

import pytest
import torch
from mmengine.config import DictAction
from train_helpers import FASTER_RCNN, tiny_options

from mmdysample.experiments import config_for_run, require_hosts
from mmdysample.utils import build_runner, load_config
from mmdysample.utils.checkpoint_fit import UPSAMPLER_ATTRS

SEED = 3
BATCHES = 2  # the first epoch of the tiny data (four images)


def _options(data_root):
    """tiny_options as a dict for ``load_config``."""
    pairs = (arg.split('=', 1) for arg in tiny_options(data_root, 2)[1:])
    return {key: DictAction._parse_iterable(value) for key, value in pairs}


def _is_upsampler(key):
    return any(f'.{attr}.' in f'.{key}' for attr in UPSAMPLER_ATTRS)


def _start(data_root, tmp_path, upsampler, seed=SEED):
    """A Runner of ``upsampler`` at ``seed`` as the sweep builds it; its
    weights after ``init_weights`` and its first batches."""
    cfg = load_config(FASTER_RCNN, _options(data_root))
    cfg = config_for_run(cfg, require_hosts(cfg, FASTER_RCNN), upsampler,
                         seed)
    cfg.work_dir = str(tmp_path / f'{upsampler}_{seed}')
    cfg.experiment_name = f'seed_pairing_{upsampler}_{seed}'
    runner = build_runner(cfg)
    loop = runner.train_loop  # builds the data loader, as train() does
    runner.model.init_weights()
    state = {k: v.clone() for k, v in runner.model.state_dict().items()}
    batches = []
    for batch in itertools.islice(loop.dataloader, BATCHES):
        batches.append(
            dict(
                ids=[s.img_id for s in batch['data_samples']],
                inputs=[img.clone() for img in batch['inputs']]))
    return state, batches


@pytest.fixture(scope='module')
def two_runs(data_root, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('seed_pairing')
    return {
        name: _start(data_root, tmp_path, name)
        for name in ('nearest', 'DySample')
    }


def test_one_seed_gives_both_upsamplers_the_same_batches(two_runs):
    (_, first), (_, second) = two_runs['nearest'], two_runs['DySample']
    assert len(first) == BATCHES and all(b['ids'] for b in first)
    assert [b['ids'] for b in first] == [b['ids'] for b in second]
    for a, b in zip(first, second):
        for image_a, image_b in zip(a['inputs'], b['inputs']):
            assert torch.equal(image_a, image_b)


def test_the_batches_depend_on_the_seed(data_root, tmp_path, two_runs):
    """Else the test above would pass for any seeds."""
    _, other = _start(data_root, tmp_path, 'nearest', seed=SEED + 1)
    first = two_runs['nearest'][1]
    assert [b['ids'] for b in other] != [b['ids'] for b in first]


def test_one_seed_gives_both_the_same_weights_but_the_upsampler(two_runs):
    """The hosts build and initialise their upsamplers on an isolated RNG
    (``mmdysample.models.steps.isolated_rng``); without it DySample's
    draws shift those of every module built or initialised after it (35
    of the 150 other tensors differed when it was switched off by hand)."""
    (first, _), (second, _) = two_runs['nearest'], two_runs['DySample']
    ours = [k for k in second if _is_upsampler(k)]
    assert ours  # DySample has parameters; nearest has none
    shared = [k for k in first if not _is_upsampler(k)]
    assert shared == [k for k in second if not _is_upsampler(k)]
    assert len(shared) > 100
    differ = [k for k in shared if not torch.equal(first[k], second[k])]
    assert not differ, f'{len(differ)} of {len(shared)} differ: {differ[:5]}'
