# Copyright (c) mmdysample contributors. All rights reserved.
"""The MaskFormer configs (paper Table 5) and the synthetic MaskFormer.

The Table 5 configs follow the official MaskFormer ADE20K recipe for Swin-B
and Swin-L (640 x 640 crops, ImageNet-22K 384 pre-training, 160k
iterations, 16 images per batch), differ from their nearest baseline in the
pixel decoder's upsampler only, and add exactly three upsamplers'
parameters; the baseline is mmseg's stock MaskFormer, key for key.
"""
import copy
from functools import lru_cache
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmseg')
pytest.importorskip('mmdet')

from mmengine import Config  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers everything)
from mmdysample.models.necks import DySamplePixelDecoder  # noqa: E402
from mmdysample.utils.model import build_model  # noqa: E402

CONFIG_DIR = Path(__file__).parents[2] / 'configs' / 'maskformer'
#: backbone -> (Swin embed_dims, num_heads, pre-trained checkpoint tag)
BACKBONES = {
    'swin-b': (128, [4, 8, 16, 32], 'swin_base_patch4_window12_384_22k'),
    'swin-l': (192, [6, 12, 24, 48], 'swin_large_patch4_window12_384_22k'),
}
#: qualifier -> pixel decoder upsample_cfg
UPSAMPLERS = {
    'nearest': None,
    'dysample-plg8ds': dict(type='DySample-S+'),
    'carafe': dict(type='carafe'),
}
#: parameters of one x2 stage at the pixel decoder's 256 channels
PER_STAGE = {
    'nearest': 0,
    'dysample-plg8ds': 2064,
    'carafe': (256 * 64 + 64) + (64 * 100 * 9 + 100),
}
STAGES = 3
TABLE5 = {(backbone, tag): CONFIG_DIR / (
    f'maskformer_{backbone}-in22k-384_fpn-{tag}_8xb2-160k_ade20k-640x640.py')
          for backbone in BACKBONES for tag in UPSAMPLERS}
SYNTHETIC = CONFIG_DIR / 'maskformer_r18_fpn-dysample-plg8ds_synthetic.py'


@lru_cache(maxsize=None)
def _load(path):
    return Config.fromfile(path)


def load(path):
    return copy.deepcopy(_load(str(path)))


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def test_configs_are_collected():
    expected = {*TABLE5.values(), SYNTHETIC}
    assert len(expected) == 7
    assert set(CONFIG_DIR.glob('*.py')) == expected


@pytest.mark.parametrize('key', sorted(TABLE5), ids='-'.join)
def test_official_recipe(key):
    backbone, tag = key
    cfg = load(TABLE5[key])
    assert cfg.custom_imports == dict(
        imports=['mmdysample'], allow_failed_imports=False)
    model = cfg.model
    embed_dims, num_heads, checkpoint = BACKBONES[backbone]
    swin = model.backbone
    assert swin.type == 'SwinTransformer'
    assert (swin.embed_dims, swin.num_heads, swin.depths) == (
        embed_dims, num_heads, [2, 2, 18, 2])
    assert (swin.window_size, swin.pretrain_img_size) == (12, 384)
    assert swin.drop_path_rate == 0.3
    assert swin.init_cfg.type == 'Pretrained'
    assert checkpoint in swin.init_cfg.checkpoint
    head = model.decode_head
    assert head.type == 'DySampleMaskFormerHead'
    assert head.in_channels == [embed_dims * 2**i for i in range(4)]
    assert (head.feat_channels, head.out_channels, head.num_queries) == (
        256, 256, 100)
    assert head.pixel_decoder.type == 'DySamplePixelDecoder'
    assert head.pixel_decoder.get('upsample_cfg') == UPSAMPLERS[tag]
    # 640 x 640 crops of images resized to 0.5x..2x of a 640 short side
    assert model.data_preprocessor.size == (640, 640)
    train = {step.type: step for step in cfg.train_dataloader.dataset.pipeline}
    assert train['RandomResize'].scale == (2560, 640)
    assert train['RandomResize'].ratio_range == (0.5, 2.0)
    assert train['RandomCrop'].crop_size == (640, 640)
    assert train['RandomCrop'].cat_max_ratio == 1.0
    assert 'PhotoMetricDistortion' in train
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        test = {step.type: step for step in loader.dataset.pipeline}
        assert test['Resize'].scale == (2560, 640)
    # 8 GPUs x 2 images, 160k iterations, AdamW 6e-5 with poly 0.9
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 6e-5
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.01
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR',
                                                              1e-6, 1500)
    assert (poly.type, poly.power, poly.begin, poly.end) == ('PolyLR', 0.9,
                                                             1500, 160000)


