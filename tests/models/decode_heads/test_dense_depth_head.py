# Copyright (c) mmdysample contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmseg')

from host_checks import (UPSAMPLERS, Probe, check_trains,  # noqa: E402
                         count_params, make_feats, randomize_)
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmdysample import DYSAMPLE_PRESETS, DySample  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.decode_heads import DenseDepthHead  # noqa: E402
from mmdysample.models.depth import (DepthFormerSwin,  # noqa: E402
                                     HAHIHeteroNeck, SigLoss)

#: DepthFormer Swin-T's levels, fine to coarse (the stem's first).
SWIN_T = [64, 96, 192, 384, 768]
#: A CPU-sized DepthFormer: Swin at embed 16 with an 8-channel stem.
SLIM = [8, 16, 32, 64, 128]
#: DepthFormerSwin's level sizes for a 45 x 61 image: odd at every level.
ODD_SIZES = [(23, 31), (12, 16), (6, 8), (3, 4), (2, 2)]
#: An exact 2x pyramid.
EVEN_SIZES = [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
#: Small channels at which every upsampler builds (GroupNorm(32) of A2U /
#: SAPA-B, DySample's groups): maps of 96, 64, 32, 32 channels upsampled,
#: skips of 64, 64, 32, 32 (guides narrower than the map at stage 0).
SMALL_IN = [32, 32, 64, 64, 96]
SMALL_UP = [16, 32, 32, 64, 96]

SLIM_SWIN = dict(
    type='DepthFormerSwin',
    embed_dims=16,
    depths=(1, 1, 1, 1),
    num_heads=(1, 2, 4, 8),
    window_size=4,
    drop_path_rate=0.,
    conv_stem_channels=8)
SLIM_NECK = dict(
    type='HAHIHeteroNeck',
    in_channels=SLIM,
    out_channels=SLIM,
    embedding_dim=32,
    num_points=2)


def head_cfg(**kwargs):
    cfg = dict(in_channels=SLIM, up_sample_channels=SLIM, channels=8)
    cfg.update(kwargs)
    return cfg


def trains(head, sizes, channels):
    """:func:`host_checks.check_trains` on the head; its depth. The depth
    conv's bias is raised first: at a random init the final ``relu(x) +
    min_depth`` may be zero at every pixel, and then nothing gets a
    gradient."""
    with torch.no_grad():
        head.conv_depth.bias.fill_(10.)
    feats = make_feats(channels, sizes)
    return check_trains(head, lambda module: [module(feats)])[0]


def small_cfg(**kwargs):
    return head_cfg(
        in_channels=SMALL_IN, up_sample_channels=SMALL_UP, channels=16,
        **kwargs)


# ---------------------------------------------------------------------------
# the stock path is the toolbox's DenseDepth decoder
# ---------------------------------------------------------------------------
def reference(head, feats, norm=False):
    """The toolbox's decoder written out: 1x1 conv on the coarsest level,
    then per stage bilinear resize to the skip, concatenation, two 3x3
    convs (+ BN) + LeakyReLU; a 3x3 conv, ReLU + min_depth."""
    def conv_act(x, module):
        x = F.conv2d(x, module.conv.weight, module.conv.bias, padding=1)
        if norm:
            bn = module.bn
            x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight,
                             bn.bias, False, 0., bn.eps)
        return F.leaky_relu(x, 0.01)

    levels = feats[::-1]
    first = head.conv_list[0].conv
    x = F.conv2d(levels[0], first.weight, first.bias)
    for stage, skip in enumerate(levels[1:]):
        up = F.interpolate(
            x,
            size=skip.shape[2:],
            mode='bilinear',
            align_corners=head.align_corners)
        block = head.conv_list[stage + 1]
        x = conv_act(conv_act(torch.cat([up, skip], 1), block.convA),
                     block.convB)
    depth = F.conv2d(x, head.conv_depth.weight, head.conv_depth.bias,
                     padding=1)
    return F.relu(depth) + head.min_depth


