# Copyright (c) mmdysample contributors. All rights reserved.
"""What setup.py puts under ``mmdysample/.mim`` and the index mim reads.

``model-index.yml`` must import every metafile (mmengine and ``mim`` only
know the configs listed there); the copy (wheel) and link (editable) modes
of ``add_mim_files`` must produce the checkout's files.
"""
import filecmp
import importlib.util
import os
import os.path as osp
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope='module')
def setup_module_():
    spec = importlib.util.spec_from_file_location('mmdysample_setup',
                                                  ROOT / 'setup.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() itself runs under __main__
    return module


def test_model_index_imports_every_metafile():
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    metafiles = sorted(
        p.relative_to(ROOT).as_posix()
        for p in ROOT.glob('configs/*/metafile.yml'))
    assert metafiles, 'no configs/*/metafile.yml found'
    assert sorted(index['Import']) == metafiles


def test_every_metafile_model_names_an_existing_config():
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    configs = []
    for metafile in index['Import']:
        for model in yaml.safe_load((ROOT / metafile).read_text())['Models']:
            configs.append(model['Config'])
    assert configs
    missing = [c for c in configs if not (ROOT / c).is_file()]
    assert not missing


def test_copies_for_a_wheel(setup_module_, tmp_path):
    mim = tmp_path / 'pkg' / '.mim'
    mim.mkdir(parents=True)
    (mim / 'model-index.yml').write_text('stale')  # from an earlier build
    setup_module_.add_mim_files(str(mim), link=False)
    assert set(os.listdir(mim)) == set(setup_module_.MIM_FILES)
    for name in setup_module_.MIM_FILES:
        assert not (mim / name).is_symlink()
    assert filecmp.cmp(mim / 'model-index.yml', ROOT / 'model-index.yml',
                       shallow=False)
    for rel in ('tools/train.py', 'tools/test.py',
                'configs/faster_rcnn/metafile.yml'):
        assert filecmp.cmp(mim / rel, ROOT / rel, shallow=False), rel
    assert not list(mim.glob('**/__pycache__'))


def test_links_for_an_editable_install(setup_module_, tmp_path):
    mim = tmp_path / '.mim'
    setup_module_.add_mim_files(str(mim), link=False)  # replaced by links
    setup_module_.add_mim_files(str(mim), link=True)
    for name in setup_module_.MIM_FILES:
        link = mim / name
        assert link.is_symlink()
        # relative, so a moved checkout keeps working
        assert not osp.isabs(os.readlink(link))
        assert link.resolve() == (ROOT / name).resolve()
