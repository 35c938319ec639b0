# Copyright (c) mmdysample contributors. All rights reserved.
import pytest
import torch

pytest.importorskip('mmseg')

from mmengine.config import ConfigDict  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.models.decode_heads import SegformerHead  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmdysample import DYSAMPLE_PRESETS, DySample  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.decode_heads import DySampleSegformerHead  # noqa: E402

# Small channels: DySample-S needs channels % 8 (groups) and % 4 (s**2).
IN_CHANNELS = [8, 16, 24, 32]
CHANNELS = 16
NUM_CLASSES = 5
MMCV_UPSAMPLERS = ['nearest', 'bilinear', 'deconv', 'pixel_shuffle']
UPSAMPLERS = list(DYSAMPLE_PRESETS) + MMCV_UPSAMPLERS

# Level sizes (H, W) of a 4-level pyramid, fine to coarse. ADE20K's 512x683
# test images give odd sizes (MiT maps H to ceil(H / 2) per level).
PYRAMID_64 = [(64, 64), (32, 32), (16, 16), (8, 8)]
PYRAMID_ADE = [(128, 171), (64, 86), (32, 43), (16, 22)]
PYRAMID_ODD = [(33, 43), (17, 22), (9, 11), (5, 6)]


def head_cfg(**kwargs):
    cfg = dict(
        in_channels=IN_CHANNELS,
        in_index=[0, 1, 2, 3],
        channels=CHANNELS,
        num_classes=NUM_CLASSES,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False)
    cfg.update(kwargs)
    return cfg


def make_feats(sizes, batch=2, channels=IN_CHANNELS, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.rand(batch, c, h, w, generator=gen)
        for c, (h, w) in zip(channels, sizes)
    ]


def randomize_(module, seed=0):
    """Random parameters and BN statistics, so equality is not by chance."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
    return module


def count_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('sizes', [PYRAMID_64, PYRAMID_ADE, PYRAMID_ODD])
@pytest.mark.parametrize('explicit_none', [False, True])
def test_default_equals_stock_segformer_head(sizes, explicit_none):
    stock = randomize_(SegformerHead(**head_cfg())).eval()
    extra = dict(upsample_cfg=None) if explicit_none else {}
    head = DySampleSegformerHead(**head_cfg(**extra)).eval()
    # strict: same keys, no upsampler parameters in the default head
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(sizes)
    with torch.no_grad():
        expected = stock(feats)
        out = head(feats)
    assert out.shape == (2, NUM_CLASSES, *sizes[0])
    assert torch.equal(out, expected)


def test_default_has_no_upsamplers():
    head = DySampleSegformerHead(**head_cfg())
    assert head.upsamplers is None
    assert count_params(head) == count_params(SegformerHead(**head_cfg()))


@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_forward_backward(name):
    torch.manual_seed(0)
    head = DySampleSegformerHead(**head_cfg(upsample_cfg=name)).train()
    # one stage per level step: 0 + 1 + 2 + 3
    assert [len(stages) for stages in head.upsamplers] == [0, 1, 2, 3]
    stock = SegformerHead(**head_cfg())
    feats = make_feats(PYRAMID_ODD)
    out = head(feats)
    assert out.shape == stock(feats).shape == (2, NUM_CLASSES, 33, 43)
    # a weighted sum: a plain sum would be constant through BatchNorm
    weights = torch.rand(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    for pname, param in head.named_parameters():
        assert param.grad is not None, pname
        assert param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize('name', list(DYSAMPLE_PRESETS) + ['deconv'])
def test_ade_sizes_match_stock(name):
    head = DySampleSegformerHead(**head_cfg(upsample_cfg=name)).eval()
    stock = SegformerHead(**head_cfg()).eval()
    feats = make_feats(PYRAMID_ADE, batch=1)
    with torch.no_grad():
        assert head(feats).shape == stock(feats).shape == (1, NUM_CLASSES,
                                                           128, 171)


def test_stages_are_aligned_to_the_input_sizes():
    """Every stage lands on the next finer level's actual size."""
    head = DySampleSegformerHead(**head_cfg(upsample_cfg='DySample')).eval()
    seen = []
    for level, stages in enumerate(head.upsamplers):
        for stage, upsampler in enumerate(stages):
            upsampler.register_forward_hook(
                lambda m, i, o, level=level, stage=stage: seen.append(
                    (level, stage, tuple(i[0].shape[2:]))))
    with torch.no_grad():
        head(make_feats(PYRAMID_ADE, batch=1))
    # each stage's input has the size of the level it upsamples from
    assert sorted(seen) == [
        (1, 0, (64, 86)),
        (2, 0, (32, 43)), (2, 1, (64, 86)),
        (3, 0, (16, 22)), (3, 1, (32, 43)), (3, 2, (64, 86)),
    ]


