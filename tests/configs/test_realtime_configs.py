# Copyright (c) mmdysample contributors. All rights reserved.
"""The RTMDet, YOLOX and Mask2Former configs (COCO / ADE20K and the
built-in data).

The COCO / ADE20K ones keep mmdet's / mmseg's stock config apart from the
neck (pixel decoder) type and ``upsample_cfg``, build, add exactly their
upsamplers' parameters, and are listed with those numbers in their README
and metafile. The built-in ones build with the host in place (their train
and test round trips: tests/tools/test_realtime_round_trips.py).
"""
import ast
import copy
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine import Config  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers the hosts)
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.utils.complexity import (baseline_config,  # noqa: E402
                                         build_model)

ROOT = Path(__file__).parents[2]
FOLDERS = ('rtmdet', 'yolox', 'mask2former')
#: name qualifier -> DySample preset
VARIANTS = {'lpg4': 'DySample', 'lpg4ds': 'DySample+'}
#: stem -> (stock config, path of the host in the model, host type, the
#: channels of its steps)
ZOO = {
    f'rtmdet_{size}_pafpn-dysample-{tag}_8xb32-300e_coco':
    (f'mmdet::rtmdet/rtmdet_{size}_8xb32-300e_coco.py', ('neck', ),
     'DySampleCSPNeXtPAFPN', steps)
    for size, steps in (('tiny', [96, 192]), ('s', [128, 256]))
    for tag in VARIANTS
}
ZOO.update({
    f'yolox_s_pafpn-dysample-{tag}_8xb8-300e_coco':
    ('mmdet::yolox/yolox_s_8xb8-300e_coco.py', ('neck', ),
     'DySampleYOLOXPAFPN', [128, 256])
    for tag in VARIANTS
})
ZOO.update({
    f'mask2former_r50_msdeformattn-dysample-{tag}_8xb2-lsj-50e_coco':
    ('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
     ('panoptic_head', 'pixel_decoder'), 'DySampleMSDeformAttnPixelDecoder',
     [256])
    for tag in VARIANTS
})
ZOO['mask2former_r50_msdeformattn-dysample-lpg4_8xb2-160k_ade20k-512x512'] = (
    'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
    ('decode_head', 'pixel_decoder'), 'mmdet.DySampleMSDeformAttnPixelDecoder',
    [256])
SYNTHETIC = {
    'rtmdet_tiny_pafpn-dysample-lpg4_synthetic':
    (('neck', ), 'DySampleCSPNeXtPAFPN'),
    'yolox_tiny_pafpn-dysample-lpg4_synthetic':
    (('neck', ), 'DySampleYOLOXPAFPN'),
    'mask2former_r18_msdeformattn-dysample-lpg4_synthetic':
    (('decode_head', 'pixel_decoder'),
     'mmdet.DySampleMSDeformAttnPixelDecoder'),
}
CONFIGS = sorted(
    path for folder in FOLDERS
    for path in (ROOT / 'configs' / folder).glob('*.py'))
TAG = re.compile(r'-dysample-([a-z0-9]+)_')


def path_of(stem):
    return next(p for p in CONFIGS if p.stem == stem)


@lru_cache(maxsize=None)
def _load(path):
    return Config.fromfile(path)


def load(path):
    return copy.deepcopy(_load(str(path)))


@lru_cache(maxsize=None)
def _load_stock(base, tmp_dir):
    # Config.fromfile('mmdet::...') is not supported: inherit it instead.
    stub = Path(tmp_dir) / (base.split('/')[-1][:-3] + '_stock.py')
    stub.write_text(f'_base_ = {base!r}\n')
    return Config.fromfile(stub)


@pytest.fixture(scope='module')
def load_stock(tmp_path_factory):
    tmp_dir = str(tmp_path_factory.mktemp('stock'))
    return lambda base: copy.deepcopy(_load_stock(base, tmp_dir))


