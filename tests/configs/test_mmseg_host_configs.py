# Copyright (c) mmdysample contributors. All rights reserved.
"""The UPerNet, DeepLabV3+ and Semantic FPN configs: each ADE20K config is
mmseg's with the decode head swapped for ours and one DySample preset; the
heads build at the zoo's widths with the expected parameter delta; the
built-in-data configs build and take a training step; READMEs and metafiles
list every config with its measured +Params."""
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmseg')

from mmengine import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers the heads)
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.utils.complexity import baseline_config  # noqa: E402
from mmdysample.utils.model import build_model  # noqa: E402

ROOT = Path(__file__).parents[2]
#: folder -> (our head, the mmseg head it replaces, upsampling steps)
FOLDERS = {
    'upernet': ('DySampleUPerHead', 'UPerHead', 3),
    'deeplabv3plus': ('DySampleDepthwiseSeparableASPPHead',
                      'DepthwiseSeparableASPPHead', 1),
    'sem_fpn': ('DySampleFPNHead', 'FPNHead', 6),
}
#: the zoo's decoder width, where the upsamplers work
CHANNELS = {'upernet': 512, 'deeplabv3plus': 512, 'sem_fpn': 128}
PRESETS = {
    'lpg4': 'DySample',
    'lpg4ds': 'DySample+',
    'plg8': 'DySample-S',
    'plg8ds': 'DySample-S+'
}
#: the mmseg config each family inherits (an mmseg:: base)
BASES = {
    'upernet-': 'upernet_r50_4xb4-160k_ade20k-512x512.py',
    'swin-tiny': '8xb2-160k_ade20k-512x512.py',
    'deeplabv3plus-': 'deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py',
    'fpn-': 'fpn_r50_4xb4-160k_ade20k-512x512.py',
}
ADE = sorted(
    path for folder in FOLDERS for path in (ROOT / 'configs' / folder).glob(
        '*.py') if not path.stem.endswith('_synthetic'))
SYNTHETIC = sorted(
    path for folder in FOLDERS
    for path in (ROOT / 'configs' / folder).glob('*_synthetic.py'))


def preset_of(path):
    """``...-dysample-plg8ds_...`` -> ``'DySample-S+'``."""
    tag = path.stem.split('-dysample-')[1].split('_')[0]
    return PRESETS[tag]


def test_configs_are_collected():
    # UPerNet R50 and Swin-T, DeepLabV3+ R50-D8, Semantic FPN R50: x 4
    assert len(ADE) == 16
    assert [p.parent.name for p in SYNTHETIC] == [
        'deeplabv3plus', 'sem_fpn', 'upernet'
    ]


@pytest.fixture(scope='module')
def stock_heads():
    """Parameter counts of each family's stock decode head, built once."""
    return {}


@pytest.mark.parametrize('path', ADE, ids=lambda p: p.stem)
def test_ade_config_is_mmseg_with_our_head(path, stock_heads):
    text = path.read_text()
    (base, ) = [v for k, v in BASES.items() if path.stem.startswith(k)]
    assert base in text and 'mmseg::' in text
    cfg = Config.fromfile(path)
    ours, stock_type, steps = FOLDERS[path.parent.name]
    assert cfg.custom_imports == dict(
        imports=['mmdysample'], allow_failed_imports=False)
    head_cfg = cfg.model.decode_head.copy()
    assert head_cfg.type == ours
    # set explicitly: compare_upsamplers finds the host by this key
    assert head_cfg.upsample_cfg == dict(type=preset_of(path))
    assert head_cfg.num_classes == 150
    assert head_cfg.channels == CHANNELS[path.parent.name]
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.crop_size == (512, 512)

    # the head builds; one upsampler per step is all it adds
    head_cfg.norm_cfg = dict(type='BN', requires_grad=True)
    key = path.stem.split('-dysample-')[0]
    if key not in stock_heads:
        stock = dict(head_cfg, type=stock_type)
        stock.pop('upsample_cfg')
        stock_heads[key] = sum(
            p.numel() for p in MODELS.build(stock).parameters())
    head = MODELS.build(head_cfg)
    per_step = sum(p.numel() for p in build_upsampler(
        preset_of(path), head_cfg.channels).parameters())
    count = sum(p.numel() for p in head.parameters())
    assert count - stock_heads[key] == steps * per_step
    assert len(head.upsample_layers()) == steps


