# Copyright (c) mmdysample contributors. All rights reserved.
"""The authors' nine released detection checkpoints load into our configs.

The files themselves are not downloaded (nothing is at test time). Each is
fabricated in its layout instead:

- the host model's keys and shapes from mmdet's stock detector (mmdet 3.x
  kept 2.x's state-dict keys: see docs/user_guides/reproduce.md), built
  from our config with mmdet's own ``FPN``;
- the upsamplers as the authors' ``FPN_UPSAMPLE`` stores them:
  ``neck.upsample_modules.{i}.{offset,scope}.{weight,bias}`` and
  ``init_pos``, the scope conv with a bias;
- the top-level layout of mmcv 1.x's ``save_checkpoint`` (``meta`` with
  ``mmdet_version``, ``CLASSES``, ``PALETTE``, the config text, ``epoch``,
  ``iter``, ``hook_msgs``; ``state_dict``; ``optimizer``) and, for one
  model, of mmengine's (``message_hub``, ``param_schedulers``).

Each goes through tools/test.py's loading path (its Runner, ``load_from``
and the :class:`~mmdysample.engine.CheckpointFitHook`), must fit exactly,
and the model must then hold every tensor of the checkpoint and compute the
authors' neck.
"""
import copy
import gc
import importlib.util
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmdet')

from mmengine.config import Config  # noqa: E402

import mmdysample  # noqa: E402,F401
from mmdysample.utils.checkpoint_fit import (  # noqa: E402
    CheckpointMismatchError, compare_state_dict)
from mmdysample.utils.model import build_model  # noqa: E402

ROOT = Path(__file__).parents[2]
#: our config -> the authors' file (release ``checkpoint`` of
#: tiny-smart/detection-with-upsamplers, linked from tiny-smart/dysample)
RELEASED = {
    'faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4_1x_coco.py':
    'faster_rcnn_r50_fpn_dysample-lpg4_1x_coco.pth',
    'faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4ds_1x_coco.py':
    'faster_rcnn_r50_fpn_dysample-lpg4ds_1x_coco.pth',
    'faster_rcnn/faster-rcnn_r101_fpn-dysample-lpg4ds_1x_coco.py':
    'faster_rcnn_r101_fpn_dysample-lpg4ds_1x_coco.pth',
    'mask_rcnn/mask-rcnn_r50_fpn-dysample-lpg4_1x_coco.py':
    'mask_rcnn_r50_fpn_dysample-lpg4_1x_coco.pth',
    'mask_rcnn/mask-rcnn_r50_fpn-dysample-lpg4ds_1x_coco.py':
    'mask_rcnn_r50_fpn_dysample-lpg4ds_1x_coco.pth',
    'mask_rcnn/mask-rcnn_r101_fpn-dysample-lpg4ds_1x_coco.py':
    'mask_rcnn_r101_fpn_dysample-lpg4ds_1x_coco.pth',
    'panoptic_fpn/panoptic-fpn_r50_fpn-dysample-lpg4_1x_coco.py':
    'panoptic_fpn_r50_fpn_dysample-lpg4_1x_coco.pth',
    'panoptic_fpn/panoptic-fpn_r50_fpn-dysample-lpg4ds_1x_coco.py':
    'panoptic_fpn_r50_fpn_dysample-lpg4ds_1x_coco.pth',
    'panoptic_fpn/panoptic-fpn_r101_fpn-dysample-lpg4ds_1x_coco.py':
    'panoptic_fpn_r101_fpn_dysample-lpg4ds_1x_coco.pth',
}
STAGES, CHANNELS, GROUPS, SCALE = 3, 256, 4, 2  # the authors' lp g4 layers


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEST_TOOL = load_module(ROOT / 'tools' / 'test.py', '_tool_test')
#: the transcription of the authors' layer the layer tests compare with
authors_forward = load_module(
    ROOT / 'tests' / 'models' / 'upsamplers' / 'test_dysample.py',
    '_dysample_reference').authors_forward


@pytest.fixture
def isolated_globals():
    """Undo the Runner's global instances (scope, logger, message hub,
    visualizer) so the tests after these see none of them."""
    from mmengine.utils import ManagerMixin
    classes, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    saved = {
        cls: dict(cls.__dict__['_instance_dict'])
        for cls in classes if '_instance_dict' in cls.__dict__
    }
    yield
    for cls, instances in saved.items():
        for name, instance in list(cls._instance_dict.items()):
            if name not in instances:
                for handler in getattr(instance, 'handlers', [])[:]:
                    handler.close()
                    instance.removeHandler(handler)
        cls._instance_dict.clear()
        cls._instance_dict.update(instances)


