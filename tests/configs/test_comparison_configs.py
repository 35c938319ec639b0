# Copyright (c) mmdysample contributors. All rights reserved.
"""The paper's comparison rows (Tables 4, 6, 7, 8): bilinear, deconvolution,
pixel shuffle, CARAFE and the guided IndexNet, A2U, FADE and SAPA-B in the
FPN of Faster R-CNN / Mask R-CNN / Panoptic FPN (R50) and in SegFormer-B1's
decoder.

Each config differs from the DySample config of the same model in the
upsampler only, uses the paper's settings (Sec. 4), adds exactly stages x
one upsampler's parameters, and is listed in its folder's README and
metafile.
"""
import copy
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine import Config  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers everything)
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.guide import needs_guide  # noqa: E402
from mmdysample.utils.complexity import baseline_config  # noqa: E402
from mmdysample.utils.model import build_model  # noqa: E402

ROOT = Path(__file__).parents[2]
#: name qualifier -> the upsample_cfg of the paper's setting
UPSAMPLE_CFGS = {
    'bilinear': dict(type='bilinear', align_corners=False),
    'deconv': dict(
        type='deconv', kernel_size=3, stride=2, padding=1, output_padding=1),
    'pixel-shuffle': dict(type='pixel_shuffle', upsample_kernel=3),
    'carafe': dict(type='carafe'),
    # the guided ones: the paper's settings are the layers' defaults
    'indexnet': dict(type='IndexNet'),
    'a2u': dict(type='A2U'),
    'fade': dict(type='FADE'),
    'sapa-b': dict(type='SAPA-B'),
}
GUIDED = ['indexnet', 'a2u', 'fade', 'sapa-b']
#: parameters of one x2 stage at 256 channels, biases included
PER_STAGE = {
    'bilinear': 0,
    'deconv': 256 * 256 * 3 * 3 + 256,  # 590,080
    # 3x3 conv to 4 x 256 channels, then the shuffle
    'pixel-shuffle': 256 * 1024 * 3 * 3 + 1024,  # 2,360,320
    # compressor 256 -> 64 (1x1), encoder 64 -> 5*5*2*2 (3x3)
    'carafe': (256 * 64 + 64) + (64 * 100 * 9 + 100),  # 74,148
    # HIN: 4x4 s2 conv 256 -> 512 (no bias), BN(512), 1x1 512 -> 4 (no bias)
    'indexnet': 256 * 512 * 16 + 2 * 512 + 512 * 4,  # 2,100,224
    # 1x1 convs 256 -> 36, 1, 1 (biases) and two GroupNorm(32, 256)
    'a2u': (256 * 36 + 36) + 2 * (256 + 1) + 2 * 2 * 256,  # 10,790
    # 1x1 compressors 256 -> 64 (guide: bias, x: none), 3x3 encoder 64 -> 25
    'fade': (256 * 64 + 64) + 256 * 64 + (64 * 25 * 9 + 25),  # 47,257
    # two GroupNorm(32, 256), 1x1 query / key convs 256 -> 32 (biases)
    'sapa-b': 2 * 2 * 256 + 2 * (256 * 32 + 32),  # 17,472
}
DET_FOLDERS = {
    'faster_rcnn': 'faster-rcnn',
    'mask_rcnn': 'mask-rcnn',
    'panoptic_fpn': 'panoptic-fpn'
}
FPN_STAGES = 3
SEG_STAGES = 6  # 3 + 2 + 1
#: bilinear is SegFormer's baseline
SEG_TAGS = ['deconv', 'pixel-shuffle', 'carafe', *GUIDED]

DET_CONFIGS = [
    ROOT / 'configs' / folder / f'{prefix}_r50_fpn-{tag}_1x_coco.py'
    for folder, prefix in DET_FOLDERS.items() for tag in UPSAMPLE_CFGS
]
SEG_CONFIGS = [
    ROOT / 'configs' / 'segformer' /
    f'segformer_mit-b1-{tag}_8xb2-160k_ade20k-512x512.py' for tag in SEG_TAGS
]
CONFIGS = DET_CONFIGS + SEG_CONFIGS
#: the later upsamplers' configs: tests/configs/test_later_peer_configs.py
LATER_TAGS = ('freqfusion', 'lda-aqu')
TAG = re.compile(r'(?:_r50_fpn|_mit-b1)-(?P<tag>[a-z0-9-]+?)_(?:1x|8xb2)')


def tag_of(path):
    return TAG.search(path.name).group('tag')


