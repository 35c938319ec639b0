# Copyright (c) mmdysample contributors. All rights reserved.
"""The ``mmdysample`` scope: ``mmdysample::`` bases from a user's directory
and the host-scope registries that build what such a base brings in."""
import collections
import importlib.util
import os.path as osp
from pathlib import Path

import pytest

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.config.utils import MODULE2PACKAGE  # noqa: E402
from mmengine.dataset import Compose  # noqa: E402
from mmengine.registry import MODELS, TRANSFORMS, DefaultScope  # noqa: E402
from mmengine.utils import get_installed_path, is_installed  # noqa: E402

import mmdysample  # noqa: E402
from mmdysample.registry import SCOPE, host_scope  # noqa: E402

ROOT = Path(__file__).parents[1]
PACKAGE_DIR = osp.dirname(osp.abspath(mmdysample.__file__))
FASTER_RCNN_R50 = 'faster_rcnn/faster-rcnn_r50_fpn-dysample-lpg4_1x_coco.py'
FASTER_RCNN_SYNTHETIC = (
    'faster_rcnn/faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py')


@pytest.fixture(scope='module', autouse=True)
def mim_dir():
    """The package's ``.mim``: a wheel has it, ``pip install -e`` links it.

    A checkout used through PYTHONPATH without an install gets the same
    links here (git-ignored), made by setup.py's own function.
    """
    mim = osp.join(PACKAGE_DIR, '.mim')
    if not osp.isdir(mim):
        assert osp.samefile(PACKAGE_DIR, ROOT / 'mmdysample'), mim
        spec = importlib.util.spec_from_file_location(
            'mmdysample_setup', ROOT / 'setup.py')
        setup = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(setup)
        setup.add_mim_files(mim, link=True)
    return mim


@pytest.fixture
def default_scope(monkeypatch):
    """Run with only the given default scopes set (oldest first)."""

    def set_scopes(*names):
        monkeypatch.setattr(DefaultScope, '_instance_dict',
                            collections.OrderedDict())
        for i, name in enumerate(names):
            DefaultScope.get_instance(f'test-{i}', scope_name=name)

    return set_scopes


def user_config(tmp_path, base, body=''):
    path = tmp_path / 'my_config.py'
    path.write_text(f'_base_ = {base!r}\n{body}')
    return str(path)


def test_prefix_points_mmengine_at_the_imported_package():
    package = MODULE2PACKAGE[SCOPE]
    assert is_installed(package)
    # The distribution name would give <site-packages>/mmdysample, which an
    # editable install (or a checkout on PYTHONPATH) does not have.
    assert osp.samefile(get_installed_path(package), PACKAGE_DIR)


def test_paper_config_as_a_base_from_a_user_directory(tmp_path, monkeypatch,
                                                      default_scope):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(
        user_config(
            tmp_path, f'mmdysample::{FASTER_RCNN_R50}',
            "model = dict(neck=dict(upsample_cfg=dict(type='DySample+')))"))
    assert cfg.model.neck.type == 'DySampleFPN'
    assert cfg.model.neck.upsample_cfg.type == 'DySample+'
    # The model comes from our config's mmdet:: base: mmdet's scope.
    assert cfg.model._scope_ == 'mmdet'
    default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None  # no weights can be downloaded
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'FasterRCNN'
    assert type(model.neck).__name__ == 'DySampleFPN'
    assert all(type(up).__name__ == 'DySample' and up.dyscope
               for up in model.neck.upsample_modules)


def test_synthetic_config_as_a_base_builds_in_the_host_scope(
        tmp_path, monkeypatch, default_scope):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(
        user_config(tmp_path, f'mmdysample::{FASTER_RCNN_SYNTHETIC}'))
    dataset = cfg.train_dataloader.dataset
    # Our own relative bases carry no scope, so mmengine gives them ours.
    assert dataset._scope_ == SCOPE
    default_scope(cfg.default_scope)
    pipeline = Compose(
        [dict(t, _scope_=dataset._scope_) for t in dataset.pipeline])
    names = [type(t).__module__ for t in pipeline.transforms]
    # mmdet's LoadAnnotations and Resize, not mmcv's of the same name.
    assert names[1:] == ['mmdet.datasets.transforms.loading'] + [
        'mmdet.datasets.transforms.transforms'
    ] * 2 + ['mmdet.datasets.transforms.formatting']


@pytest.mark.parametrize('host,module', [
    ('mmdet', 'mmdet.datasets.transforms.loading'),
    ('mmseg', 'mmseg.datasets.transforms.loading'),
])
def test_same_name_resolves_in_each_host(host, module, default_scope):
    default_scope(host)
    cfg = dict(type='LoadAnnotations', _scope_=SCOPE)
    assert type(TRANSFORMS.build(cfg)).__module__ == module
    assert host_scope() == host


def test_nested_builds_keep_the_host(default_scope):
    # mmengine pushes `mmdysample` on top of the run's scope while it builds
    default_scope('mmseg', SCOPE, SCOPE)
    assert host_scope() == 'mmseg'


def test_no_default_scope_is_an_error(default_scope):
    default_scope(SCOPE)
    with pytest.raises(KeyError, match='default_scope'):
        TRANSFORMS.build(dict(type='LoadAnnotations', _scope_=SCOPE))
