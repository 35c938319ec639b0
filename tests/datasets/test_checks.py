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
import re
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope

from mmdysample.datasets import (CheckedDataset, CheckSegLabels,
                                 generate_synthetic_dataset)
from mmdysample.datasets.depth_checks import CheckDepthMap

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


# ----------------------------------------------------------------------------
# Depth data in the NYU Depth V2 layout
# ----------------------------------------------------------------------------

NYU_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
]
NYU_LAYOUT = (r'images/<split>/\*\.jpg and <data_root>/annotations/'
              r'<split>/\*\.png of the same stem')


@pytest.fixture(scope='module')
def nyu_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('nyu_pristine'))
    generate_synthetic_dataset(
        root, num_train=2, num_val=3, img_size=(48, 64), seed=1,
        scenes='depth')
    return root


@pytest.fixture
def nyu(nyu_pristine, tmp_path):
    """A copy of the depth data each test may break: its ``nyu`` root."""
    root = str(tmp_path / 'synthetic_depth')
    shutil.copytree(nyu_pristine, root)
    return osp.join(root, 'nyu')


def nyu_cfg(root, split='test', pipeline=NYU_PIPELINE, **prefix):
    prefix = prefix or dict(img_path=f'images/{split}',
                            depth_map_path=f'annotations/{split}')
    return dict(type='CheckedDataset', dataset_type='NYUDataset',
                data_root=root, data_prefix=prefix, pipeline=pipeline)


def test_good_nyu_data_builds_with_the_depth_check(nyu):
    dataset = build(nyu_cfg(nyu), 'mmseg')
    assert type(dataset).__name__ == 'NYUDataset' and len(dataset) == 3
    names = [type(t).__name__ for t in dataset.pipeline.transforms]
    assert names == [
        'LoadImageFromFile', 'LoadDepthAnnotation', 'CheckDepthMap'
    ]
    assert dataset[0]['gt_depth_map'].max() <= 10


@pytest.mark.parametrize('folder', ['images/val', 'images/test/'])
def test_nyu_missing_image_folder_names_the_layout(nyu, folder):
    if folder.endswith('/'):  # a data_root without the nyu folder
        nyu = osp.dirname(nyu)
    with pytest.raises(FileNotFoundError) as err:
        build(nyu_cfg(nyu, img_path=folder,
                      depth_map_path='annotations/test'), 'mmseg')
    message = str(err.value)
    assert re.search(NYU_LAYOUT, message), message
    assert f"image folder '{osp.join(nyu, folder.rstrip('/'))}" in message
    # what was found: the folder above that exists
    assert ('holds test/, train/' in message if folder == 'images/val' else
            'holds meta.json, nyu/' in message)


def test_nyu_missing_depth_folder_names_the_layout(nyu):
    shutil.rmtree(osp.join(nyu, 'annotations', 'test'))
    with pytest.raises(FileNotFoundError,
                       match=NYU_LAYOUT + r".*depth map folder '.*"
                       r"annotations/test' does not exist.*holds train/"):
        build(nyu_cfg(nyu), 'mmseg')


def test_nyu_folder_without_images_says_what_it_holds(nyu):
    with pytest.raises(ValueError,
                       match=NYU_LAYOUT + r".*no \*\.jpg file under '.*"
                       r"annotations/test'; it holds 3 '\.png' files"):
        build(nyu_cfg(nyu, img_path='annotations/test',
                      depth_map_path='annotations/test'), 'mmseg')


def test_nyu_images_without_depth_maps_are_named(nyu):
    ann_dir = osp.join(nyu, 'annotations', 'test')
    victim = sorted(os.listdir(ann_dir))[1]
    os.remove(osp.join(ann_dir, victim))
    with pytest.raises(FileNotFoundError,
                       match=NYU_LAYOUT + r'.*1 of the 3 images .* have no '
                       rf'depth map: .*annotations/test/{victim}'):
        build(nyu_cfg(nyu), 'mmseg')


def test_nyu_image_name_without_digit_is_named(nyu):
    """mmseg itself raises a bare StopIteration for it."""
    for folder, suffix in (('images', '.jpg'), ('annotations', '.png')):
        path = osp.join(nyu, folder, 'test')
        os.rename(osp.join(path, sorted(os.listdir(path))[0]),
                  osp.join(path, 'kitchen' + suffix))
    with pytest.raises(ValueError,
                       match=r'1 of the 3 image names have no digit.*'
                       r'category_id.*kitchen\.jpg'):
        build(nyu_cfg(nyu), 'mmseg')


def test_nyu_prefix_without_depth_maps_is_refused_when_loaded(nyu):
    with pytest.raises(ValueError,
                       match='data_prefix has no depth_map_path, but the '
                       'pipeline loads depth maps'):
        build(nyu_cfg(nyu, img_path='images/test'), 'mmseg')
    images_only = nyu_cfg(nyu, pipeline=NYU_PIPELINE[:1],
                          img_path='images/test')
    assert len(build(images_only, 'mmseg')) == 3


def test_missing_depth_map_is_named_by_the_file_check(nyu):
    """``depth_map_path`` is one of the file keys, whatever the dataset."""
    pytest.importorskip('mmseg')
    from mmseg.datasets import NYUDataset

    from mmdysample.datasets import check_files_exist
    dataset = NYUDataset(
        data_root=nyu,
        data_prefix=dict(img_path='images/train',
                         depth_map_path='annotations/train'))
    check_files_exist(dataset)
    victim = sorted(os.listdir(osp.join(nyu, 'annotations', 'train')))[0]
    os.remove(osp.join(nyu, 'annotations', 'train', victim))
    with pytest.raises(FileNotFoundError,
                       match=rf'1 of the 4 files .*depth_map_path=.*{victim}'):
        check_files_exist(dataset)


def test_millimetres_read_as_metres_are_named_at_first_read(nyu):
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadDepthAnnotation')]  # mmseg's default: x 1.0
    dataset = build(nyu_cfg(nyu, pipeline=pipeline), 'mmseg')
    with pytest.raises(ValueError,
                       match=r"depth map '.*\.png' reaches \d+\.0 beyond "
                       r'max_depth=1000\.0.*depth_rescale_factor=1e-3'):
        dataset.prepare_data(0)


def test_depth_check_refuses_a_map_without_valid_pixel():
    check = CheckDepthMap(max_depth=10)
    ok = {'gt_depth_map': np.array([[0.0, 9.5]], np.float32)}
    assert check(ok) is ok
    with pytest.raises(ValueError, match=r"'z\.png' has no valid pixel"):
        check({'gt_depth_map': np.zeros((2, 2)), 'depth_map_path': 'z.png'})
    with pytest.raises(ValueError, match='max_depth=10.0'):
        check({'gt_depth_map': np.array([[11.0]])})
    for bad in (0, -1.0, True, '10'):
        with pytest.raises(ValueError, match='max_depth'):
            CheckDepthMap(max_depth=bad)
