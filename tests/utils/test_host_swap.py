# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdysample.utils.host_swap: stock modules swapped for drop-in hosts.

On unmodified mmdet / mmseg configs (read as ``mmdet::`` / ``mmseg::``
names, as a user passes them): what is swapped with and without
``--upsampler``, the errors, and that a stock checkpoint loads into the
swapped model with exactly the new upsamplers' keys missing.
"""
import copy
import inspect

import pytest
import torch
from mmdet.models.layers import PixelDecoder, TransformerEncoderPixelDecoder
from mmdet.models.necks import FPN
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT
from mmengine.registry import DefaultScope
from mmseg.models.decode_heads import MaskFormerHead, SegformerHead
from mmseg.registry import MODELS as SEG_MODELS

import mmdysample  # noqa: F401 (registers the hosts)
from mmdysample.models import (DySampleFPN, DySampleMaskFormerHead,
                               DySamplePixelDecoder, DySampleSegformerHead,
                               DySampleTransformerEncoderPixelDecoder,
                               list_upsamplers)
from mmdysample.utils import (STOCK, drop_in_hosts, load_config, read_config,
                              swap_in_hosts)
from mmdysample.utils import host_swap
from mmdysample.utils.host_swap import where_it_upsamples
from mmdysample.utils.model import build_model

FASTER_RCNN = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
SEGFORMER = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'
MASKFORMER = 'mmseg::maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py'
PSPNET = 'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'
UPERNET = 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'
SLIM_FPN = 'configs/faster_rcnn/faster-rcnn_r18_fpn_synthetic.py'


@pytest.fixture(scope='module')
def stock_configs():
    """The stock configs, read once (each read resolves mmdet / mmseg
    bases)."""
    return {
        name: read_config(name)
        for name in (FASTER_RCNN, SEGFORMER, MASKFORMER, PSPNET, UPERNET)
    }


def fresh(stock_configs, name):
    return copy.deepcopy(stock_configs[name])


def test_drop_in_table_is_read_off_the_registries():
    table = drop_in_hosts()
    assert table[FPN] is DySampleFPN
    assert table[SegformerHead] is DySampleSegformerHead
    assert table[PixelDecoder] is DySamplePixelDecoder
    assert table[TransformerEncoderPixelDecoder] is \
        DySampleTransformerEncoderPixelDecoder
    assert table[MaskFormerHead] is DySampleMaskFormerHead
    names = {s.__name__: h.__name__ for s, h in table.items()}
    for stock in ('UPerHead', 'DepthwiseSeparableASPPHead', 'FPNHead',
                  'CSPNeXtPAFPN', 'YOLOXPAFPN', 'MSDeformAttnPixelDecoder'):
        assert names[stock] == f'DySample{stock}'
    for stock, host in table.items():
        assert issubclass(host, stock)
        assert host.__module__.startswith('mmdysample.')
        assert not stock.__module__.startswith('mmdysample.')
    # an upsampler (root registry only) is no host, even where it subclasses
    # a registered layer
    upsamplers = {ROOT.get(name) for name in list_upsamplers()}
    assert not upsamplers & set(table.values())


def test_mmdet_config_by_package_name(stock_configs):
    cfg = fresh(stock_configs, FASTER_RCNN)
    assert cfg.model.neck.type == 'FPN'
    assert 'upsample_cfg' not in cfg.model.neck


def test_missing_config_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        read_config(str(tmp_path / 'nope.py'))
    with pytest.raises(ValueError, match='mmdet::no/such.py'):
        read_config('mmdet::no/such.py')


def test_upsampler_swaps_the_fpn(stock_configs):
    cfg = fresh(stock_configs, FASTER_RCNN)
    changes = swap_in_hosts(cfg, 'DySample', log=False)
    assert changes == [
        'model.neck: FPN -> DySampleFPN', "model.neck.upsample_cfg='DySample'"
    ]
    assert cfg.model.neck.type == 'DySampleFPN'
    assert cfg.model.neck.upsample_cfg == 'DySample'
    # nothing else of the model moved
    before = fresh(stock_configs, FASTER_RCNN).model
    before.neck.update(type='DySampleFPN', upsample_cfg='DySample')
    assert cfg.model == before


def test_without_upsampler_a_config_that_needs_nothing_is_left(
        stock_configs):
    for name in (FASTER_RCNN, SEGFORMER, MASKFORMER, PSPNET, UPERNET):
        cfg = fresh(stock_configs, name)
        assert swap_in_hosts(cfg, log=False) == []
        assert cfg.model == stock_configs[name].model, name


def test_upsample_cfg_on_a_stock_head_is_swapped(stock_configs):
    """The first thing a user tries: ``upsample_cfg`` on mmseg's head,
    which has no such argument (mmseg would raise a TypeError)."""
    cfg = fresh(stock_configs, SEGFORMER)
    cfg.model.decode_head.upsample_cfg = 'DySample-S+'
    changes = swap_in_hosts(cfg, log=False)
    assert changes == [
        'model.decode_head: SegformerHead -> DySampleSegformerHead'
    ]
    assert cfg.model.decode_head.upsample_cfg == 'DySample-S+'


def test_upsample_cfg_on_upernet_builds_the_host(stock_configs):
    """``decode_head=dict(upsample_cfg='DySample')`` on mmseg's UPerNet
    config: mmseg alone dies with ``unexpected keyword argument
    'upsample_cfg'``; swapped, the head builds with one upsampler per
    top-down step and the auxiliary head stays mmseg's."""
    cfg = fresh(stock_configs, UPERNET)
    cfg.model.decode_head.upsample_cfg = 'DySample'
    assert swap_in_hosts(cfg, log=False) == [
        'model.decode_head: UPerHead -> DySampleUPerHead'
    ]
    assert cfg.model.auxiliary_head.type == 'FCNHead'
    head_cfg = dict(cfg.model.decode_head, channels=16, norm_cfg=None)
    head_cfg['in_channels'] = [8, 16, 24, 32]
    with DefaultScope.overwrite_default_scope('mmseg'):
        head = SEG_MODELS.build(head_cfg)
    assert type(head).__name__ == 'DySampleUPerHead'
    assert any(k.endswith('offset.weight') for k in head.state_dict())


