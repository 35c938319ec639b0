# Copyright (c) mmdysample contributors. All rights reserved.
"""The detection configs: Faster R-CNN, Mask R-CNN and Panoptic FPN with a
DySample FPN (paper Tables 6, 7 and 8) and their synthetic-data versions.

They load, keep mmdet's stock 1x setting apart from the neck, build, train
and predict (shrunk to ResNet-18 and 32 channels), add exactly three
upsamplers' parameters, and are described by their metafiles.
"""
import ast
import copy
import importlib.util
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip('mmdet')

from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers the DySample family)
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.utils.complexity import (  # noqa: E402
    baseline_config, build_model)

ROOT = Path(__file__).parents[2]
#: config folder -> (file name prefix, metafile tasks with their metrics)
ARCHS = {
    'faster_rcnn': ('faster-rcnn', {
        'Object Detection': {'box AP'}
    }),
    'mask_rcnn': ('mask-rcnn', {
        'Object Detection': {'box AP'},
        'Instance Segmentation': {'mask AP'}
    }),
    'panoptic_fpn': ('panoptic-fpn', {
        'Panoptic Segmentation': {'PQ'}
    }),
}
#: name qualifier -> DySample preset (the paper's four variants)
VARIANTS = {
    'lpg4': 'DySample',
    'lpg4ds': 'DySample+',
    'plg8': 'DySample-S',
    'plg8ds': 'DySample-S+',
}
#: parameters of one x2 upsampler at 256 channels, biases included
UPSAMPLER_PARAMS = {
    'DySample': 8224,
    'DySample+': 16416,
    'DySample-S': 1040,
    'DySample-S+': 2064,
}
#: the dynamic scope conv's bias (``scope_bias=True``), 2 * 4 * 2**2
SCOPE_BIAS_PARAMS = 32
FPN_CHANNELS = 256
TOP_DOWN_STAGES = 3  # mmdet's FPN on ResNet: 4 levels, 3 x2 upsamplings
#: the paper's rows: every variant with R50, DySample+ with R101
PAPER_ROWS = [('r50', tag) for tag in VARIANTS] + [('r101', 'lpg4ds')]
PAPER_STEMS = sorted(f'{prefix}_{backbone}_fpn-dysample-{tag}_1x_coco'
                     for prefix, _ in ARCHS.values()
                     for backbone, tag in PAPER_ROWS)
SYNTHETIC_STEMS = sorted(f'{prefix}_r18_fpn-dysample-lpg4_synthetic'
                         for prefix, _ in ARCHS.values())
NAME = re.compile(r'(?P<arch>[a-z-]+)_(?P<backbone>r\d+)_fpn-dysample-'
                  r'(?P<tag>[a-z0-9]+)_(?P<setting>1x_coco|synthetic)')

#: The DySample configs; the comparison rows (bilinear, deconv, pixel
#: shuffle, CARAFE) are tested in test_comparison_configs.py.
CONFIGS = sorted(
    path for folder in ARCHS
    for path in (ROOT / 'configs' / folder).glob('*-dysample-*.py'))
PAPER_CONFIGS = [path for path in CONFIGS if path.stem in PAPER_STEMS]

SMALL = 32  # neck / head channels of the shrunk models
IMAGE_SHAPE = (3, 64, 96)


def parse_name(path):
    match = NAME.fullmatch(path.stem)
    assert match, f'{path.name} does not follow the naming pattern'
    return match.groupdict()


def expected_upsample_cfg(path):
    """The neck's ``upsample_cfg``: the preset, and for the lpg4ds paper
    configs the authors' released checkpoints' scope-bias layout."""
    name = parse_name(path)
    cfg = dict(type=VARIANTS[name['tag']])
    if name['tag'] == 'lpg4ds' and name['setting'] == '1x_coco':
        cfg['scope_bias'] = True
    return cfg