def dysample_twin(path):
    """The DySample (lpg4) config of the same model."""
    return path.with_name(path.name.replace(f'-{tag_of(path)}_',
                                            '-dysample-lpg4_'))


def is_detector(path):
    return path.parent.name in DET_FOLDERS


def stages(path):
    return FPN_STAGES if is_detector(path) else SEG_STAGES


def upsample_cfg(cfg):
    model = cfg.model
    return (model.neck if 'neck' in model else model.decode_head).get(
        'upsample_cfg')


@lru_cache(maxsize=None)
def _load(path):
    return Config.fromfile(path)


def load(path):
    return copy.deepcopy(_load(str(path)))


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def ids(path):
    return path.stem


def test_configs_are_collected():
    assert len(CONFIGS) == 31  # 3 x 8 detectors, 7 SegFormers
    for path in CONFIGS:
        assert path.is_file(), path
    # nothing in these folders escapes the tests: each config is a DySample
    # row, a synthetic one, one of these or a later upsampler's
    for folder in [*DET_FOLDERS, 'segformer']:
        for path in (ROOT / 'configs' / folder).glob('*.py'):
            later = TAG.search(path.name) and tag_of(path) in LATER_TAGS
            assert ('-dysample-' in path.stem or '_synthetic' in path.stem
                    or path in CONFIGS or later
                    or path.stem.startswith('segformer_mit-b1-bilinear')), \
                path.name


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_differs_from_dysample_config_in_upsampler_only(path):
    ours, twin = load(path), load(dysample_twin(path))
    assert upsample_cfg(ours) == UPSAMPLE_CFGS[tag_of(path)]
    assert upsample_cfg(twin)['type'] == 'DySample'
    ours, twin = ours.to_dict(), twin.to_dict()
    part = 'neck' if is_detector(path) else 'decode_head'
    ours['model'][part].pop('upsample_cfg')
    twin['model'][part].pop('upsample_cfg')
    assert ours == twin


@pytest.mark.parametrize('tag', sorted(UPSAMPLE_CFGS))
def test_upsampler_is_the_papers_setting(tag):
    if tag == 'carafe':
        pytest.importorskip('mmcv.ops')
    layer = build_upsampler(UPSAMPLE_CFGS[tag], in_channels=256)
    assert count_params(layer) == PER_STAGE[tag]
    if tag == 'bilinear':
        assert (layer.mode, layer.align_corners) == ('bilinear', False)
        assert layer.scale_factor == 2
    elif tag == 'deconv':
        assert (layer.kernel_size, layer.stride, layer.padding,
                layer.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1))
    elif tag == 'pixel-shuffle':
        conv = layer.upsample_conv
        assert (conv.kernel_size, conv.out_channels) == ((3, 3), 4 * 256)
    elif tag == 'carafe':  # mmcv's defaults
        assert (layer.up_kernel, layer.up_group, layer.encoder_kernel,
                layer.encoder_dilation, layer.compressed_channels) == (5, 1,
                                                                       3, 1,
                                                                       64)
    elif tag == 'indexnet':  # HIN: holistic, nonlinear, with context
        assert (layer.use_nonlinear, layer.use_context) == (True, True)
        assert layer.indexnet[0].kernel_size == (4, 4)
    elif tag == 'a2u':  # dynamic-cs: 3x3 kernels, 6x6 filters, GN(32)
        assert (layer.up_kernel, layer.filter_size,
                layer.norm_groups) == (3, 6, 32)
    elif tag == 'fade':  # without the gate
        assert (layer.up_kernel, layer.encoder_kernel, layer.embedding_dim,
                layer.gating) == (5, 3, 64, False)
    else:  # SAPA-B
        assert (layer.up_kernel, layer.embedding_dim, layer.norm_groups,
                layer.qkv_bias) == (5, 32, 32, True)
    assert needs_guide(layer) == (tag in GUIDED)
    if tag in GUIDED:  # the spec's integers
        assert layer.scale_factor == 2 and layer.guide_channels == 256
        assert PER_STAGE[tag] == {
            'indexnet': 2_100_224,
            'a2u': 10_790,
            'fade': 47_257,
            'sapa-b': 17_472
        }[tag]
    if tag != 'carafe':  # exactly 2x, odd sizes included
        x = torch.rand(1, 256, 5, 7)
        args = (x, torch.rand(1, 256, 10, 14)) if tag in GUIDED else (x, )
        assert layer(*args).shape == (1, 256, 10, 14)