@pytest.mark.parametrize('key', sorted(TABLE5), ids='-'.join)
def test_differs_from_nearest_in_upsampler_only(key):
    backbone, tag = key
    ours = load(TABLE5[key]).to_dict()
    nearest = load(TABLE5[(backbone, 'nearest')]).to_dict()
    ours['model']['decode_head']['pixel_decoder'].pop('upsample_cfg', None)
    assert ours == nearest


#: backbone -> parameters of its nearest baseline (built once)
_BASELINE_PARAMS = {}


@pytest.mark.slow
@pytest.mark.parametrize('key', sorted(TABLE5), ids='-'.join)
def test_parameter_delta_is_three_upsamplers(key):
    backbone, tag = key
    if tag == 'carafe':
        pytest.importorskip('mmcv.ops')
    model = build_model(load(TABLE5[key]))
    decoder = model.decode_head.pixel_decoder
    assert isinstance(decoder, DySamplePixelDecoder)
    if backbone not in _BASELINE_PARAMS:
        baseline = model if tag == 'nearest' else build_model(
            load(TABLE5[(backbone, 'nearest')]))
        _BASELINE_PARAMS[backbone] = count_params(baseline)
        del baseline
    delta = count_params(model) - _BASELINE_PARAMS[backbone]
    assert delta == STAGES * PER_STAGE[tag]
    if tag == 'nearest':
        assert decoder.upsample_modules is None
    else:
        assert len(decoder.upsample_modules) == STAGES
        assert count_params(decoder.upsample_modules) == delta


@pytest.mark.slow
def test_nearest_baseline_is_mmseg_stock_maskformer():
    cfg = load(TABLE5[('swin-b', 'nearest')])
    ours = build_model(cfg)
    cfg.model.decode_head.type = 'MaskFormerHead'
    cfg.model.decode_head.pixel_decoder.type = 'mmdet.PixelDecoder'
    stock = build_model(cfg)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in stock.state_dict().items()}
    assert 'decode_head.decoder_input_proj.weight' in ours.state_dict()


def test_synthetic_config_builds_trains_and_predicts():
    cfg = load(SYNTHETIC)
    assert cfg.train_dataloader.dataset.data_root == 'data/synthetic/ade/'
    assert [m.type for m in cfg.val_evaluator] == [
        'IoUMetric', 'BoundaryIoUMetric']
    head = cfg.model.decode_head
    assert head.pixel_decoder.upsample_cfg == dict(type='DySample-S+')
    assert cfg.model.backbone.depth == 18
    assert cfg.model.backbone.init_cfg is None  # from scratch
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    upsamplers = model.decode_head.pixel_decoder.upsample_modules
    assert len(upsamplers) == STAGES
    assert all(0 < m.offset.weight.std() < 0.002 for m in upsamplers)

    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, 64, 96), generator=gen).byte()
              for _ in range(2)]
    samples = []
    for _ in inputs:
        sample = SegDataSample(metainfo=dict(
            img_shape=(64, 96), ori_shape=(64, 96)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, head.num_classes, (1, 64, 96),
                               generator=gen))
        samples.append(sample)
    model.train()
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in upsamplers.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name

    model.eval()
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2
    assert results[0].pred_sem_seg.shape == (64, 96)


def test_readme_and_metafile_list_every_config():
    yaml = pytest.importorskip('yaml')
    readme = (CONFIG_DIR / 'README.md').read_text()
    meta = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text())
    models = {model['Name']: model for model in meta['Models']}
    assert sorted(models) == sorted(path.stem for path in TABLE5.values())
    for (backbone, tag), path in TABLE5.items():
        assert f'({path.name})' in readme, path.name
        model = models[path.stem]
        assert model['Config'] == f'configs/maskformer/{path.name}'
        metadata = model['Metadata']
        assert metadata['Parameters vs nearest'] == STAGES * PER_STAGE[tag]
        assert metadata['Results Source'].startswith('paper (Table 5)')
        (result, ) = model['Results']
        assert result['Dataset'] == 'ADE20K'
        assert 50 < result['Metrics']['mIoU'] < 60
        if tag != 'nearest':
            assert f'+{STAGES * PER_STAGE[tag]:,}' in readme
    assert f'({SYNTHETIC.name})' in readme