@pytest.mark.parametrize('value, swapped', [
    ('DySample', True),
    (dict(type='DySample', groups=2), True),
    (dict(mode='bilinear'), False),  # mmdet's own form
])
def test_fpn_upsample_cfg_is_swapped_only_where_fpn_cannot_read_it(
        stock_configs, value, swapped):
    cfg = fresh(stock_configs, FASTER_RCNN)
    cfg.model.neck.upsample_cfg = value
    swap_in_hosts(cfg, log=False)
    assert (cfg.model.neck.type == 'DySampleFPN') == swapped
    assert cfg.model.neck.upsample_cfg == value


def test_stock_keeps_the_interpolation_a_config_gives(stock_configs):
    cfg = fresh(stock_configs, FASTER_RCNN)
    cfg.model.neck.upsample_cfg = dict(mode='bilinear')
    swap_in_hosts(cfg, STOCK, log=False)
    assert cfg.model.neck.type == 'DySampleFPN'
    assert cfg.model.neck.upsample_cfg == dict(mode='bilinear')


def test_pixel_decoder_brings_its_maskformer_head(stock_configs):
    """mmseg's MaskFormer names mmdet's decoder with its scope; the head
    around it has a drop-in too (it builds the input projection for a
    decoder subclass), and comes along."""
    cfg = fresh(stock_configs, MASKFORMER)
    assert cfg.model.decode_head.pixel_decoder.type == 'mmdet.PixelDecoder'
    cfg.model.decode_head.pixel_decoder.upsample_cfg = 'DySample'
    changes = swap_in_hosts(cfg, log=False)
    assert cfg.model.decode_head.type == 'DySampleMaskFormerHead'
    assert cfg.model.decode_head.pixel_decoder.type == \
        'mmdet.DySamplePixelDecoder'
    assert len(changes) == 2