@pytest.mark.parametrize('align_corners', [True, False])
@pytest.mark.parametrize('norm_cfg', [None, dict(type='BN')])
@pytest.mark.parametrize('sizes', [ODD_SIZES, EVEN_SIZES])
def test_stock_path_is_the_hand_written_decoder(sizes, norm_cfg,
                                                align_corners):
    head = randomize_(
        DenseDepthHead(
            **head_cfg(norm_cfg=norm_cfg,
                       align_corners=align_corners))).eval()
    feats = make_feats(SLIM, sizes)
    with torch.no_grad():
        # centred weights, and a depth bias that makes the final ReLU pass
        # some pixels and not others
        for param in head.parameters():
            param.sub_(0.95)
        head.conv_depth.bias -= (head(feats) - head.min_depth).median()
        out = head(feats)
        expected = reference(head, feats, norm=norm_cfg is not None)
    assert out.shape == (2, 1, *sizes[0])
    assert torch.equal(out, expected)
    assert (out == head.min_depth).any() and (out > head.min_depth).any()


def test_stage_widths_and_keys_are_the_toolbox_ones():
    head = DenseDepthHead(**head_cfg(upsample_cfg='DySample'))
    assert [m.in_channels for m in head.upsample_modules] == [128, 64, 32, 16]
    assert [(b.convA.conv.in_channels, b.convB.conv.out_channels)
            for b in head.conv_list[1:]] == [(128 + 64, 64), (64 + 32, 32),
                                             (32 + 16, 16), (16 + 8, 8)]
    keys = set(DenseDepthHead(**head_cfg()).state_dict())
    assert {'conv_list.0.conv.weight', 'conv_list.0.conv.bias',
            'conv_list.4.convB.conv.weight', 'conv_depth.weight'} <= keys
    assert not any(k.startswith(('conv_seg', 'upsample')) for k in keys)


def test_bilinear_steps_equal_stock_on_a_2x_pyramid():
    """The learnable path, pinned to the stock forward: x2 bilinear layers
    (align_corners=True) where every skip is exactly twice the map."""
    stock = randomize_(DenseDepthHead(**head_cfg())).eval()
    head = DenseDepthHead(**head_cfg(
        upsample_cfg=dict(type='bilinear', align_corners=True))).eval()
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(SLIM, EVEN_SIZES)
    with torch.no_grad():
        assert torch.equal(head(feats), stock(feats))


# ---------------------------------------------------------------------------
# each stage upsamples the map it should, with the skip as the guide
# ---------------------------------------------------------------------------
def record_inputs(head):
    seen = []
    for stage, layer in enumerate(head.upsample_modules):
        layer.register_forward_hook(
            lambda module, args, out, stage=stage: seen.append(
                (stage, [tuple(a.shape) for a in args], tuple(out.shape))))
    return seen


@pytest.mark.parametrize('sizes', [ODD_SIZES, EVEN_SIZES])
def test_hooks_see_each_stage_map(sizes):
    head = DenseDepthHead(**head_cfg(upsample_cfg='DySample')).eval()
    seen = record_inputs(head)
    with torch.no_grad():
        out = head(make_feats(SLIM, sizes))
    assert out.shape == (2, 1, *sizes[0])
    coarse = sizes[::-1]
    assert seen == [(k, [(2, SLIM[4 - k], *coarse[k])],
                     (2, SLIM[4 - k], 2 * coarse[k][0], 2 * coarse[k][1]))
                    for k in range(4)]


@pytest.mark.parametrize('name', ['FADE', 'A2U', 'SAPA-B', 'IndexNet'])
def test_guided_stages_read_the_skip(name):
    """Guides are the skips themselves (channels 64, 64, 32, 32), padded by
    replication to twice the map on odd sizes."""
    head = DenseDepthHead(**small_cfg(upsample_cfg=name)).eval()
    assert head.upsample_guides is None
    seen = record_inputs(head)
    with torch.no_grad():
        head(make_feats(SMALL_IN, ODD_SIZES))
    coarse, widths, skips = ODD_SIZES[::-1], SMALL_UP[::-1], SMALL_IN[::-1]
    assert seen == [(k, [(2, widths[k], *coarse[k]),
                         (2, skips[k + 1], 2 * coarse[k][0],
                          2 * coarse[k][1])],
                     (2, widths[k], 2 * coarse[k][0], 2 * coarse[k][1]))
                    for k in range(4)]


