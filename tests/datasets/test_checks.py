# Copyright (c) mmdysample contributors. All rights reserved.
"""Bad data gets a clear, early error through ``CheckedDataset``.

Each fault is made in a private copy of the built-in data and built the way
the Runner builds it (the root ``DATASETS`` registry under the host's
default scope), from the built-in data configs and from a real-data config
with the override the datasets guide gives.
"""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope

from mmdysample.datasets import (CheckedDataset, CheckSegLabels,
                                 generate_synthetic_dataset)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COCO_BASE = osp.join(REPO,
                     'configs/_base_/datasets/synthetic_coco_detection.py')
PANOPTIC_BASE = osp.join(REPO,
                         'configs/_base_/datasets/synthetic_coco_panoptic.py')
ADE_BASE = osp.join(REPO, 'configs/_base_/datasets/synthetic_ade.py')
REAL_COCO = osp.join(REPO,
                     'configs/faster_rcnn/faster-rcnn_r50_fpn-dysample-'
                     'lpg4_1x_coco.py')
REAL_ADE = osp.join(REPO, 'configs/segformer/segformer_mit-b1-dysample-'
                    'lpg4_8xb2-160k_ade20k-512x512.py')


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('pristine'))
    generate_synthetic_dataset(
        root, num_train=4, num_val=2, img_size=64, seed=1,
        tasks=('coco', 'panoptic', 'ade'))
    return root


@pytest.fixture
def data(pristine, tmp_path):
    """A copy each test may break."""
    root = str(tmp_path / 'synthetic')
    shutil.copytree(pristine, root)
    return root


def build(dataset_cfg, scope):
    pytest.importorskip(scope)
    # a scope only for this build: a global default scope would leak into
    # every later test of the session
    with DefaultScope.overwrite_default_scope(scope):
        return DATASETS.build(dataset_cfg)


def coco_cfg(data, base=COCO_BASE, split='train'):
    cfg = Config.fromfile(base)[f'{split}_dataloader'].dataset
    cfg.data_root = osp.join(data, 'coco') + '/'
    return cfg


def ade_cfg(data, split='train'):
    cfg = Config.fromfile(ADE_BASE)[f'{split}_dataloader'].dataset
    cfg.data_root = osp.join(data, 'ade') + '/'
    return cfg


def instances_json(data, split='train2017'):
    return osp.join(data, 'coco', 'annotations', f'instances_{split}.json')


# ----------------------------------------------------------------------------
# The configs use it
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('base', [COCO_BASE, PANOPTIC_BASE, ADE_BASE])
def test_builtin_data_configs_check_their_datasets(base):
    cfg = Config.fromfile(base)
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.type == 'CheckedDataset'


@pytest.mark.parametrize('base,scope,host_type', [
    (COCO_BASE, 'mmdet', 'CocoDataset'),
    (PANOPTIC_BASE, 'mmdet', 'CocoPanopticDataset'),
    (ADE_BASE, 'mmseg', 'BaseSegDataset'),
])
def test_good_data_builds_the_host_dataset(data, base, scope, host_type):
    cfg = ade_cfg(data) if scope == 'mmseg' else coco_cfg(data, base)
    dataset = build(cfg, scope)
    assert type(dataset).__name__ == host_type
    assert len(dataset) == 4
    dataset[0]  # the whole pipeline runs, label check included


# ----------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------


def test_missing_image_is_named_at_build(data):
    victim = sorted(os.listdir(osp.join(data, 'coco', 'train2017')))[-1]
    os.remove(osp.join(data, 'coco', 'train2017', victim))
    with pytest.raises(FileNotFoundError,
                       match=rf'1 of the 4 files .*{victim}'):
        build(coco_cfg(data), 'mmdet')


def test_missing_panoptic_png_is_named_at_build(data):
    png_dir = osp.join(data, 'coco', 'annotations', 'panoptic_train2017')
    victim = sorted(os.listdir(png_dir))[0]
    os.remove(osp.join(png_dir, victim))
    with pytest.raises(FileNotFoundError, match=rf'seg_map_path=.*{victim}'):
        build(coco_cfg(data, PANOPTIC_BASE), 'mmdet')


@pytest.mark.parametrize('keep', [0.5, 0.99])
def test_truncated_annotation_json_is_named(data, keep):
    path = instances_json(data)
    text = open(path).read()
    with open(path, 'w') as f:
        f.write(text[:int(len(text) * keep)])
    with pytest.raises(ValueError,
                       match=r'instances_train2017\.json.*JSONDecodeError'):
        build(coco_cfg(data), 'mmdet')


def test_malformed_annotation_json_is_named(data):
    path = instances_json(data)
    content = json.load(open(path))
    del content['images'][1]['file_name']
    json.dump(content, open(path, 'w'))
    with pytest.raises(ValueError,
                       match=r'instances_train2017\.json.*KeyError.*'
                       'file_name'):
        build(coco_cfg(data), 'mmdet')


def test_empty_coco_dataset_is_refused(data):
    path = instances_json(data)
    content = json.load(open(path))
    content['annotations'] = []
    json.dump(content, open(path, 'w'))
    with pytest.raises(ValueError,
                       match=r'no samples.*instances_train2017.*'
                       r'filter_empty_gt'):
        build(coco_cfg(data), 'mmdet')