@pytest.mark.parametrize('path', SYNTHETIC, ids=lambda p: p.parent.name)
def test_synthetic_config_builds_and_trains(path):
    cfg = Config.fromfile(path)
    assert cfg.model.pretrained is None
    assert cfg.model.decode_head.type == FOLDERS[path.parent.name][0]
    assert cfg.model.decode_head.upsample_cfg == dict(type='DySample')
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.data_root == 'data/synthetic/ade/'
    # the stock model differs from it in the upsamplers only
    model, stock = build_model(cfg), build_model(baseline_config(cfg))
    extra = {name for name, _ in model.named_parameters()} - {
        name for name, _ in stock.named_parameters()}
    steps = FOLDERS[path.parent.name][2]
    assert extra and all('offset' in name for name in extra)
    assert len({name.rsplit('.offset', 1)[0] for name in extra}) == steps

    torch.manual_seed(0)
    model.train()
    inputs = torch.rand(2, 3, 64, 96) * 255
    samples = []
    for i in range(2):
        sample = SegDataSample(metainfo=dict(
            img_shape=(64, 96), pad_shape=(64, 96), ori_shape=(64, 96)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 7, (1, 64, 96),
                               generator=torch.Generator().manual_seed(i)))
        samples.append(sample)
    with DefaultScope.overwrite_default_scope('mmseg'):
        data = model.data_preprocessor(
            dict(inputs=list(inputs.to(torch.uint8)), data_samples=samples),
            True)
        losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    for layer in model.decode_head.upsample_layers():
        assert layer.offset.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('folder', list(FOLDERS))
def test_readme_and_metafile_list_every_config(folder):
    yaml = pytest.importorskip('yaml')
    directory = ROOT / 'configs' / folder
    readme = (directory / 'README.md').read_text()
    meta = yaml.safe_load((directory / 'metafile.yml').read_text())
    paths = [p for p in ADE if p.parent.name == folder]
    models = {model['Name']: model for model in meta['Models']}
    assert sorted(models) == sorted(p.stem for p in paths)
    for path in paths:
        assert f'({path.name})' in readme, path.name
        model = models[path.stem]
        assert model['Config'] == f'configs/{folder}/{path.name}'
        _, _, steps = FOLDERS[folder]
        per_step = sum(p.numel() for p in build_upsampler(
            preset_of(path), CHANNELS[folder]).parameters())
        assert model['Metadata']['Parameters vs stock'] == steps * per_step
        assert f'+{steps * per_step:,}' in readme
    for path in SYNTHETIC:
        if path.parent.name == folder:
            assert f'({path.name})' in readme
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert f'configs/{folder}/metafile.yml' in index['Import']


@pytest.mark.parametrize('path', SYNTHETIC, ids=lambda p: p.parent.name)
def test_compare_upsamplers_finds_the_host(path):
    """``compare_upsamplers`` finds the head by its ``upsample_cfg`` key;
    its runs (stock, a guided upsampler) build."""
    from mmdysample.experiments import config_for_run
    from mmdysample.experiments.hosts import STOCK, find_upsample_hosts
    cfg = Config.fromfile(path)
    hosts = find_upsample_hosts(cfg.model)
    assert hosts == [('decode_head', )]
    stock = build_model(config_for_run(cfg, hosts, STOCK, 0))
    assert stock.decode_head.upsample_layers() == []
    guided = build_model(config_for_run(cfg, hosts, 'FADE', 0))
    layers = guided.decode_head.upsample_layers()
    assert any(getattr(m, 'needs_guide', False) for m in layers)