def test_freqfusion_reads_the_skip_projected_to_the_map_width():
    head = DenseDepthHead(**small_cfg(upsample_cfg='FreqFusion')).eval()
    assert [(g.conv.in_channels, g.conv.out_channels)
            for g in head.upsample_guides] == [(64, 96), (64, 64), (32, 32),
                                               (32, 32)]
    assert [m.guide_channels for m in head.upsample_modules] == SMALL_UP[:0:-1]
    seen = record_inputs(head)
    with torch.no_grad():
        head(make_feats(SMALL_IN, ODD_SIZES))
    assert [args[1][1] for _, args, _ in seen] == SMALL_UP[:0:-1]
    # the projections are counted with the upsamplers, in their slots
    slots = [name for _, name in head.upsample_slots()]
    assert slots == ['0', '1', '2', '3'] * 2
    assert head.upsample_slots()[4][0] is head.upsample_guides


def test_probe_guide_gets_a_gradient_through_every_stage():
    head = DenseDepthHead(**head_cfg(upsample_cfg=dict(type=Probe)))
    out = trains(head, ODD_SIZES, SLIM)
    assert out.shape == (2, 1, *ODD_SIZES[0])
    assert [m.guide_channels for m in head.upsample_modules] == SLIM[3::-1]


def guided_reference(head, feats):
    """The guided decoder written out: each stage's upsampler reads the map
    and the skip (replicated to twice the map), its output cropped to the
    skip."""
    levels = feats[::-1]
    x = head.conv_list[0](levels[0])
    for stage, skip in enumerate(levels[1:]):
        (h, w), (sh, sw) = x.shape[2:], skip.shape[2:]
        guide = F.pad(skip, (0, 2 * w - sw, 0, 2 * h - sh), mode='replicate')
        up = head.upsample_modules[stage](x, guide)[:, :, :sh, :sw]
        x = head.conv_list[stage + 1](up, skip)
    return head.depth_pred(x)


def test_guided_gradients_equal_a_float64_reference():
    """A guide passed detached (or not at all) would leave the depth
    unchanged and the skips' gradients wrong: compare them."""
    head = DenseDepthHead(**head_cfg(upsample_cfg=dict(type=Probe)))
    head = randomize_(head).double()
    with torch.no_grad():
        head.conv_depth.bias.fill_(10.)
    grads = []
    for run in (head, lambda feats: guided_reference(head, feats)):
        feats = make_feats(SLIM, ODD_SIZES, dtype=torch.float64, grad=True)
        out = run(feats)
        out.pow(2).sum().backward()
        grads.append([f.grad for f in feats])
    for ours, expected in zip(*grads):
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in grads[0])


# ---------------------------------------------------------------------------
# every upsampler trains in the head
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_trains(name):
    head = DenseDepthHead(**small_cfg(upsample_cfg=name))
    assert len(head.upsample_modules) == 4
    assert len({id(m) for m in head.upsample_modules}) == 4
    out = trains(head, ODD_SIZES, SMALL_IN)
    assert out.shape == (2, 1, *ODD_SIZES[0])
    assert (out >= head.min_depth).all()


@pytest.mark.parametrize('name', ['A2U', 'SAPA-B'])
def test_groupnorm_upsamplers_at_slim_widths(name):
    """GroupNorm(32) divides neither the slim skips (8 to 64) nor the
    16-channel map of the last stage: the error names ``norm_groups``
    (a guide projection would not help: it is raised again), and the
    config that fixes it builds."""
    with pytest.raises(ValueError, match='norm_groups'):
        DenseDepthHead(**head_cfg(upsample_cfg=name))
    head = DenseDepthHead(**head_cfg(
        upsample_cfg=dict(type=name, norm_groups=8))).eval()
    assert head.upsample_guides is None
    with torch.no_grad():
        assert head(make_feats(SLIM, ODD_SIZES)).shape == (2, 1, 23, 31)