def test_every_host_gets_its_default_for_a_sweep(stock_configs):
    cfg = fresh(stock_configs, MASKFORMER)
    swap_in_hosts(cfg, every=True, log=False)
    decoder = cfg.model.decode_head.pixel_decoder
    assert decoder.type == 'mmdet.DySamplePixelDecoder'
    params = inspect.signature(DySamplePixelDecoder).parameters
    assert decoder.upsample_cfg == params['upsample_cfg'].default


def test_no_host_is_an_error_that_says_where_the_model_upsamples(
        stock_configs):
    cfg = fresh(stock_configs, PSPNET)
    with pytest.raises(ValueError) as info:
        swap_in_hosts(cfg, 'DySample', config=PSPNET, log=False)
    text = str(info.value)
    assert "--upsampler 'DySample'" in text and PSPNET in text
    assert 'model.decode_head (PSPHead' in text
    assert 'mmseg/models/decode_heads/psp_head.py' in text
    assert 'FPN -> DySampleFPN' in text
    assert 'SegformerHead -> DySampleSegformerHead' in text
    # neither the backbone nor the auxiliary FCN head upsamples features
    assert where_it_upsamples(cfg.model, 'mmseg') == [
        'model.decode_head (PSPHead: mmseg/models/decode_heads/psp_head.py)'
    ]


def test_a_config_without_model_needs_nothing():
    cfg = Config(dict(work_dir='w'))
    assert swap_in_hosts(cfg, log=False) == []
    with pytest.raises(ValueError, match='no model dict'):
        swap_in_hosts(cfg, 'DySample', log=False)


def test_upsampler_must_be_a_name(stock_configs):
    with pytest.raises(TypeError, match='--upsampler'):
        swap_in_hosts(fresh(stock_configs, FASTER_RCNN), 3, log=False)


def test_load_config_swaps_and_says_so(monkeypatch):
    lines = []
    monkeypatch.setattr(host_swap, 'print_log',
                        lambda msg, **kwargs: lines.append(msg))
    cfg = load_config(SLIM_FPN, upsampler='DySample-S+')
    assert cfg.model.neck.type == 'DySampleFPN'
    assert cfg.model.neck.upsample_cfg == 'DySample-S+'
    assert lines == [
        f'{SLIM_FPN}: drop-in hosts swapped in: model.neck: FPN -> '
        "DySampleFPN; model.neck.upsample_cfg='DySample-S+'"
    ]
    lines.clear()
    load_config(SLIM_FPN)
    assert lines == []


def _slim(upsampler=None):
    cfg = load_config(SLIM_FPN, upsampler=upsampler)
    torch.manual_seed(0)
    return build_model(cfg)


@pytest.fixture(scope='module')
def stock_model():
    return _slim()


@pytest.mark.parametrize('upsampler', ['DySample', 'DySample-S+', 'FADE'])
def test_stock_checkpoint_leaves_exactly_the_upsamplers_missing(
        stock_model, upsampler):
    model = _slim(upsampler)
    missing, unexpected = model.load_state_dict(
        stock_model.state_dict(), strict=False)
    assert unexpected == []
    expected = [
        k for k in model.state_dict() if k.startswith('neck.upsample_modules.')
    ]
    assert expected and sorted(missing) == sorted(expected)


def test_stock_upsampler_loads_a_stock_checkpoint_strictly(stock_model):
    model = _slim(STOCK)
    assert type(model.neck) is DySampleFPN
    model.load_state_dict(stock_model.state_dict(), strict=True)
    model.eval()
    stock_model.eval()
    feats = [
        torch.rand(1, c, 24 // 2**i, 40 // 2**i)
        for i, c in enumerate([64, 128, 256, 512])
    ]
    with torch.no_grad():
        for ours, theirs in zip(model.neck(feats), stock_model.neck(feats)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_swapped_config_builds_through_a_plain_config():
    """What the swap writes is an ordinary config: it survives a dump and
    a re-read (a sweep's run directories keep it)."""
    cfg = load_config(SLIM_FPN, upsampler='DySample')
    again = Config.fromstring(cfg.pretty_text, '.py')
    assert again.model.neck == cfg.model.neck
