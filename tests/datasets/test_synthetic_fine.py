# Copyright (c) mmdysample contributors. All rights reserved.
"""The kinds of built-in scene: the default ones stay exactly as they were,
the fine ones (``scenes='fine'``) are written in every format, load in the
hosts and have the thin parts they are for."""
import filecmp
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmdysample.datasets import synthetic
from mmdysample.datasets.synthetic import (FINE_ADE_METAINFO,
                                           FINE_COCO_METAINFO,
                                           FINE_PANOPTIC_CLASSES,
                                           FINE_PANOPTIC_METAINFO,
                                           FINE_SEG_CLASSES,
                                           FINE_STUFF_CLASSES,
                                           FINE_THING_CLASSES, SCENE_KINDS,
                                           THING_CLASSES,
                                           generate_synthetic_dataset,
                                           render_fine_scene, render_scene)
from mmdysample.datasets.synthetic.stats import label_map_stats

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'misc', 'generate_synthetic_data.py')
SPLITS = (('train', 0, 'train2017', 'training'),
          ('val', 1, 'val2017', 'validation'))

# The default scenes of ``generate_synthetic_dataset(out, num_train=3,
# num_val=2, img_size=(64, 80), seed=3)``, recorded with the generator as it
# was before the fine scenes were added (commit 179df16): any change to the
# default data fails here. Codec-free, so that another OpenCV build cannot
# fail it: the JSON files byte for byte, the PNGs' decoded pixels, and the
# RGB arrays the JPEGs are encoded from.
DEFAULT_SMALL = dict(num_train=3, num_val=2, img_size=(64, 80), seed=3)
DEFAULT_JSON_SHA256 = {
    'coco/annotations/instances_train2017.json': 'a830d57d725a9c7e',
    'coco/annotations/instances_val2017.json': 'a4fdddfcaf6a7a53',
    'coco/annotations/panoptic_train2017.json': '4f127bf52a2d89d6',
    'coco/annotations/panoptic_val2017.json': 'c784eeaed72b5ce7',
}
DEFAULT_PNG_PIXELS_SHA256 = {
    'ade/annotations/training/ADE_train_00000001.png': 'e0e6d0f6b75a8f7e',
    'ade/annotations/training/ADE_train_00000002.png': '72d8a27fc0d4dd0a',
    'ade/annotations/training/ADE_train_00000003.png': '5b36b54f85119be8',
    'ade/annotations/validation/ADE_val_00000001.png': 'b754474c9a3dd556',
    'ade/annotations/validation/ADE_val_00000002.png': 'a16a980b6178789b',
    'coco/annotations/panoptic_train2017/000000000001.png':
    '193b0c264bf33479',
    'coco/annotations/panoptic_train2017/000000000002.png':
    'e74ac2405dda15f6',
    'coco/annotations/panoptic_train2017/000000000003.png':
    'f38521073334e8a7',
    'coco/annotations/panoptic_val2017/000001000001.png': 'b4e90ff19ecebd7b',
    'coco/annotations/panoptic_val2017/000001000002.png': '52fa8de4bf8aa1c1',
}
#: (split code, index) -> the rendered RGB image
DEFAULT_IMAGE_SHA256 = {
    (0, 0): '283b8cf15ba3ea05',
    (0, 1): '920d53201c8c5b1c',
    (0, 2): 'a5e6e272618f8746',
    (1, 0): '33ba820ab083fd27',
    (1, 1): '2702b9dd4d5583bf',
}

FINE_SMALL = dict(num_train=5, num_val=2, img_size=128, seed=1)


def _array_sha256(array):
    array = np.ascontiguousarray(array)
    header = str((array.shape, array.dtype.str)).encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()[:16]


