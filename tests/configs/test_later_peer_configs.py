# Copyright (c) mmdysample contributors. All rights reserved.
"""The later upsamplers' configs: FreqFusion (TPAMI 2024) and LDA-AQU (ACM
MM 2024) in the FPN of Faster R-CNN / Mask R-CNN / Panoptic FPN (R50) and
in SegFormer-B1's decoder.

Each config differs from the DySample config of the same model in the
upsampler only, at the authors' settings, adds exactly stages x one
upsampler's parameters, runs a CPU forward, and is listed in its folder's
README (with the authors' reported numbers, marked as theirs) and
metafile.
"""
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

import mmdysample  # noqa: E402,F401 (registers everything)
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.guide import needs_guide  # noqa: E402
from mmdysample.utils.complexity import baseline_config  # noqa: E402
from mmdysample.utils.model import build_model  # noqa: E402

# The comparison rows' helpers: same folders, same hosts, same tables.
from test_comparison_configs import (  # noqa: E402,I100
    SIZE, build_part, count_params, is_detector, load, metafile_models,
    readme_rows, upsample_cfg)

ROOT = Path(__file__).parents[2]
DET_FOLDERS = {
    'faster_rcnn': 'faster-rcnn',
    'mask_rcnn': 'mask-rcnn',
    'panoptic_fpn': 'panoptic-fpn'
}
TAGS = {'freqfusion': 'FreqFusion', 'lda-aqu': 'LDA-AQU'}
#: parameters of one x2 stage at 256 channels (the authors' modules)
PER_STAGE = {
    # compressors 2 x (256 * 64 + 64), encoders 64 -> 25 and 64 -> 9 (3x3),
    # offset / scale convs 2 x (72 * 9 * 32 + 32) + 2 x (72 * 9 * 8 + 8),
    # two GroupNorm(8, 64)
    'FreqFusion': 2 * 16448 + 14425 + 5193 + 2 * 20768 + 2 * 5192 + 256,
    'FreqFusion-no-norm': 104434,
    # q / k projections 2 x 256 * 64, depth-wise 32 * 9, LayerNorms
    # 2 * 32 + 2 * 256, offset conv 32 -> 18 (3x3), position bias 9 * 64
    'LDA-AQU': 2 * 16384 + 288 + 64 + 512 + 5202 + 576,
}
FPN_STAGES = 3
SEG_STAGES = 6  # 3 + 2 + 1

DET_CONFIGS = [
    ROOT / 'configs' / folder / f'{prefix}_r50_fpn-{tag}_1x_coco.py'
    for folder, prefix in DET_FOLDERS.items() for tag in TAGS
]
SEG_CONFIGS = [
    ROOT / 'configs' / 'segformer' /
    f'segformer_mit-b1-{tag}_8xb2-160k_ade20k-512x512.py' for tag in TAGS
]
CONFIGS = DET_CONFIGS + SEG_CONFIGS


def tag_of(path):
    return next(tag for tag in TAGS if f'-{tag}_' in path.name)


def stages(path):
    return FPN_STAGES if is_detector(path) else SEG_STAGES


def expected_cfg(path):
    cfg = dict(type=TAGS[tag_of(path)])
    if tag_of(path) == 'freqfusion' and path.parent.name == 'panoptic_fpn':
        # the authors' Panoptic FPN config: no GroupNorm in the resampler
        cfg['resample_norm'] = False
    return cfg


def per_stage(path):
    cfg = expected_cfg(path)
    return PER_STAGE['FreqFusion-no-norm' if 'resample_norm' in
                     cfg else cfg['type']]


def dysample_twin(path):
    return path.with_name(
        path.name.replace(f'-{tag_of(path)}_', '-dysample-lpg4_'))


def ids(path):
    return path.stem


def test_configs_are_collected():
    assert len(CONFIGS) == 8
    for path in CONFIGS:
        assert path.is_file(), path


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_differs_from_dysample_config_in_upsampler_only(path):
    ours, twin = load(path), load(dysample_twin(path))
    assert upsample_cfg(ours) == expected_cfg(path)
    assert upsample_cfg(twin)['type'] == 'DySample'
    ours, twin = ours.to_dict(), twin.to_dict()
    part = 'neck' if is_detector(path) else 'decode_head'
    ours['model'][part].pop('upsample_cfg')
    twin['model'][part].pop('upsample_cfg')
    assert ours == twin