def test_empty_segmentation_dataset_is_refused(data):
    shutil.rmtree(osp.join(data, 'ade', 'images', 'training'))
    os.makedirs(osp.join(data, 'ade', 'images', 'training'))
    with pytest.raises(ValueError, match=r'BaseSegDataset has no samples'):
        build(ade_cfg(data), 'mmseg')


def test_missing_label_png_is_named_at_build(data):
    ann_dir = osp.join(data, 'ade', 'annotations', 'training')
    victim = sorted(os.listdir(ann_dir))[2]
    os.remove(osp.join(ann_dir, victim))
    with pytest.raises(FileNotFoundError, match=rf'seg_map_path=.*{victim}'):
        build(ade_cfg(data), 'mmseg')


def _poison_label(data, value):
    ann_dir = osp.join(data, 'ade', 'annotations', 'training')
    victim = sorted(os.listdir(ann_dir))[0]
    path = osp.join(ann_dir, victim)
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[:3, :3] = value
    cv2.imwrite(path, label)
    return victim


@pytest.mark.parametrize('raw', [9, 200])
def test_label_out_of_class_range_is_named_at_first_read(data, raw):
    """7 classes, reduce_zero_label: raw 1..7 become 0..6, raw 0 and 255
    the ignore index; raw 9 becomes 8."""
    victim = _poison_label(data, raw)
    dataset = build(ade_cfg(data), 'mmseg')  # no PNG decoded at build
    index = [osp.basename(dataset.get_data_info(i)['seg_map_path'])
             for i in range(len(dataset))].index(victim)
    dataset.prepare_data(index ^ 1)  # other samples are fine
    with pytest.raises(ValueError,
                       match=rf'{victim}.*\[{raw - 1}\].*7 classes.*255'):
        dataset.prepare_data(index)


@pytest.mark.parametrize('raw', [0, 255])
def test_ignored_labels_pass(data, raw):
    victim = _poison_label(data, raw)
    dataset = build(ade_cfg(data), 'mmseg')
    for i in range(len(dataset)):
        dataset.prepare_data(i)
    assert victim


def test_label_check_sits_after_load_annotations_once(data):
    dataset = build(ade_cfg(data, 'val'), 'mmseg')
    names = [type(t).__name__ for t in dataset.pipeline.transforms]
    assert names == [
        'LoadImageFromFile', 'Resize', 'LoadAnnotations', 'CheckSegLabels',
        'PackSegInputs'
    ]
    check = dataset.pipeline.transforms[3]
    assert (check.num_classes, check.ignore_index) == (7, 255)


# ----------------------------------------------------------------------------
# Real-data configs, with the override docs/user_guides/datasets.md gives
# ----------------------------------------------------------------------------


def _real(path, data_root, dataset_type, scope):
    pytest.importorskip(scope)
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({
        'train_dataloader.dataset.type': 'CheckedDataset',
        'train_dataloader.dataset.dataset_type': dataset_type,
        'train_dataloader.dataset.data_root': data_root,
    })
    return cfg.train_dataloader.dataset


def test_real_coco_recipe_checks(data):
    cfg = _real(REAL_COCO, osp.join(data, 'coco') + '/', 'CocoDataset',
                'mmdet')
    # The stock COCO config reads instances_train2017.json from train2017/.
    cfg.metainfo = dict(classes=('circle', 'rectangle', 'triangle', 'star'))
    assert len(build(cfg, 'mmdet')) == 4
    text = open(instances_json(data)).read()
    open(instances_json(data), 'w').write(text[:100])
    with pytest.raises(ValueError, match='instances_train2017.json'):
        build(cfg, 'mmdet')


def test_real_ade20k_recipe_checks(data):
    """The synthetic ADE layout is ADEChallengeData2016's; its labels
    (1..7) are valid ADE20K labels, so poison one beyond the 150."""
    cfg = _real(REAL_ADE, osp.join(data, 'ade'), 'ADE20KDataset', 'mmseg')
    assert cfg.data_prefix.img_path == 'images/training'
    dataset = build(cfg, 'mmseg')
    assert type(dataset).__name__ == 'ADE20KDataset'
    victim = _poison_label(data, 200)
    index = [osp.basename(dataset.get_data_info(i)['seg_map_path'])
             for i in range(len(dataset))].index(victim)
    with pytest.raises(ValueError, match=rf'{victim}.*\[199\].*150 classes'):
        dataset.prepare_data(index)


# ----------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match='dataset_type'):
        CheckedDataset(dataset_type=None)
    with pytest.raises(ValueError, match='num_classes'):
        CheckSegLabels(num_classes=0)
    with pytest.raises(TypeError, match='ignore_index'):
        CheckSegLabels(num_classes=3, ignore_index=None)


def test_unknown_dataset_type_keeps_the_registry_error():
    pytest.importorskip('mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'), pytest.raises(
            KeyError, match='NoSuchDataset is not in'):
        CheckedDataset(dataset_type='NoSuchDataset')


def test_label_check_ignores_nothing_else():
    check = CheckSegLabels(num_classes=2, ignore_index=255)
    ok = {'gt_seg_map': np.array([[0, 1, 255]], np.uint8)}
    assert check(ok) is ok
    with pytest.raises(ValueError, match=r'\[2, 254\]'):
        check({'gt_seg_map': np.array([[2, 254, 1]], np.uint8)})