def _load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _rgb2id(png_path):
    bgr = cv2.imread(png_path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


def _ade_labels(root):
    folders = [osp.join(root, 'ade', 'annotations', ade_dir)
               for *_, ade_dir in SPLITS]
    return [
        cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
        for folder in folders for name in sorted(os.listdir(folder))
    ]


@pytest.fixture(scope='module')
def fine(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('fine'))
    result = generate_synthetic_dataset(out, scenes='fine', **FINE_SMALL)
    assert not result['skipped'] and result['params']['scenes'] == 'fine'
    return out


@pytest.fixture(scope='module')
def default(tmp_path_factory):
    """Default scenes of the fine fixture's size, to compare with."""
    out = str(tmp_path_factory.mktemp('default'))
    generate_synthetic_dataset(out, **FINE_SMALL)
    return out


# ---------------------------------------------------------------------------
# The default scenes did not change
# ---------------------------------------------------------------------------


def test_default_scenes_are_unchanged(tmp_path):
    out = str(tmp_path / 'default')
    generate_synthetic_dataset(out, **DEFAULT_SMALL)
    for rel, digest in DEFAULT_JSON_SHA256.items():
        with open(osp.join(out, rel), 'rb') as f:
            assert hashlib.sha256(f.read()).hexdigest()[:16] == digest, rel
    for rel, digest in DEFAULT_PNG_PIXELS_SHA256.items():
        pixels = cv2.imread(osp.join(out, rel), cv2.IMREAD_UNCHANGED)
        assert _array_sha256(pixels) == digest, rel
    height, width = DEFAULT_SMALL['img_size']
    for (code, index), digest in DEFAULT_IMAGE_SHA256.items():
        rng = np.random.default_rng([DEFAULT_SMALL['seed'], code, index])
        image = render_scene(rng, height, width).image
        assert _array_sha256(image) == digest, (code, index)
        # and the JPEG written is that image at quality 95, whatever the
        # JPEG library's version
        split = 'training' if code == 0 else 'validation'
        prefix = 'ADE_train' if code == 0 else 'ADE_val'
        ok, encoded = cv2.imencode('.jpg', image[..., ::-1].copy(),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(osp.join(out, 'ade', 'images', split,
                           f'{prefix}_{index + 1:08d}.jpg'), 'rb') as f:
            assert ok and f.read() == encoded.tobytes()
    assert _load(osp.join(out, 'meta.json'))['params'] == dict(
        version=2, num_train=3, num_val=2, img_size=[64, 80], seed=3,
        scenes='default', tasks=['coco', 'panoptic', 'ade'])


def test_scene_kinds():
    assert list(SCENE_KINDS) == ['default', 'fine']
    assert SCENE_KINDS['default'].render is render_scene
    assert SCENE_KINDS['fine'].render is render_fine_scene
    assert set(synthetic.DEFAULT_OUT_DIRS) == set(SCENE_KINDS)
    fine = SCENE_KINDS['fine'].classes
    assert fine.metainfo == dict(coco=FINE_COCO_METAINFO,
                                 panoptic=FINE_PANOPTIC_METAINFO,
                                 ade=FINE_ADE_METAINFO)
    # the fine things draw the default shapes by their default index
    assert FINE_THING_CLASSES[:len(THING_CLASSES)] == THING_CLASSES
    assert FINE_SEG_CLASSES == FINE_STUFF_CLASSES + FINE_THING_CLASSES
    assert FINE_PANOPTIC_CLASSES == FINE_THING_CLASSES + FINE_STUFF_CLASSES
    assert len(set(FINE_SEG_CLASSES)) == len(FINE_SEG_CLASSES) == 12
    for metainfo in fine.metainfo.values():
        assert len(metainfo['palette']) == len(metainfo['classes'])
    assert fine.thing_cat_ids == (1, 2, 3, 4, 5, 6)
    assert fine.stuff_cat_ids == (7, 8, 9, 10, 11, 12)


@pytest.mark.parametrize('scenes', ['coarse', None, 3, 'Default'])
def test_unknown_kind_lists_the_kinds(tmp_path, scenes):
    with pytest.raises(ValueError, match='scenes') as err:
        generate_synthetic_dataset(str(tmp_path / 'x'), 1, 1, 64,
                                   scenes=scenes)
    assert "('default', 'fine')" in str(err.value)
    assert not osp.exists(str(tmp_path / 'x'))


# ---------------------------------------------------------------------------
# The fine scenes: formats, determinism, meta.json
# ---------------------------------------------------------------------------


def test_fine_scene_is_deterministic_and_independent_of_count(
        fine, tmp_path):
    other = str(tmp_path / 'again')
    generate_synthetic_dataset(other, scenes='fine', **FINE_SMALL)
    match, mismatch, errors = filecmp.cmpfiles(
        fine, other, ['meta.json'] + [
            osp.join('coco', 'annotations', f'{kind}_{coco_dir}.json')
            for *_, coco_dir, _ in SPLITS
            for kind in ('instances', 'panoptic')
        ], shallow=False)
    assert not mismatch and not errors and len(match) == 5
    rng = np.random.default_rng([FINE_SMALL['seed'], 1, 1])
    scene = render_fine_scene(rng, 128, 128)
    label = cv2.imread(
        osp.join(fine, 'ade', 'annotations', 'validation',
                 'ADE_val_00000002.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(label, scene.semantic_map())
    assert scene.classes is SCENE_KINDS['fine'].classes


def test_fine_formats_agree(fine):
    from pycocotools import mask as mask_utils
    present = set()
    for split, _, coco_dir, ade_dir in SPLITS:
        ann_dir = osp.join(fine, 'coco', 'annotations')
        inst = _load(osp.join(ann_dir, f'instances_{coco_dir}.json'))
        pan = _load(osp.join(ann_dir, f'panoptic_{coco_dir}.json'))
        assert len(inst['images']) == FINE_SMALL[f'num_{split}']
        assert pan['images'] == inst['images']
        assert [c['name'] for c in inst['categories']] == list(
            FINE_THING_CLASSES)
        assert [(c['name'], c['isthing']) for c in pan['categories']] == [
            (name, int(name in FINE_THING_CLASSES))
            for name in FINE_PANOPTIC_CLASSES
        ]
        cats = {c['id']: c['name'] for c in pan['categories']}
        for img, pan_ann in zip(pan['images'], pan['annotations']):
            ids = _rgb2id(osp.join(ann_dir, f'panoptic_{coco_dir}',
                                   pan_ann['file_name']))
            stem = 'ADE_train' if split == 'train' else 'ADE_val'
            number = img['id'] - (0 if split == 'train' else
                                  synthetic.VAL_ID_OFFSET)
            label = cv2.imread(
                osp.join(fine, 'ade', 'annotations', ade_dir,
                         f'{stem}_{number:08d}.png'), cv2.IMREAD_UNCHANGED)
            assert label.min() >= 1 and label.max() <= len(FINE_SEG_CLASSES)
            present |= set(np.unique(label).tolist())
            # every pixel is in one segment; its class is the ADE label
            assert set(np.unique(ids)) == {
                s['id'] for s in pan_ann['segments_info']}
            for seg in pan_ann['segments_info']:
                value = FINE_SEG_CLASSES.index(cats[seg['category_id']]) + 1
                assert (label[ids == seg['id']] == value).all()
                assert seg['area'] == (ids == seg['id']).sum()
            things = [s for s in pan_ann['segments_info']
                      if cats[s['category_id']] in FINE_THING_CLASSES]
            anns = [a for a in inst['annotations']
                    if a['image_id'] == img['id']]
            assert len(anns) == len(things) > 0
            for ann, seg in zip(anns, things):
                assert ann['category_id'] == seg['category_id']
                # polygons rasterise back to exactly the visible pixels,
                # thin rings and crosses included
                rle = mask_utils.merge(
                    mask_utils.frPyObjects(ann['segmentation'],
                                           img['height'], img['width']))
                np.testing.assert_array_equal(
                    mask_utils.decode(rle).astype(bool), ids == seg['id'])
    # wires, fences, rings: every class of the kind is drawn
    assert present == set(range(1, len(FINE_SEG_CLASSES) + 1))


def test_meta_records_kind_and_other_kind_regenerates(tmp_path):
    out = str(tmp_path / 'data')
    args = dict(num_train=2, num_val=1, img_size=64, tasks=['ade'])
    generate_synthetic_dataset(out, **args)
    label = osp.join(out, 'ade', 'annotations', 'training',
                     'ADE_train_00000001.png')
    default_label = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    assert not generate_synthetic_dataset(out, scenes='fine',
                                          **args)['skipped']
    meta_path = osp.join(out, 'meta.json')
    assert _load(meta_path)['params']['scenes'] == 'fine'
    fine_label = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    assert fine_label.max() > len(synthetic.SEG_CLASSES)
    assert generate_synthetic_dataset(out, scenes='fine', **args)['skipped']
    assert not generate_synthetic_dataset(out, **args)['skipped']
    np.testing.assert_array_equal(
        cv2.imread(label, cv2.IMREAD_UNCHANGED), default_label)
    # an output written before there were kinds holds default scenes
    meta = _load(meta_path)
    del meta['params']['scenes']
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(meta, f)
    assert generate_synthetic_dataset(out, **args)['skipped']
    assert not generate_synthetic_dataset(out, scenes='fine',
                                          **args)['skipped']


def test_cli_scenes_and_default_out_dir(tmp_path):
    run = subprocess.run([
        sys.executable, TOOL, '--scenes', 'fine', '--num-train', '1',
        '--num-val', '1', '--img-size', '48', '--tasks', 'ade', '--quiet'
    ], capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert 'fine scenes' in run.stdout
    meta = _load(str(tmp_path / 'data' / 'synthetic_fine' / 'meta.json'))
    assert meta['params']['scenes'] == 'fine'
    bad = subprocess.run([sys.executable, TOOL, '--scenes', 'coarse'],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert bad.returncode == 2 and 'fine' in bad.stderr


# ---------------------------------------------------------------------------
# What the fine scenes are for: thin parts, a lower upsampling ceiling
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def both_stats(fine, default):
    return {
        name: label_map_stats(_ade_labels(root), len(kind.classes.stuff +
                                                     kind.classes.things),
                              boundary_iou=False)
        for name, root, kind in (('default', default, SCENE_KINDS['default']),
                                 ('fine', fine, SCENE_KINDS['fine']))
    }


def test_fine_scenes_have_thin_parts(both_stats):
    default, fine = both_stats['default'], both_stats['fine']
    # measured (fine / default, these 128 px images): 25.9 % / 9.4 % of the
    # pixels within 1 px of a boundary, 6.7 % / 0.05 % in regions narrower
    # than 4 px
    assert fine['boundary'][0]['fraction'] > 0.15
    assert fine['boundary'][0]['fraction'] > 2 * default['boundary'][0][
        'fraction']
    assert fine['thin'][0]['stride'] == 4
    assert fine['thin'][0]['pixels'] > 0.02 > 10 * default['thin'][0][
        'pixels']
    assert fine['classes_present'] == 12 and default['classes_present'] == 7


def test_fine_scenes_leave_room_to_the_upsampler(both_stats):
    oracle = {
        name: {(row['stride'], row['mode']): row['mIoU']
               for row in stats['oracle']}
        for name, stats in both_stats.items()
    }
    for name, scores in oracle.items():
        for stride in (4, 8):
            assert scores[stride, 'nearest'] < scores[stride, 'bilinear'] \
                <= 100, (name, stride)
    # measured (default / fine): stride 4, bilinear 96.6 / 75.6, nearest
    # 89.5 / 68.7
    assert oracle['default'][4, 'bilinear'] > 94
    assert oracle['fine'][4, 'bilinear'] < oracle['default'][4,
                                                           'bilinear'] - 10
    assert oracle['fine'][4, 'bilinear'] - oracle['fine'][4, 'nearest'] > 3


# ---------------------------------------------------------------------------
# Loading through the hosts (mmdet / mmseg)
# ---------------------------------------------------------------------------


def test_fine_loads_in_mmdet(fine):
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CocoDataset, CocoPanopticDataset
    from mmdet.datasets.transforms import (LoadAnnotations,
                                           LoadPanopticAnnotations)
    root = osp.join(fine, 'coco')
    inst = _load(osp.join(root, 'annotations', 'instances_train2017.json'))
    ds = CocoDataset(
        data_root=root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        metainfo=FINE_COCO_METAINFO,
        pipeline=[
            LoadImageFromFile(),
            LoadAnnotations(with_bbox=True, with_mask=True)
        ])
    assert len(ds) == FINE_SMALL['num_train']
    total = 0
    for i in range(len(ds)):
        sample = ds[i]
        anns = [a for a in inst['annotations']
                if a['image_id'] == sample['img_id']]
        masks = sample['gt_masks'].to_ndarray()
        np.testing.assert_array_equal(
            masks.reshape(len(anns), -1).sum(1), [a['area'] for a in anns])
        np.testing.assert_array_equal(sample['gt_bboxes_labels'],
                                      [a['category_id'] - 1 for a in anns])
        total += len(anns)
    assert total == len(inst['annotations'])

    pan = CocoPanopticDataset(
        data_root=root,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        metainfo=FINE_PANOPTIC_METAINFO,
        pipeline=[
            LoadImageFromFile(),
            LoadPanopticAnnotations(
                with_bbox=True, with_label=True, with_mask=True,
                with_seg=True)
        ])
    assert len(pan) == FINE_SMALL['num_val']
    for i in range(len(pan)):
        sample = pan[i]
        # every pixel is labelled (255 would be VOID)
        assert sample['gt_seg_map'].max() < len(FINE_PANOPTIC_CLASSES)
        assert len(sample['gt_masks']) == sum(
            s['is_thing'] for s in pan.get_data_info(i)['segments_info'])


def test_fine_loads_in_mmseg(fine):
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations
    ds = BaseSegDataset(
        data_root=osp.join(fine, 'ade'),
        data_prefix=dict(img_path='images/training',
                         seg_map_path='annotations/training'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        metainfo=FINE_ADE_METAINFO,
        pipeline=[LoadAnnotations()])
    assert len(ds) == FINE_SMALL['num_train']
    assert ds.metainfo['classes'] == FINE_SEG_CLASSES
    for i in range(len(ds)):
        sample = ds[i]
        raw = cv2.imread(sample['seg_map_path'], cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(sample['gt_seg_map'],
                                      raw.astype(np.int64) - 1)
        assert sample['gt_seg_map'].max() <= len(FINE_SEG_CLASSES) - 1