def test_freqfusion_is_the_authors_setting():
    layer = build_upsampler('FreqFusion', in_channels=256)
    assert needs_guide(layer)
    assert (layer.lowpass_kernel, layer.highpass_kernel,
            layer.compressed_channels, layer.encoder_kernel,
            layer.feature_resample, layer.hamming) == (5, 3, 64, 3, True,
                                                       True)
    assert layer.dysampler.groups == 4
    assert isinstance(layer.dysampler.norm_hr, torch.nn.GroupNorm)
    assert layer.dysampler.norm_hr.num_groups == 8
    assert count_params(layer) == PER_STAGE['FreqFusion'] == 104_690
    no_norm = build_upsampler(
        dict(type='FreqFusion', resample_norm=False), 256)
    assert count_params(no_norm) == PER_STAGE['FreqFusion-no-norm']


def test_lda_aqu_is_the_authors_setting():
    layer = build_upsampler('LDA-AQU', in_channels=256)
    assert not needs_guide(layer)
    assert (layer.reduction, layer.k_e, layer.k_u, layer.groups,
            layer.offset_range, layer.num_heads,
            layer.rpb) == (4, 3, 3, 2, 11.0, 1, True)
    assert count_params(layer) == PER_STAGE['LDA-AQU'] == 39_410


#: baseline config file -> its parameter count (one build per model)
_BASELINE_PARAMS = {}


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_parameter_delta_is_stages_times_one_upsampler(path):
    cfg = load(path)
    model = build_model(cfg)
    key = (path.parent.name, cfg.model.type)
    if key not in _BASELINE_PARAMS:
        _BASELINE_PARAMS[key] = count_params(
            build_model(baseline_config(cfg)))
    delta = count_params(model) - _BASELINE_PARAMS[key]
    assert delta == stages(path) * per_stage(path)
    upsamplers = (
        model.neck.upsample_modules if is_detector(path) else
        [m for branch in model.decode_head.upsamplers for m in branch])
    assert len(upsamplers) == stages(path)
    assert all(type(m).__name__ == type(upsamplers[0]).__name__
               for m in upsamplers)


#: the FPN is the same in the three detectors: one of them, and SegFormer
FORWARD = [
    p for p in CONFIGS if p.parent.name in ('faster_rcnn', 'segformer')
]


@pytest.mark.parametrize('path', FORWARD, ids=ids)
def test_config_runs_a_cpu_forward(path):
    if is_detector(path):
        for folder, prefix in DET_FOLDERS.items():
            other = ROOT / 'configs' / folder / path.name.replace(
                'faster-rcnn', prefix)
            neck, other_neck = load(path).model.neck, load(other).model.neck
            other_neck.upsample_cfg.pop('resample_norm', None)
            assert neck == other_neck, other
    module, inputs = build_part(path)
    calls = []
    for layer in module.modules():
        if type(layer).__name__ in ('FreqFusion', 'LDAAQU'):
            layer.register_forward_hook(
                lambda m, args, out: calls.append(out.shape))
    with torch.no_grad():
        outs = module(inputs)
    assert len(calls) == stages(path)
    outs = list(outs) if is_detector(path) else [outs]
    assert [out.shape[-1] for out in outs] == (
        [SIZE // 2**i for i in range(5)] if is_detector(path) else [SIZE])
    assert all(torch.isfinite(out).all() for out in outs)


#: what the authors report for R50 1x (their READMEs), by config
AUTHORS = {
    'faster-rcnn_r50_fpn-freqfusion_1x_coco': {'box AP': 39.4},
    'mask-rcnn_r50_fpn-freqfusion_1x_coco': {'box AP': 40.0, 'mask AP': 36.0},
    'panoptic-fpn_r50_fpn-freqfusion_1x_coco': {'PQ': 42.7},
    'faster-rcnn_r50_fpn-lda-aqu_1x_coco': {'box AP': 39.2},
}


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_listed_in_readme_and_metafile(path):
    folder = path.parent.name
    names = {f'[{path.name}]({path.name})', tag_of(path)}
    delta = stages(path) * per_stage(path)
    rows = [row for row in readme_rows(folder)
            if row[0] in names and f'+{delta:,}' in row]
    assert len(rows) == 1, f'{path.name}: no README row with +{delta:,}'
    model = metafile_models(folder).get(path.stem)
    assert model is not None, f'{path.name} is not in the metafile'
    assert model['Config'] == str(path.relative_to(ROOT))
    metadata = model['Metadata']
    assert metadata['Upsampler'] == TAGS[tag_of(path)]
    baseline = 'nearest' if is_detector(path) else 'bilinear'
    assert int(metadata[f'Parameters vs {baseline}']) == delta
    results = model['Results']
    results = results if isinstance(results, list) else [results]
    metrics = {k: v for r in results for k, v in r['Metrics'].items()}
    expected = AUTHORS.get(path.stem, {})
    assert metrics == expected
    for value in expected.values():
        assert f'{value:.1f}' in rows[0], (value, rows[0])
    source = metadata['Results Source']
    assert 'authors' in source and 'not reproduced' in source