def fork_init_pos():
    """``init_pos`` as the authors' layer builds it (lp, s=2, g=4)."""
    h = torch.arange((-SCALE + 1) / 2, (SCALE - 1) / 2 + 1) / SCALE
    return torch.stack(torch.meshgrid(
        [h, h], indexing='ij')).transpose(1, 2).repeat(1, GROUPS, 1).reshape(
            1, -1, 1, 1)


def fork_upsampler_state(dyscope, gen):
    """The keys FPN_UPSAMPLE's upsamplers leave in a checkpoint."""
    out = 2 * GROUPS * SCALE**2
    state = OrderedDict()
    for i in range(STAGES):
        prefix = f'neck.upsample_modules.{i}.'
        state[prefix + 'offset.weight'] = torch.randn(
            out, CHANNELS, 1, 1, generator=gen) * 0.01
        state[prefix + 'offset.bias'] = torch.randn(out, generator=gen) * 0.1
        if dyscope:
            state[prefix + 'scope.weight'] = torch.randn(
                out, CHANNELS, 1, 1, generator=gen) * 0.01
            state[prefix + 'scope.bias'] = torch.randn(
                out, generator=gen) * 0.5
        state[prefix + 'init_pos'] = fork_init_pos()
    return state


def stock_model_config(cfg):
    """Our config's model with mmdet's own FPN: the host's key layout."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.neck.type = 'FPN'
    model_cfg.neck.pop('upsample_cfg')
    return model_cfg


def mmcv1_meta(cfg, dataset_meta):
    """``meta`` as mmcv 1.x's ``save_checkpoint`` wrote it for mmdet 2.x."""
    return dict(
        mmcv_version='1.7.1',
        time='Tue Apr 11 03:15:12 2023',
        mmdet_version='2.28.2',
        CLASSES=tuple(dataset_meta['classes']),
        PALETTE=[tuple(c) for c in dataset_meta['palette']],
        config=cfg.pretty_text,
        env_info='sys.platform: linux\nPython: 3.8.16\nCUDA available: True',
        seed=0,
        exp_name='faster_rcnn_r50_fpn_dysample-lpg4ds_1x_coco.py',
        epoch=12,
        iter=87960,
        hook_msgs=dict(last_ckpt='work_dirs/x/epoch_12.pth'))


def sgd_state(state_dict, count=3):
    """An SGD ``state_dict`` (momentum buffers for a few parameters)."""
    keys = [k for k, v in state_dict.items() if v.is_floating_point()]
    return dict(
        state={
            i: dict(momentum_buffer=torch.zeros_like(state_dict[keys[i]]))
            for i in range(count)
        },
        param_groups=[
            dict(
                lr=0.0002,
                momentum=0.9,
                dampening=0,
                weight_decay=0.0001,
                nesterov=False,
                initial_lr=0.02,
                params=list(range(len(keys))))
        ])


def mmengine_extras(cfg, dataset_meta, state_dict):
    """``meta``, ``message_hub`` and ``param_schedulers`` as mmengine's
    ``Runner.save_checkpoint`` writes them (mmdet 3.x, the fork's)."""
    from mmengine.logging import MessageHub
    from mmengine.optim import LinearLR, MultiStepLR
    hub = MessageHub.get_instance('fabricated_released_checkpoint')
    hub.update_scalar('train/loss', 0.61)
    hub.update_scalar('train/lr', 0.0002)
    hub.update_info('epoch', 12)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.02, momentum=0.9)
    schedulers = [
        LinearLR(optimizer, start_factor=0.001, by_epoch=False, end=500),
        MultiStepLR(optimizer, milestones=[8, 11], by_epoch=True)
    ]
    meta = dict(
        epoch=12,
        iter=87960,
        cfg=cfg.pretty_text,
        seed=0,
        experiment_name='faster-rcnn_r50_fpn_dysample-lpg4ds_1x_coco',
        time='20230901_101010',
        mmengine_version='0.8.4',
        dataset_meta=dataset_meta)
    return dict(
        meta=meta,
        message_hub=hub.state_dict(),
        optimizer=sgd_state(state_dict),
        param_schedulers=[s.state_dict() for s in schedulers])


def dataset_meta_of(cfg):
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.get(cfg.test_dataloader.dataset.type)
    return dict(
        classes=list(dataset.METAINFO['classes']),
        palette=list(dataset.METAINFO['palette']))