def stock_base(path):
    """``mmdet::{folder}/{arch}_{backbone}_fpn_1x_coco.py`` for a paper
    config: the stock config it is compared with."""
    name = parse_name(path)
    return (f'mmdet::{path.parent.name}/{name["arch"]}_{name["backbone"]}'
            '_fpn_1x_coco.py')


def declared_base(path):
    """The ``_base_`` a config file assigns, read without executing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                getattr(target, 'id', None) == '_base_'
                for target in node.targets):
            return ast.literal_eval(node.value)
    return None


@lru_cache(maxsize=None)
def _load(path):
    return Config.fromfile(path)


def load(path):
    return copy.deepcopy(_load(str(path)))


@lru_cache(maxsize=None)
def _load_stock(base, tmp_dir):
    # Config.fromfile('mmdet::...') is not supported: inherit it instead.
    stub = Path(tmp_dir) / (base.split('/')[-1].replace('.py', '') +
                            '_stock.py')
    stub.write_text(f'_base_ = {base!r}\n')
    return Config.fromfile(stub)


@pytest.fixture(scope='module')
def load_stock(tmp_path_factory):
    tmp_dir = str(tmp_path_factory.mktemp('stock'))
    return lambda base: copy.deepcopy(_load_stock(base, tmp_dir))


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def test_configs_are_collected():
    stems = sorted(path.stem for path in CONFIGS)
    assert stems, 'no configs found under configs/{faster_rcnn,...}'
    assert len(PAPER_STEMS) == 15 and len(SYNTHETIC_STEMS) == 3
    assert stems == sorted(PAPER_STEMS + SYNTHETIC_STEMS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda path: path.stem)
def test_config_loads(path):
    cfg = load(path)
    name = parse_name(path)
    assert cfg.custom_imports == dict(
        imports=['mmdysample'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.neck.type == 'DySampleFPN'
    assert cfg.model.neck.upsample_cfg == expected_upsample_cfg(path)
    assert name['tag'] in VARIANTS
    # Three top-down stages: four backbone levels into the FPN.
    assert len(cfg.model.neck.in_channels) == TOP_DOWN_STAGES + 1
    assert cfg.model.neck.get('start_level', 0) == 0
    assert cfg.model.neck.get('end_level', -1) == -1


@pytest.mark.parametrize(
    'path', PAPER_CONFIGS, ids=lambda path: path.stem)
def test_paper_config_keeps_stock_setting(path, load_stock):
    base = stock_base(path)
    assert declared_base(path) == base
    ours, stock = load(path).to_dict(), load_stock(base).to_dict()

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'optim_wrapper', 'param_scheduler', 'train_cfg',
                'val_evaluator'):
        assert key in stock, f'{base} has no {key}'
        assert ours[key] == stock[key], key
    # The neck is the only change to the model ...
    neck = ours['model'].pop('neck')
    stock_neck = stock['model'].pop('neck')
    assert ours['model'] == stock['model']
    assert stock_neck['type'] == 'FPN'
    assert neck == {
        **stock_neck, 'type': 'DySampleFPN',
        'upsample_cfg': expected_upsample_cfg(path)
    }
    # ... and custom_imports the only addition to the config.
    ours.pop('custom_imports')
    ours.pop('model'), stock.pop('model')
    assert ours == stock


# ---------------------------------------------------------------------------
# Shrunk models: the real detector types, ResNet-18 and 32 channels.
# ---------------------------------------------------------------------------

#: sub-config (a key path in ``model``) -> channel overrides, applied where
#: the model has that part
SHRINK = {
    ('rpn_head', ): dict(in_channels=SMALL, feat_channels=SMALL),
    ('roi_head', 'bbox_roi_extractor'): dict(out_channels=SMALL),
    ('roi_head', 'bbox_head'): dict(
        in_channels=SMALL, fc_out_channels=2 * SMALL),
    ('roi_head', 'mask_roi_extractor'): dict(out_channels=SMALL),
    ('roi_head', 'mask_head'): dict(
        in_channels=SMALL, conv_out_channels=SMALL),
    ('semantic_head', ): dict(in_channels=SMALL, inner_channels=SMALL),
}


def shrink(model_cfg):
    """``model_cfg`` with a ResNet-18 backbone (no pretrained weights) and
    ``SMALL`` channels in the neck and every head it has. The neck keeps its
    type and ``upsample_cfg``."""
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.backbone.update(depth=18, init_cfg=None)
    model_cfg.neck.update(in_channels=[64, 128, 256, 512], out_channels=SMALL)
    for keys, overrides in SHRINK.items():
        part = model_cfg
        for key in keys:
            part = part.get(key) if part is not None else None
        if part is None:
            continue
        part.update(overrides)
        norm_cfg = part.get('norm_cfg')
        if norm_cfg is not None and norm_cfg.get('type') == 'GN':
            norm_cfg.num_groups = min(norm_cfg.num_groups, SMALL // 4)
    return model_cfg


def demo_batch(model_cfg, seed=0):
    """Two images with boxes, and masks / semantic maps where needed."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    panoptic = model_cfg.get('semantic_head')
    if panoptic is not None:
        num_things = panoptic.num_things_classes
        num_classes = num_things + panoptic.num_stuff_classes
    else:
        num_things = num_classes = model_cfg.roi_head.bbox_head.num_classes
    data = demo_mm_inputs(
        2, [IMAGE_SHAPE] * 2,
        num_classes=num_things,
        with_mask='mask_head' in model_cfg.roi_head,
        with_semantic=panoptic is not None)
    if panoptic is not None:
        # demo_mm_inputs draws the semantic labels from the thing classes
        # only; a panoptic map has stuff too, and the ignore label.
        generator = torch.Generator().manual_seed(seed)
        for sample in data['data_samples']:
            sem_seg = torch.randint(
                0, num_classes + 1, (1, *IMAGE_SHAPE[1:]),
                generator=generator)
            sem_seg[sem_seg == num_classes] = 255
            sample.gt_sem_seg.sem_seg = sem_seg
    return data