def declared_base(path):
    """The ``_base_`` a config file assigns, read without executing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def node_at(model, where):
    for key in where:
        model = model[key]
    return model


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def test_configs_are_collected():
    stems = sorted(path.stem for path in CONFIGS)
    assert stems, 'no configs found under configs/{rtmdet,yolox,mask2former}'
    assert stems == sorted(list(ZOO) + list(SYNTHETIC))


@pytest.mark.parametrize('stem', sorted(ZOO))
def test_keeps_the_stock_config_apart_from_the_host(stem, load_stock):
    base, where, host, _ = ZOO[stem]
    path = path_of(stem)
    assert declared_base(path) == base
    ours, stock = load(path).to_dict(), load_stock(base).to_dict()
    # mmdysample added to the stock imports (mmseg's names mmdet.models)
    stock_imports = stock.pop('custom_imports', dict(imports=[]))['imports']
    stock_imports = ([stock_imports]
                     if isinstance(stock_imports, str) else stock_imports)
    assert ours.pop('custom_imports') == dict(
        imports=stock_imports + ['mmdysample'], allow_failed_imports=False)
    node, stock_node = node_at(ours['model'], where), node_at(
        stock['model'], where)
    preset = VARIANTS[TAG.search(stem).group(1)]
    assert node['type'] == host
    assert stock_node['type'] == host.replace('DySample', '')
    # a dict or, where the stock config sets nn.Upsample kwargs, a name
    assert node['upsample_cfg'] in (preset, dict(type=preset))
    # the host's type and upsample_cfg are the only change
    node.pop('upsample_cfg')
    node['type'] = stock_node['type']
    stock_node.pop('upsample_cfg', None)
    assert ours == stock


@pytest.mark.parametrize('stem', sorted(ZOO))
def test_adds_exactly_its_upsamplers_as_the_metafile_says(stem):
    _, _, _, steps = ZOO[stem]
    path = path_of(stem)
    cfg = load(path)
    preset = VARIANTS[TAG.search(stem).group(1)]
    ours = count_params(build_model(cfg))
    stock = count_params(build_model(baseline_config(cfg)))
    assert ours - stock == sum(
        count_params(build_upsampler(preset, c)) for c in steps) > 0
    meta = yaml.safe_load((path.parent / 'metafile.yml').read_text())
    (model, ) = [m for m in meta['Models'] if m['Name'] == stem]
    assert model['Metadata']['Parameters'] == ours
    assert model['Metadata']['Parameters vs stock'] == ours - stock


@pytest.mark.parametrize('stem', sorted(SYNTHETIC))
def test_synthetic_config_builds_with_the_host(stem):
    where, host = SYNTHETIC[stem]
    cfg = load(path_of(stem))
    assert cfg.custom_imports == dict(
        imports=['mmdysample'], allow_failed_imports=False)
    node = node_at(cfg.model, where)
    assert node.type == host and node.upsample_cfg == dict(type='DySample')
    layers = build_model(cfg)
    for key in where:
        layers = getattr(layers, key)
    assert [type(m).__name__ for m in layers.upsample_modules] == [
        'DySample'
    ] * (1 if 'mask2former' in stem else 2)


@pytest.mark.parametrize('folder', FOLDERS)
def test_readme_and_metafile_list_every_config(folder):
    readme = (ROOT / 'configs' / folder / 'README.md').read_text()
    meta = yaml.safe_load(
        (ROOT / 'configs' / folder / 'metafile.yml').read_text())
    stems = sorted(p.stem for p in CONFIGS if p.parent.name == folder)
    assert stems
    models = {m['Name']: m for m in meta['Models']}
    assert sorted(models) == stems
    for stem in stems:
        assert f'({stem}.py)' in readme, stem
        model = models[stem]
        assert model['Config'] == f'configs/{folder}/{stem}.py'
        assert model['In Collection'] == meta['Collections'][0]['Name']