def fabricate(config, layout, path):
    """Write the released checkpoint of ``config`` (fabricated) to
    ``path``; return its state dict."""
    cfg = Config.fromfile(config)
    dyscope = cfg.model.neck.upsample_cfg['type'] == 'DySample+'
    stock_cfg = copy.deepcopy(cfg)
    stock_cfg.model = stock_model_config(cfg)
    torch.manual_seed(11)
    stock = build_model(stock_cfg)
    host = stock.state_dict()
    metadata = host._metadata
    del stock
    gen = torch.Generator().manual_seed(7)
    state = OrderedDict()
    for key, value in host.items():
        if value.is_floating_point():
            value = torch.randn(value.shape, generator=gen)
            if key.endswith('running_var'):
                value = value.abs() + 0.5
        state[key] = value
    state.update(fork_upsampler_state(dyscope, gen))
    state._metadata = metadata
    dataset_meta = dataset_meta_of(cfg)
    if layout == 'mmcv1':
        checkpoint = dict(
            meta=mmcv1_meta(cfg, dataset_meta),
            state_dict=state,
            optimizer=sgd_state(state))
    else:
        checkpoint = dict(
            state_dict=state, **mmengine_extras(cfg, dataset_meta, state))
    torch.save(checkpoint, path)
    return state


def fork_neck(state, feats, dyscope):
    """The authors' FPN_UPSAMPLE forward, from the checkpoint's tensors."""

    def conv(name, x, padding=0):
        return F.conv2d(x, state[f'neck.{name}.conv.weight'],
                        state[f'neck.{name}.conv.bias'], padding=padding)

    laterals = [conv(f'lateral_convs.{i}', f) for i, f in enumerate(feats)]
    for i in range(len(laterals) - 1, 0, -1):
        prefix = f'neck.upsample_modules.{i - 1}.'
        weights = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
        laterals[i - 1] = laterals[i - 1] + authors_forward(
            laterals[i], weights, SCALE, 'lp', GROUPS, dyscope)
    outs = [
        conv(f'fpn_convs.{i}', lateral, padding=1)
        for i, lateral in enumerate(laterals)
    ]
    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
    return outs


CASES = [(name, 'mmcv1') for name in RELEASED] + [
    ('faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4ds_1x_coco.py',
     'mmengine')
]


def test_every_released_checkpoint_has_a_config():
    assert len(RELEASED) == 9
    for config in RELEASED:
        assert (ROOT / 'configs' / config).is_file(), config


@pytest.mark.slow
@pytest.mark.parametrize('config,layout', CASES,
                         ids=[f'{Path(c).stem}-{lay}' for c, lay in CASES])
def test_released_checkpoint_loads_strictly(config, layout, tmp_path,
                                            isolated_globals):
    path = str(ROOT / 'configs' / config)
    ckpt = tmp_path / RELEASED[config]
    state = fabricate(path, layout, ckpt)
    dyscope = any(key.endswith('.scope.bias') for key in state)

    args = TEST_TOOL.parse_args(
        [path, str(ckpt), '--work-dir',
         str(tmp_path / 'work')])
    runner = TEST_TOOL.build_test_runner(args)
    # What Runner.test() does before its first batch: load load_from, with
    # the fit check in after_load_checkpoint.
    runner.load_or_resume()
    model = runner.model
    fit = compare_state_dict(model, state)
    assert fit == ([], [], [], []), fit

    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in own.items():
        assert torch.equal(value, state[key]), key
    if dyscope:
        assert model.neck.upsample_modules[0].scope.bias is not None

    # In float64, so that rounding (features reach ~1e3 with these random
    # weights) cannot hide a difference in the function.
    gen = torch.Generator().manual_seed(0)
    feats = [
        torch.randn(
            1, c, 32 // 2**i, 24 // 2**i, generator=gen, dtype=torch.float64)
        for i, c in enumerate(model.neck.in_channels)
    ]
    neck = copy.deepcopy(model.neck).double()
    state64 = {
        k: v.double() if v.is_floating_point() else v
        for k, v in state.items() if k.startswith('neck.')
    }
    with torch.no_grad():
        ours = neck(feats)
        theirs = fork_neck(state64, feats, dyscope)
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-8)
    del runner, model, own, state, state64, neck
    gc.collect()


@pytest.mark.slow
def test_released_lpg4ds_needs_scope_bias(tmp_path, isolated_globals):
    """Without ``scope_bias=True`` the lpg4ds checkpoints are refused."""
    config = 'faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4ds_1x_coco.py'
    path = str(ROOT / 'configs' / config)
    ckpt = tmp_path / RELEASED[config]
    fabricate(path, 'mmcv1', ckpt)
    args = TEST_TOOL.parse_args([
        path,
        str(ckpt), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        'model.neck.upsample_cfg.scope_bias=False'
    ])
    runner = TEST_TOOL.build_test_runner(args)
    with pytest.raises(CheckpointMismatchError,
                       match=r'neck\.upsample_modules\.0\.scope\.bias'):
        runner.load_or_resume()