def test_carafe_builds():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    head = DenseDepthHead(**small_cfg(upsample_cfg='carafe'))
    assert [m.channels for m in head.upsample_modules
            if isinstance(m, CARAFEPack)] == [96, 64, 32, 32]


# ---------------------------------------------------------------------------
# parameter counts at Swin-T (the paper's Table 9)
# ---------------------------------------------------------------------------
#: ``C`` summed over the four stages: 768 + 384 + 192 + 96.
STAGE_CHANNELS = 1440


@pytest.fixture(scope='module')
def swin_t_counts():
    """Backbone, neck and stock head of DepthFormer Swin-T, counted once
    (built, never run)."""
    return dict(
        backbone=count_params(DepthFormerSwin()),
        neck=count_params(
            HAHIHeteroNeck(
                in_channels=SWIN_T,
                out_channels=SWIN_T,
                embedding_dim=256,
                positional_encoding=dict(
                    type='SinePositionalEncoding', num_feats=128))),
        head=count_params(DenseDepthHead()))


def test_bilinear_depthformer_swin_t_is_47_6m(swin_t_counts):
    # the head by hand: 1x1 768 -> 768, four stages (two 3x3 convs each),
    # the 3x3 depth conv; every conv with a bias (no norm)
    stages = [(768 + 384, 384), (384 + 192, 192), (192 + 96, 96),
              (96 + 64, 64)]
    head = 768 * 768 + 768 + sum(
        9 * cin * cout + cout + 9 * cout * cout + cout
        for cin, cout in stages) + 9 * 64 + 1
    assert swin_t_counts['head'] == head == 7_688_961
    total = sum(swin_t_counts.values())
    assert abs(total - 47.6e6) <= 0.3e6, total


@pytest.mark.parametrize('name,weights,bias', [
    ('DySample', 32, 32),  # lp, 4 groups: offset conv C -> 2 * 4 * 2**2
    ('DySample+', 64, 32),  # + the scope conv (no bias)
    ('DySample-S', 4, 16),  # pl, 8 groups: C / 4 -> 2 * 8 after the shuffle
    ('DySample-S+', 8, 16),
])
def test_dysample_presets_add_the_papers_parameters(swin_t_counts, name,
                                                   weights, bias):
    """Table 9's deltas are the offset (and scope) weights, 46.1K / 92.2K /
    5.8K / 11.5K; the offset bias adds 32 (lp) or 16 (pl) per stage, 128
    or 64 in all."""
    head = DenseDepthHead(upsample_cfg=name)
    delta = count_params(head) - swin_t_counts['head']
    assert delta == weights * STAGE_CHANNELS + 4 * bias
    assert delta == sum(
        count_params(build_upsampler(name, c)) for c in (768, 384, 192, 96))
    assert {
        'DySample': 46_208,
        'DySample+': 92_288,
        'DySample-S': 5_824,
        'DySample-S+': 11_584
    }[name] == delta
    assert all(isinstance(m, DySample) for m in head.upsample_modules)
    assert set(DYSAMPLE_PRESETS) >= {name}


# ---------------------------------------------------------------------------
# init, registry, errors
# ---------------------------------------------------------------------------
def test_init_keeps_the_upsamplers_and_the_convs_seeded():
    heads = []
    for cfg in (None, 'DySample', 'FreqFusion'):
        torch.manual_seed(0)
        head = DenseDepthHead(**head_cfg(upsample_cfg=cfg))
        head.init_weights()
        heads.append(head)
    for other in heads[1:]:
        for key, value in heads[0].state_dict().items():
            assert torch.equal(other.state_dict()[key], value), key
    for layer in heads[1].upsample_modules:
        assert 0.0005 < layer.offset.weight.std() < 0.0015


def test_upsamplers_draw_nothing_from_the_global_rng():
    after = []
    for cfg in (None, 'DySample', 'FADE'):
        torch.manual_seed(0)
        DenseDepthHead(**head_cfg(upsample_cfg=cfg)).init_weights()
        after.append(torch.rand(4))
    assert all(torch.equal(a, after[0]) for a in after[1:])