#: baseline config file -> its parameter count (one build per model)
_BASELINE_PARAMS = {}


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_parameter_delta_is_stages_times_one_upsampler(path):
    if tag_of(path) == 'carafe':
        pytest.importorskip('mmcv.ops')
    cfg = load(path)
    model = build_model(cfg)
    key = (path.parent.name, cfg.model.type)
    if key not in _BASELINE_PARAMS:
        _BASELINE_PARAMS[key] = count_params(
            build_model(baseline_config(cfg)))
    delta = count_params(model) - _BASELINE_PARAMS[key]
    assert delta == stages(path) * PER_STAGE[tag_of(path)]
    upsamplers = (
        model.neck.upsample_modules if is_detector(path) else
        [m for branch in model.decode_head.upsamplers for m in branch])
    assert len(upsamplers) == stages(path)
    assert sum(count_params(m) for m in upsamplers) == delta


SIZE = 32  # of the finest input level of build_part


def build_part(path):
    """The config's FPN (detectors) or decode head (SegFormer), and inputs
    of its levels' channels at a small size."""
    from mmengine.registry import MODELS, DefaultScope
    cfg = load(path)
    if is_detector(path):
        part, scope = cfg.model.neck, 'mmdet'
    else:
        part, scope = cfg.model.decode_head, 'mmseg'
        part.norm_cfg = dict(type='BN', requires_grad=True)
    inputs = [
        torch.rand(1, c, SIZE // 2**i, SIZE // 2**i)
        for i, c in enumerate(part.in_channels)
    ]
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(part), inputs


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if tag_of(p) == 'carafe'], ids=ids)
def test_carafe_config_refuses_a_cpu_forward(path):
    pytest.importorskip('mmcv.ops')
    module, inputs = build_part(path)
    with pytest.raises(NotImplementedError, match='no CPU kernel'):
        module(inputs)


#: one detector per guided upsampler: the three build the same FPN
GUIDED_FORWARD = [
    p for p in CONFIGS if tag_of(p) in GUIDED
    and p.parent.name in ('faster_rcnn', 'segformer')
]


@pytest.mark.parametrize('path', GUIDED_FORWARD, ids=ids)
def test_guided_config_runs_a_cpu_forward(path):
    """Pure PyTorch: the FPN / head runs on a CPU, each stage guided by the
    map it upsamples to."""
    if is_detector(path):
        for folder, prefix in DET_FOLDERS.items():
            other = ROOT / 'configs' / folder / path.name.replace(
                'faster-rcnn', prefix)
            assert load(other).model.neck == load(path).model.neck, other
    module, inputs = build_part(path)
    calls = []
    for layer in module.modules():
        if needs_guide(layer):
            layer.register_forward_hook(lambda m, args, out: calls.append(
                (args[1].shape, out.shape)))
    with torch.no_grad():
        outs = module(inputs)
    assert len(calls) == stages(path)
    assert all(guide[2:] == out[2:] for guide, out in calls)
    outs = list(outs) if is_detector(path) else [outs]
    assert [out.shape[-1] for out in outs] == (
        [SIZE // 2**i for i in range(5)] if is_detector(path) else [SIZE])
    assert all(torch.isfinite(out).all() for out in outs)


# ---------------------------------------------------------------------------
# README and metafile rows
# ---------------------------------------------------------------------------
def readme_rows(folder):
    """The cells of every table row of a folder's README."""
    text = (ROOT / 'configs' / folder / 'README.md').read_text()
    return [[cell.strip() for cell in line.strip('|').split('|')]
            for line in text.splitlines() if line.startswith('| ')]


def metafile_models(folder):
    meta = yaml.safe_load(
        (ROOT / 'configs' / folder / 'metafile.yml').read_text())
    return {model['Name']: model for model in meta['Models']}


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_listed_in_readme_and_metafile(path):
    folder = path.parent.name
    # the results row names the config by a link (detectors) or by its
    # qualifier (SegFormer's table, as its DySample rows)
    names = {f'[{path.name}]({path.name})', tag_of(path)}
    rows = [row for row in readme_rows(folder) if row[0] in names]
    delta = stages(path) * PER_STAGE[tag_of(path)]
    assert any(f'+{delta:,}' in row for row in rows), \
        f'{path.name} has no README row with +{delta:,} Params'
    model = metafile_models(folder).get(path.stem)
    assert model is not None, f'{path.name} is not in the metafile'
    assert model['Config'] == str(path.relative_to(ROOT))
    metadata = model['Metadata']
    assert metadata['Upsampler'] == UPSAMPLE_CFGS[tag_of(path)]['type']
    baseline = 'nearest' if is_detector(path) else 'bilinear'
    assert int(metadata[f'Parameters vs {baseline}']) == delta
    assert 'paper' in metadata['Results Source']