def flatten(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for item in outputs for t in flatten(item)]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda path: path.stem)
def test_shrunk_model_trains_and_predicts(path):
    cfg = load(path)
    model_cfg = shrink(cfg.model)
    assert model_cfg.neck.upsample_cfg == cfg.model.neck.upsample_cfg
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        model.init_weights()
    reference = build_upsampler(
        cfg.model.neck.upsample_cfg, in_channels=SMALL)
    upsamplers = model.neck.upsample_modules
    assert len(upsamplers) == TOP_DOWN_STAGES
    for upsampler in upsamplers:
        assert type(upsampler) is type(reference)
        assert {k: v.shape for k, v in upsampler.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()}

    # loss + backward
    model.train()
    data = model.data_preprocessor(demo_batch(cfg.model), True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    for key, value in log_vars.items():
        assert math.isfinite(float(value)), (key, value)
    expected_losses = {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls',
                       'loss_bbox'}
    if 'mask_head' in model_cfg.roi_head:
        expected_losses.add('loss_mask')
    if 'semantic_head' in model_cfg:
        expected_losses.add('loss_seg')
    assert expected_losses <= set(log_vars)
    loss.backward()
    for name, param in upsamplers.named_parameters():
        assert param.grad is not None, f'no gradient for {name}'
        assert param.grad.abs().sum() > 0, f'zero gradient for {name}'

    # predict
    model.eval()
    data = model.data_preprocessor(demo_batch(cfg.model), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2
    height, width = IMAGE_SHAPE[1:]
    for result in results:
        assert isinstance(result, DetDataSample)
        if 'semantic_head' in model_cfg:
            panoptic = result.pred_panoptic_seg.sem_seg
            assert panoptic.shape == (1, height, width)
            continue
        instances = result.pred_instances
        num = len(instances)
        assert instances.bboxes.shape == (num, 4)
        assert instances.scores.shape == instances.labels.shape == (num, )
        if 'mask_head' in model_cfg.roi_head:
            assert instances.masks.shape == (num, height, width)
        else:
            assert 'masks' not in instances

    # tensor: backbone, neck and heads without post-processing
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        outputs = model(**data, mode='tensor')
    assert [tuple(f.shape) for f in feats] == [
        (2, SMALL, height // s, width // s) for s in (4, 8, 16, 32)
    ] + [(2, SMALL, 1, 2)]
    tensors = flatten(outputs)
    assert tensors and all(torch.isfinite(t).all() for t in tensors)
    num_classes = model_cfg.roi_head.bbox_head.num_classes
    assert any(t.shape[-1] == num_classes + 1 for t in tensors)  # cls_score
    if 'semantic_head' in model_cfg:
        head = model_cfg.semantic_head
        assert tensors[-1].shape == (2, head.num_stuff_classes + 1,
                                     height // 4, width // 4)


# ---------------------------------------------------------------------------
# Complexity of the full-size models
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('variant', sorted(VARIANTS.values()))
def test_upsampler_param_counts(variant):
    layer = build_upsampler(variant, in_channels=FPN_CHANNELS, scale_factor=2)
    assert count_params(layer) == UPSAMPLER_PARAMS[variant]


#: stock config -> Params of the baseline model; the four R50 variants of
#: an architecture share one, so each is built once.
_BASELINE_PARAMS = {}


@pytest.mark.parametrize(
    'path', PAPER_CONFIGS, ids=lambda path: path.stem)
def test_paper_config_param_delta(path):
    cfg = load(path)
    model = build_model(cfg)
    assert len(model.neck.upsample_modules) == TOP_DOWN_STAGES
    base = stock_base(path)
    if base not in _BASELINE_PARAMS:
        baseline = build_model(baseline_config(cfg))
        assert baseline.neck.upsample_modules is None  # nearest, as FPN
        _BASELINE_PARAMS[base] = count_params(baseline)
    upsample_cfg = cfg.model.neck.upsample_cfg
    variant = upsample_cfg['type']
    per_upsampler = count_params(
        build_upsampler(
            upsample_cfg, in_channels=FPN_CHANNELS, scale_factor=2))
    assert per_upsampler == UPSAMPLER_PARAMS[variant] + (
        SCOPE_BIAS_PARAMS if upsample_cfg.get('scope_bias') else 0)
    delta = count_params(model) - _BASELINE_PARAMS[base]
    assert delta == TOP_DOWN_STAGES * per_upsampler


def load_tool(name):
    path = ROOT / 'tools' / 'analysis_tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_flops_reports_dysample_delta(capsys):
    get_flops = load_tool('get_flops')
    path = ROOT / 'configs' / 'faster_rcnn' / (
        'faster-rcnn_r50_fpn-dysample-lpg4_1x_coco.py')
    # A small input keeps the trace quick. The RoI head runs on the RPN's
    # proposals, whose number after NMS depends on the random weights when
    # an image has few anchors: without NMS (IoU threshold 1) both models
    # keep max_per_img of them and the FLOPs differ by the upsamplers only.
    ours, base = get_flops.main([
        str(path), '--shape', '128', '192', '--cfg-options',
        'model.test_cfg.rpn.nms.iou_threshold=1.0'
    ])
    assert ours['shape'] == base['shape'] == (128, 192)
    assert ours['params'] - base['params'] == TOP_DOWN_STAGES * 8224
    assert '(+24,672)' in capsys.readouterr().out
    # Per pixel of a coarse map: the 256 -> 32 offset conv (8192) and
    # grid_sample (4 per output element: 4 * 256 * 4), less the nearest
    # resize it replaces (1 per output element: 256 * 4). The coarse maps
    # of the three stages are 4 x 6, 8 x 12 and 16 x 24.
    coarse_pixels = 4 * 6 + 8 * 12 + 16 * 24
    expected = (8192 + 4096 - 1024) * coarse_pixels
    assert ours['flops'] - base['flops'] == expected > 0


# ---------------------------------------------------------------------------
# Metafiles and READMEs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('folder', sorted(ARCHS))
def test_metafile(folder):
    prefix, tasks = ARCHS[folder]
    config_dir = ROOT / 'configs' / folder
    meta = yaml.safe_load((config_dir / 'metafile.yml').read_text())
    collections = {c['Name']: c for c in meta['Collections']}
    assert collections, f'{folder}/metafile.yml has no collection'
    for collection in collections.values():
        assert (ROOT / collection['README']).is_file()
        assert collection['Paper']['URL'] == 'https://arxiv.org/abs/2308.15085'
        assert collection['Metadata']['Training Data'] == ['COCO']

    models = [m for m in meta['Models'] if '-dysample-' in m['Name']]
    names = [model['Name'] for model in models]
    assert len(names) == len(set(names)), 'duplicate model names'
    assert sorted(names) == sorted(
        stem for stem in PAPER_STEMS if stem.startswith(prefix + '_'))
    for model in models:
        config = ROOT / model['Config']
        assert config.is_file(), model['Config']
        assert config.parent == config_dir and config.stem == model['Name']
        assert model['In Collection'] in collections
        upsample_cfg = expected_upsample_cfg(config)
        metadata = model['Metadata']
        assert metadata['Parameters vs nearest'] == TOP_DOWN_STAGES * (
            UPSAMPLER_PARAMS[upsample_cfg['type']] +
            (SCOPE_BIAS_PARAMS if upsample_cfg.get('scope_bias') else 0))
        assert metadata['Results Source'].startswith('paper')
        results = {r['Task']: r for r in model['Results']}
        assert len(results) == len(model['Results'])
        assert set(results) == set(tasks)
        for task, metrics in tasks.items():
            assert results[task]['Dataset'] == 'COCO'
            assert set(results[task]['Metrics']) == metrics
            for value in results[task]['Metrics'].values():
                assert 0 < value < 100


def readme_table(readme):
    """Rows of the README's results table as dicts keyed by its header."""
    lines = [line for line in readme.splitlines() if line.startswith('| ')]

    def cells(line):
        return [cell.strip() for cell in line.strip('|').split('|')]

    header = cells(lines[0])
    return [dict(zip(header, cells(line))) for line in lines[2:]]


@pytest.mark.parametrize('folder', sorted(ARCHS))
def test_readme_lists_every_config(folder):
    config_dir = ROOT / 'configs' / folder
    readme = (config_dir / 'README.md').read_text()
    for path in sorted(config_dir.glob('*.py')):
        assert f'({path.name})' in readme, f'{path.name} is not linked'


@pytest.mark.parametrize('folder', sorted(ARCHS))
def test_readme_agrees_with_metafile(folder):
    config_dir = ROOT / 'configs' / folder
    rows = {
        re.match(r'\[(.+?)\.py\]', row['config']).group(1): row
        for row in readme_table((config_dir / 'README.md').read_text())
        if row['config'].startswith('[') and '-dysample-' in row['config']
    }
    meta = yaml.safe_load((config_dir / 'metafile.yml').read_text())
    models = [m for m in meta['Models'] if '-dysample-' in m['Name']]
    assert sorted(rows) == sorted(model['Name'] for model in models)
    for model in models:
        row, metadata = rows[model['Name']], model['Metadata']
        assert row['Params'] == f"{metadata['Parameters']:,}"
        assert row['+Params'] == f"+{metadata['Parameters vs nearest']:,}"
        for result in model['Results']:
            for metric, value in result['Metrics'].items():
                assert float(row[f'{metric} (paper)']) == value, metric