def test_init_cfg_does_not_reach_the_upsamplers():
    head = DenseDepthHead(**head_cfg(
        upsample_cfg='DySample',
        init_cfg=dict(type='Constant', layer='Conv2d', val=1.)))
    head.init_weights()
    assert (head.conv_depth.weight == 1).all()
    assert (head.conv_list[1].convA.conv.weight == 1).all()
    for layer in head.upsample_modules:
        assert 0.0005 < layer.offset.weight.std() < 0.0015


def test_registry_repr_and_scale_up():
    head = MODELS.build(
        dict(type='DenseDepthHead', upsample_cfg='DySample-S', **head_cfg()))
    assert isinstance(head.loss_decode, SigLoss)
    assert (head.num_classes, head.out_channels) == (1, 1)
    assert "upsample_cfg='DySample-S'" in repr(head)
    scaled = DenseDepthHead(**head_cfg(scale_up=True, max_depth=5))
    with torch.no_grad():
        out = scaled(make_feats(SLIM, ODD_SIZES))
    assert ((out > 0) & (out < 5)).all()


def test_wrong_guide_is_a_value_error_naming_host_and_stage():
    head = DenseDepthHead(**head_cfg(upsample_cfg='FADE'))
    sizes = list(ODD_SIZES)
    sizes[2] = (3, 4)  # level 2 as small as level 3: stage 1 has no x2
    with pytest.raises(ValueError,
                       match=r'DenseDepthHead stage 1: the guide of shape '
                       r'\(2, 32, 3, 4\)'):
        head(make_feats(SLIM, sizes))


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(channels=16), ValueError, 'up_sample_channels'),
    (dict(up_sample_channels=SLIM[:4]), ValueError, 'up_sample_channels'),
    (dict(min_depth=0), ValueError, 'min_depth'),
    (dict(scale_up=True, max_depth=None), ValueError, 'max_depth'),
    (dict(upsample_cfg=3), TypeError, 'upsample_cfg'),
    (dict(upsample_cfg='NoSuchUpsampler'), KeyError, 'NoSuchUpsampler'),
    (dict(loss_decode='SigLoss'), TypeError, 'loss_decode'),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DenseDepthHead(**head_cfg(**kwargs))


# ---------------------------------------------------------------------------
# mmseg's DepthEstimator trains and predicts with it
# ---------------------------------------------------------------------------
def depthformer_slim(upsample_cfg):
    return dict(
        type='DepthEstimator',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=0,
            size=(48, 64)),
        backbone=SLIM_SWIN,
        neck=SLIM_NECK,
        decode_head=dict(
            type='DenseDepthHead',
            in_channels=SLIM,
            up_sample_channels=SLIM,
            channels=8,
            upsample_cfg=upsample_cfg,
            loss_decode=dict(type='SigLoss', valid_mask=True, max_depth=10)),
        train_cfg=dict(),
        # attribute access, as a config file's (a plain dict is not)
        test_cfg=ConfigDict(mode='whole'))


def batch(sizes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(
            torch.randint(0, 256, (3, h, w), generator=gen,
                          dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(h, w),
                                             ori_shape=(h, w)))
        sample.gt_depth_map = PixelData(
            data=torch.rand(1, h, w, generator=gen) * 9 + 0.5)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('upsample_cfg', [None, 'DySample'])
def test_depth_estimator_trains_and_predicts(upsample_cfg):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(depthformer_slim(upsample_cfg))
    model.init_weights()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    before = model.decode_head.conv_depth.weight.detach().clone()
    # two sizes, padded to 48 x 64 (the padding's depth 0: not valid)
    log_vars = model.train_step(batch([(45, 61), (40, 57)]), optim)
    assert {'loss', 'decode.loss_depth'} <= set(log_vars)
    assert torch.isfinite(torch.as_tensor(log_vars['loss']).detach())
    assert not torch.equal(model.decode_head.conv_depth.weight, before)

    model.eval()
    with torch.no_grad():
        results = model.test_step(batch([(45, 61), (45, 61)], seed=1))
    assert len(results) == 2
    for result in results:
        depth = result.pred_depth_map.data
        assert depth.shape == (1, 45, 61)
        assert (depth > 0).all() and torch.isfinite(depth).all()