def test_align_crops_rounding_pixel_and_resizes_otherwise():
    head = DySampleSegformerHead(**head_cfg(upsample_cfg='nearest'))
    x = torch.rand(1, 2, 32, 44)
    assert torch.equal(head._align(x, torch.Size((32, 43))), x[..., :43])
    assert head._align(x, torch.Size((32, 44))) is x
    # smaller, or larger by more than a rounding pixel: resized
    assert head._align(x, torch.Size((33, 40))).shape[2:] == (33, 40)
    assert head._align(x, torch.Size((16, 22))).shape[2:] == (16, 22)


@pytest.mark.parametrize('name,per_stage', [('DySample', 8224),
                                            ('DySample+', 16416),
                                            ('DySample-S', 1040),
                                            ('DySample-S+', 2064)])
def test_parameter_delta_is_six_upsamplers(name, per_stage):
    b1 = dict(in_channels=[64, 128, 320, 512], channels=256, num_classes=150)
    stock = SegformerHead(**head_cfg(**b1))
    head = DySampleSegformerHead(**head_cfg(upsample_cfg=name, **b1))
    assert count_params(build_upsampler(name, 256)) == per_stage
    assert count_params(head) - count_params(stock) == 6 * per_stage


def dysamples(head):
    return [m for m in head.modules() if isinstance(m, DySample)]


@pytest.mark.parametrize('init_cfg', [
    None,  # the mmseg default: Normal(std=0.01) on conv_seg
    dict(type='Constant', val=1., bias=1., layer='Conv2d'),
])
def test_init_weights_keeps_dysample_init(init_cfg):
    extra = {} if init_cfg is None else dict(init_cfg=init_cfg)
    head = DySampleSegformerHead(
        **head_cfg(channels=256, upsample_cfg='DySample+', **extra))
    for layer in dysamples(head):  # spoil the layer's own init
        torch.nn.init.constant_(layer.offset.weight, 1.)
        torch.nn.init.constant_(layer.offset.bias, 1.)
        torch.nn.init.constant_(layer.scope.weight, 1.)
    head.init_weights()
    assert len(dysamples(head)) == 6
    for layer in dysamples(head):
        assert 0.0008 < layer.offset.weight.std().item() < 0.0012
        assert not layer.offset.bias.any()
        assert not layer.scope.weight.any()
    if init_cfg is None:  # the base init still ran
        assert 0.008 < head.conv_seg.weight.std().item() < 0.012
    else:
        assert (head.conv_seg.weight == 1).all()


def test_pretrained_init_cfg_wins_over_upsampler_init(tmp_path):
    source = randomize_(
        DySampleSegformerHead(**head_cfg(upsample_cfg='DySample-S+')))
    path = tmp_path / 'head.pth'
    torch.save(source.state_dict(), path)
    head = DySampleSegformerHead(**head_cfg(
        upsample_cfg='DySample-S+',
        init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    head.init_weights()
    for (name, expected), actual in zip(source.state_dict().items(),
                                        head.state_dict().values()):
        assert torch.equal(expected, actual), name


def test_mmseg_registry_builds_it():
    head = MODELS.build(
        dict(type='DySampleSegformerHead', upsample_cfg=dict(
            type='DySample', groups=2), **head_cfg()))
    assert isinstance(head, DySampleSegformerHead)
    assert {m.groups for m in dysamples(head)} == {2}
    assert "upsample_cfg={'type': 'DySample', 'groups': 2}" in repr(head)


def test_level_mismatch_errors():
    # mmseg itself only has a bare assert here
    with pytest.raises(AssertionError):
        SegformerHead(**head_cfg(in_index=[0, 1, 2]))
    with pytest.raises(ValueError, match=r'in_channels=\[8, 16, 24, 32\].*'
                       r'in_index=\[0, 1, 2\]'):
        DySampleSegformerHead(**head_cfg(in_index=[0, 1, 2]))
    with pytest.raises(TypeError, match='in_index'):
        DySampleSegformerHead(**head_cfg(in_index=0))
    with pytest.raises(TypeError, match='in_channels'):
        DySampleSegformerHead(**head_cfg(in_channels=8))


@pytest.mark.parametrize('cfg,exc,match', [
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(scale_factor=2), KeyError, 'type'),
    (3, TypeError, 'upsample_cfg'),
])
def test_bad_upsample_cfg(cfg, exc, match):
    with pytest.raises(exc, match=match):
        DySampleSegformerHead(**head_cfg(upsample_cfg=cfg))


def test_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match='groups'):
        DySampleSegformerHead(
            **head_cfg(channels=12, upsample_cfg='DySample-S'))


def test_loss_and_predict():
    head = DySampleSegformerHead(**head_cfg(upsample_cfg='DySample-S+'))
    feats = make_feats(PYRAMID_ODD)
    img_shape = (4 * 33 - 2, 4 * 43 - 1)  # the image behind PYRAMID_ODD
    samples = []
    for seed in range(2):
        gen = torch.Generator().manual_seed(seed)
        label = torch.randint(0, NUM_CLASSES, (1, *img_shape), generator=gen)
        sample = SegDataSample(
            metainfo=dict(img_shape=img_shape, pad_shape=img_shape,
                          ori_shape=img_shape))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    losses = head.loss(feats, samples, train_cfg={})
    assert losses['loss_ce'].isfinite() and losses['loss_ce'] > 0
    losses['loss_ce'].backward()
    assert all(m.offset.weight.grad.abs().sum() > 0 for m in dysamples(head))

    head.eval()
    with torch.no_grad():
        logits = head.predict(feats, [s.metainfo for s in samples], {})
    assert logits.shape == (2, NUM_CLASSES, *img_shape)


def test_encoder_decoder_with_mit_b0_on_odd_input():
    """A real MiT pyramid (ceil(H / 2) per level) through a segmentor."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = build_model()
    model.init_weights()
    model.eval()
    inputs = torch.rand(1, 3, 67, 91)
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        assert [tuple(f.shape[2:]) for f in feats] == [(17, 23), (9, 12),
                                                       (5, 6), (3, 3)]
        results = model.predict(inputs)
    assert results[0].pred_sem_seg.shape == (67, 91)
    assert results[0].seg_logits.data.shape == (NUM_CLASSES, 67, 91)


def build_model():
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='MixVisionTransformer', embed_dims=16,
                num_heads=[1, 2, 4, 8], num_layers=[1, 1, 1, 1],
                init_cfg=None),
            decode_head=dict(
                type='DySampleSegformerHead', upsample_cfg='DySample',
                **head_cfg(in_channels=[16, 32, 64, 128])),
            test_cfg=ConfigDict(mode='whole')))


def test_carafe_builds():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    head = DySampleSegformerHead(**head_cfg(upsample_cfg='carafe'))
    stages = [m for m in head.modules() if isinstance(m, CARAFEPack)]
    assert len(stages) == 6
    assert all(m.channels == CHANNELS for m in stages)


@pytest.mark.gpu
@pytest.mark.parametrize('name', ['carafe', 'DySample', 'DySample-S+'])
def test_forward_backward_cuda(name):
    head = DySampleSegformerHead(**head_cfg(upsample_cfg=name)).cuda()
    feats = [f.cuda() for f in make_feats(PYRAMID_ODD)]
    out = head(feats)
    assert out.shape == (2, NUM_CLASSES, 33, 43)
    (out * torch.rand_like(out)).sum().backward()
    for pname, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname
