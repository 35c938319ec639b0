# Copyright (c) mmdysample contributors. All rights reserved.
"""Tests of the synthetic dataset generator and of loading it in the hosts."""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmdysample.datasets import synthetic
from mmdysample.datasets.synthetic import (PANOPTIC_CLASSES, PANOPTIC_METAINFO,
                                           SEG_CLASSES, SEG_PALETTE,
                                           STUFF_CLASSES, THING_CLASSES,
                                           generate_synthetic_dataset, shapes)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL = dict(num_train=6, num_val=3, img_size=96, seed=3)
SPLITS = (('train', 'train2017', 'training'), ('val', 'val2017',
                                               'validation'))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """A small dataset with all tasks, generated once for the module."""
    out = str(tmp_path_factory.mktemp('synthetic'))
    result = generate_synthetic_dataset(out, **SMALL)
    assert not result['skipped']
    return out


def _load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _rgb2id(png_path):
    bgr = cv2.imread(png_path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


def _files(root):
    """All files under ``root`` relative to it, sorted."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            found.append(osp.relpath(osp.join(dirpath, name), root))
    return sorted(found)


# ---------------------------------------------------------------------------
# Generator only (numpy / cv2 / pycocotools)
# ---------------------------------------------------------------------------


def test_module_does_not_import_frameworks():
    # loaded from its files as tools/misc/generate_synthetic_data.py does
    tool = osp.join(REPO_ROOT, 'tools', 'misc', 'generate_synthetic_data.py')
    code = ('import runpy, sys\n'
            f'runpy.run_path({tool!r})["load_generator"]().render_scene\n'
            'heavy = [m for m in ("torch", "mmdet", "mmseg", "mmcv", '
            '"mmengine") if m in sys.modules]\n'
            'print(heavy)\n')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'


def test_layout_and_counts(dataset):
    files = _files(dataset)
    assert 'meta.json' in files
    for split, coco_dir, ade_dir in SPLITS:
        num = SMALL[f'num_{split}']
        imgs = [f for f in files if f.startswith(f'coco/{coco_dir}/')]
        pngs = [
            f for f in files
            if f.startswith(f'coco/annotations/panoptic_{coco_dir}/')
        ]
        ade_imgs = [
            f for f in files if f.startswith(f'ade/images/{ade_dir}/')
        ]
        ade_anns = [
            f for f in files if f.startswith(f'ade/annotations/{ade_dir}/')
        ]
        assert len(imgs) == len(pngs) == len(ade_imgs) == len(ade_anns) == num
        assert all(f.endswith('.jpg') for f in imgs + ade_imgs)
        assert all(f.endswith('.png') for f in pngs + ade_anns)
        for name in ('instances', 'panoptic'):
            assert f'coco/annotations/{name}_{coco_dir}.json' in files
    meta = _load(osp.join(dataset, 'meta.json'))
    assert meta['params']['img_size'] == [96, 96]
    assert meta['params']['version'] == synthetic.GENERATOR_VERSION


def test_class_tuples_and_palettes():
    assert SEG_CLASSES == STUFF_CLASSES + THING_CLASSES
    assert PANOPTIC_CLASSES == THING_CLASSES + STUFF_CLASSES
    assert len(set(SEG_CLASSES)) == len(SEG_CLASSES)
    assert len(synthetic.THING_PALETTE) == len(THING_CLASSES)
    assert len(SEG_PALETTE) == len(SEG_CLASSES)
    assert len(PANOPTIC_METAINFO['palette']) == len(PANOPTIC_CLASSES)
    for colour in SEG_PALETTE:
        assert len(colour) == 3 and all(0 <= c <= 255 for c in colour)


def test_coco_instances(dataset):
    from pycocotools.coco import COCO
    for split, coco_dir, _ in SPLITS:
        coco = COCO(
            osp.join(dataset, 'coco', 'annotations',
                     f'instances_{coco_dir}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())
                ] == list(THING_CLASSES)
        assert coco.getCatIds() == [1, 2, 3, 4]
        img_ids = coco.getImgIds()
        assert len(img_ids) == SMALL[f'num_{split}']
        for img_id in img_ids:
            info = coco.loadImgs(img_id)[0]
            img = cv2.imread(
                osp.join(dataset, 'coco', coco_dir, info['file_name']))
            assert img.shape == (info['height'], info['width'], 3) == (96,
                                                                       96, 3)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            assert anns, 'every image has at least one instance'
            covered = np.zeros((96, 96), bool)
            for ann in anns:
                assert ann['category_id'] in (1, 2, 3, 4)
                assert ann['iscrowd'] == 0
                x, y, w, h = ann['bbox']
                assert w > 0 and h > 0
                assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96
                assert all(len(p) >= 6 for p in ann['segmentation'])
                mask = coco.annToMask(ann).astype(bool)
                ys, xs = np.nonzero(mask)
                # The generator boxes the visible mask exactly (integers).
                assert [x, y, w, h] == [
                    xs.min(), ys.min(), xs.max() - xs.min() + 1,
                    ys.max() - ys.min() + 1
                ]
                assert all(isinstance(v, int) for v in ann['bbox'])
                assert ann['area'] >= shapes._MIN_VISIBLE_AREA
                # polygons rasterise back to the exact visible pixels
                assert ann['area'] == mask.sum()
                assert not (covered & mask).any(), 'visible parts overlap'
                covered |= mask


def test_panoptic(dataset):
    for split, coco_dir, _ in SPLITS:
        ann_dir = osp.join(dataset, 'coco', 'annotations')
        pan = _load(osp.join(ann_dir, f'panoptic_{coco_dir}.json'))
        inst = _load(osp.join(ann_dir, f'instances_{coco_dir}.json'))
        assert pan['images'] == inst['images']
        cats = {c['id']: c for c in pan['categories']}
        assert [c['name'] for c in pan['categories']] == list(
            PANOPTIC_CLASSES)
        assert [c['isthing'] for c in pan['categories']
                ] == [1] * len(THING_CLASSES) + [0] * len(STUFF_CLASSES)
        inst_by_img = {}
        for ann in inst['annotations']:
            inst_by_img.setdefault(ann['image_id'], []).append(ann)
        assert [a['image_id'] for a in pan['annotations']
                ] == [i['id'] for i in pan['images']]
        seen_ids = set()
        for ann, img in zip(pan['annotations'], pan['images']):
            assert ann['file_name'] == img['file_name'].replace('.jpg', '.png')
            ids = _rgb2id(osp.join(ann_dir, f'panoptic_{coco_dir}',
                                   ann['file_name']))
            segs = {s['id']: s for s in ann['segments_info']}
            assert len(segs) == len(ann['segments_info'])
            assert 0 not in segs
            assert set(np.unique(ids)) == set(segs), \
                'every pixel belongs to a listed segment and vice versa'
            assert not seen_ids & set(segs), 'segment ids repeat'
            seen_ids |= set(segs)
            for seg_id, seg in segs.items():
                mask = ids == seg_id
                assert seg['area'] == mask.sum()
                ys, xs = np.nonzero(mask)
                assert seg['bbox'] == [
                    xs.min(), ys.min(), xs.max() - xs.min() + 1,
                    ys.max() - ys.min() + 1
                ]
                assert seg['category_id'] in cats
                assert seg['iscrowd'] == 0
            things = [
                s for s in ann['segments_info']
                if cats[s['category_id']]['isthing']
            ]
            instances = inst_by_img.get(ann['image_id'], [])
            assert len(things) == len(instances)
            # same visible masks, same classes, same order
            for seg, ins in zip(things, instances):
                assert seg['category_id'] == ins['category_id']
                assert seg['bbox'] == ins['bbox']
                assert seg['area'] == ins['area']


def test_ade_labels_match_panoptic(dataset):
    for split, coco_dir, ade_dir in SPLITS:
        ann_dir = osp.join(dataset, 'coco', 'annotations')
        pan = _load(osp.join(ann_dir, f'panoptic_{coco_dir}.json'))
        cat_names = {c['id']: c['name'] for c in pan['categories']}
        for index, ann in enumerate(pan['annotations']):
            stem = f'ADE_{split}_{index + 1:08d}'
            label = cv2.imread(
                osp.join(dataset, 'ade', 'annotations', ade_dir,
                         f'{stem}.png'), cv2.IMREAD_UNCHANGED)
            assert label.dtype == np.uint8 and label.shape == (96, 96)
            assert label.min() >= 0 and label.max() <= len(SEG_CLASSES)
            ids = _rgb2id(osp.join(ann_dir, f'panoptic_{coco_dir}',
                                   ann['file_name']))
            expected = np.zeros_like(label)
            for seg in ann['segments_info']:
                name = cat_names[seg['category_id']]
                expected[ids == seg['id']] = SEG_CLASSES.index(name) + 1
            np.testing.assert_array_equal(label, expected)
            # ADE and COCO images show the same scene
            ade_img = cv2.imread(
                osp.join(dataset, 'ade', 'images', ade_dir, f'{stem}.jpg'))
            coco_img = cv2.imread(
                osp.join(dataset, 'coco', coco_dir,
                         ann['file_name'].replace('.png', '.jpg')))
            np.testing.assert_array_equal(ade_img, coco_img)


def test_background_is_textured(dataset):
    img = cv2.imread(osp.join(dataset, 'coco', 'train2017',
                              '000000000001.jpg'))
    label = cv2.imread(
        osp.join(dataset, 'ade', 'annotations', 'training',
                 'ADE_train_00000001.png'), cv2.IMREAD_UNCHANGED)
    sky = img[label == SEG_CLASSES.index('sky') + 1].astype(float)
    ground = img[label == SEG_CLASSES.index('ground') + 1].astype(float)
    assert sky.std(axis=0).max() > 3 and ground.std(axis=0).max() > 3


def test_determinism(dataset, tmp_path):
    same = str(tmp_path / 'same')
    other = str(tmp_path / 'other')
    generate_synthetic_dataset(same, **SMALL)
    generate_synthetic_dataset(other, **dict(SMALL, seed=SMALL['seed'] + 1))
    files = _files(dataset)
    assert files == _files(same)
    match, mismatch, errors = filecmp.cmpfiles(
        dataset, same, files, shallow=False)
    assert mismatch == [] and errors == []
    for rel in ('coco/annotations/instances_train2017.json',
                'coco/annotations/panoptic_val2017.json',
                'ade/annotations/training/ADE_train_00000001.png',
                'coco/train2017/000000000002.jpg'):
        assert not filecmp.cmp(
            osp.join(dataset, rel), osp.join(other, rel), shallow=False)


def test_scene_independent_of_count_and_split(tmp_path):
    few = str(tmp_path / 'few')
    many = str(tmp_path / 'many')
    generate_synthetic_dataset(few, 2, 1, 64, tasks=('ade', ))
    generate_synthetic_dataset(many, 4, 2, 64, tasks=('ade', ))
    rel = 'ade/annotations/training/ADE_train_00000002.png'
    assert filecmp.cmp(osp.join(few, rel), osp.join(many, rel), shallow=False)
    val = 'ade/annotations/validation/ADE_val_00000001.png'
    train = 'ade/annotations/training/ADE_train_00000001.png'
    assert not filecmp.cmp(
        osp.join(few, val), osp.join(few, train), shallow=False)


def test_non_square_and_task_subset(tmp_path):
    out = str(tmp_path / 'rect')
    result = generate_synthetic_dataset(
        out, 2, 1, img_size=(64, 112), tasks=['coco'])
    assert result['params']['img_size'] == [64, 112]
    assert not osp.exists(osp.join(out, 'ade'))
    assert not osp.exists(
        osp.join(out, 'coco', 'annotations', 'panoptic_train2017.json'))
    inst = _load(
        osp.join(out, 'coco', 'annotations', 'instances_train2017.json'))
    for info in inst['images']:
        assert (info['height'], info['width']) == (64, 112)
        img = cv2.imread(osp.join(out, 'coco', 'train2017',
                                  info['file_name']))
        assert img.shape == (64, 112, 3)
    for ann in inst['annotations']:
        x, y, w, h = ann['bbox']
        assert x + w <= 112 and y + h <= 64


def test_idempotent_and_force(tmp_path):
    out = str(tmp_path / 'idem')
    first = generate_synthetic_dataset(out, 3, 2, 64)
    assert not first['skipped']
    label = osp.join(out, 'ade', 'annotations', 'training',
                     'ADE_train_00000001.png')
    stamp = os.stat(label).st_mtime_ns
    os.utime(label, ns=(stamp - 10**9, stamp - 10**9))
    stamp = os.stat(label).st_mtime_ns

    second = generate_synthetic_dataset(out, 3, 2, 64)
    assert second['skipped']
    assert second['counts'] == first['counts']
    assert os.stat(label).st_mtime_ns == stamp
    # a subset of the generated tasks is also up to date
    assert generate_synthetic_dataset(out, 3, 2, 64, tasks=['ade'])['skipped']

    forced = generate_synthetic_dataset(out, 3, 2, 64, force=True)
    assert not forced['skipped']
    assert os.stat(label).st_mtime_ns != stamp

    # other parameters regenerate and remove stale files
    smaller = generate_synthetic_dataset(out, 2, 2, 64)
    assert not smaller['skipped']
    assert len(os.listdir(osp.join(out, 'coco', 'train2017'))) == 2
    assert len(os.listdir(osp.join(out, 'ade', 'images', 'training'))) == 2
    assert _load(osp.join(out, 'meta.json'))['params']['num_train'] == 2

    # a missing output invalidates the cache
    os.remove(
        osp.join(out, 'coco', 'annotations', 'instances_val2017.json'))
    assert not generate_synthetic_dataset(out, 2, 2, 64)['skipped']


def test_refuses_foreign_directory(tmp_path):
    out = tmp_path / 'foreign'
    (out / 'coco' / 'train2017').mkdir(parents=True)
    (out / 'coco' / 'train2017' / 'precious.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='meta.json'):
        generate_synthetic_dataset(str(out), 2, 1, 64)
    assert (out / 'coco' / 'train2017' / 'precious.jpg').exists()
    generate_synthetic_dataset(str(out), 2, 1, 64, force=True)
    assert not (out / 'coco' / 'train2017' / 'precious.jpg').exists()


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train=0), 'num_train'),
    (dict(num_train=-3), 'num_train'),
    (dict(num_train=2.5), 'num_train'),
    (dict(num_train=True), 'num_train'),
    (dict(num_val=0), 'num_val'),
    (dict(img_size=8), 'img_size'),
    (dict(img_size=(64, )), 'img_size'),
    (dict(img_size='96'), 'img_size'),
    (dict(seed=-1), 'seed'),
    (dict(seed=1.0), 'seed'),
    (dict(tasks=('coco', 'voc')), 'tasks'),
    (dict(tasks=()), 'tasks'),
    (dict(force='yes'), 'force'),
    (dict(out_dir=''), 'out_dir'),
])
def test_bad_arguments(tmp_path, kwargs, name):
    kwargs.setdefault('out_dir', str(tmp_path / 'bad'))
    with pytest.raises(ValueError, match=name):
        generate_synthetic_dataset(**kwargs)
    assert not osp.exists(str(tmp_path / 'bad'))


def test_unknown_task_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError) as err:
        generate_synthetic_dataset(str(tmp_path), tasks=['voc'])
    for task in synthetic.VALID_TASKS:
        assert task in str(err.value)


def test_cli(tmp_path):
    out = str(tmp_path / 'cli')
    script = osp.join(REPO_ROOT, 'tools', 'misc', 'generate_synthetic_data.py')
    args = [
        '--out', out, '--num-train', '2', '--num-val', '1', '--img-size',
        '64', '--seed', '5', '--tasks', 'coco', 'ade'
    ]
    run = subprocess.run([sys.executable, script] + args,
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert 'generated' in run.stdout and out in run.stdout
    assert 'train: 2 images' in run.stdout
    meta = _load(osp.join(out, 'meta.json'))
    assert meta['params']['tasks'] == ['coco', 'ade']
    assert meta['params']['seed'] == 5

    again = subprocess.run([sys.executable, script] + args,
                           capture_output=True, text=True, cwd=str(tmp_path))
    assert again.returncode == 0 and 'skip' in again.stdout

    bad = subprocess.run(
        [sys.executable, script, '--out', out, '--num-val', '0'],
        capture_output=True, text=True, cwd=str(tmp_path))
    assert bad.returncode == 2 and 'num_val' in bad.stderr


def test_module_cli(tmp_path):
    out = str(tmp_path / 'mod')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    run = subprocess.run([
        sys.executable, '-m', 'mmdysample.datasets.synthetic', '--out', out,
        '--num-train', '1', '--num-val', '1', '--img-size', '48', '64',
        '--tasks', 'panoptic', '--quiet'
    ], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert 'RuntimeWarning' not in run.stderr
    pan = _load(
        osp.join(out, 'coco', 'annotations', 'panoptic_val2017.json'))
    assert (pan['images'][0]['height'], pan['images'][0]['width']) == (48, 64)


# ---------------------------------------------------------------------------
# Loading through the hosts (mmdet / mmseg)
# ---------------------------------------------------------------------------


def test_mmdet_coco_dataset(dataset):
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    root = osp.join(dataset, 'coco')
    inst = _load(
        osp.join(root, 'annotations', 'instances_train2017.json'))
    ds = CocoDataset(
        data_root=root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        metainfo=dict(classes=THING_CLASSES),
        pipeline=[
            LoadImageFromFile(),
            LoadAnnotations(with_bbox=True, with_mask=True)
        ],
        test_mode=False)
    assert len(ds) == SMALL['num_train']
    assert ds.metainfo['classes'] == THING_CLASSES
    total = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        anns = [a for a in inst['annotations'] if a['image_id'] ==
                info['img_id']]
        assert len(info['instances']) == len(anns) > 0
        for ins, ann in zip(info['instances'], anns):
            x, y, w, h = ann['bbox']
            assert ins['bbox'] == [x, y, x + w, y + h]
            assert ins['bbox_label'] == ann['category_id'] - 1
            assert ins['ignore_flag'] == 0
        sample = ds[i]
        assert sample['img'].shape == (96, 96, 3)
        masks = sample['gt_masks'].to_ndarray()
        assert masks.shape == (len(anns), 96, 96)
        np.testing.assert_array_equal(
            masks.reshape(len(anns), -1).sum(1), [a['area'] for a in anns])
        total += len(anns)
    assert total == len(inst['annotations'])


def test_mmdet_coco_panoptic_dataset(dataset):
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CocoPanopticDataset
    from mmdet.datasets.transforms import LoadPanopticAnnotations
    root = osp.join(dataset, 'coco')
    ds = CocoPanopticDataset(
        data_root=root,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(img='train2017/',
                         seg='annotations/panoptic_train2017/'),
        metainfo=PANOPTIC_METAINFO,
        pipeline=[
            LoadImageFromFile(),
            LoadPanopticAnnotations(
                with_bbox=True, with_label=True, with_mask=True,
                with_seg=True)
        ],
        test_mode=False)
    assert len(ds) == SMALL['num_train']
    inst = _load(
        osp.join(root, 'annotations', 'instances_train2017.json'))
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert osp.isfile(info['img_path'])
        assert osp.isfile(info['seg_map_path'])
        anns = [a for a in inst['annotations'] if a['image_id'] ==
                info['img_id']]
        assert len(info['instances']) == len(anns)
        assert sum(s['is_thing'] for s in info['segments_info']) == len(anns)
        stuff = [s for s in info['segments_info'] if not s['is_thing']]
        assert 1 <= len(stuff) <= len(STUFF_CLASSES)
        sample = ds[i]
        seg = sample['gt_seg_map']
        # every pixel is labelled (255 would be VOID)
        assert seg.max() < len(PANOPTIC_CLASSES)
        assert len(sample['gt_masks']) == len(anns)
        np.testing.assert_array_equal(sample['gt_bboxes_labels'],
                                      [a['category_id'] - 1 for a in anns])


def test_mmseg_dataset(dataset):
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations
    root = osp.join(dataset, 'ade')
    for split, _, ade_dir in SPLITS:
        ds = BaseSegDataset(
            data_root=root,
            data_prefix=dict(
                img_path=f'images/{ade_dir}',
                seg_map_path=f'annotations/{ade_dir}'),
            img_suffix='.jpg',
            seg_map_suffix='.png',
            reduce_zero_label=True,
            metainfo=dict(classes=SEG_CLASSES, palette=SEG_PALETTE),
            pipeline=[LoadAnnotations()])
        assert len(ds) == SMALL[f'num_{split}']
        assert ds.metainfo['classes'] == SEG_CLASSES
        for i in range(len(ds)):
            sample = ds[i]
            raw = cv2.imread(sample['seg_map_path'], cv2.IMREAD_UNCHANGED)
            seg = sample['gt_seg_map']
            assert seg.shape == raw.shape == (96, 96)
            # reduce_zero_label: 1..K -> 0..K-1, and 0 (never written) -> 255
            assert seg.min() >= 0 and seg.max() <= len(SEG_CLASSES) - 1
            np.testing.assert_array_equal(seg, raw.astype(np.int64) - 1)


def test_coco_metric_with_ground_truth(dataset):
    import torch
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO
    ann_file = osp.join(dataset, 'coco', 'annotations',
                        'instances_val2017.json')
    coco = COCO(ann_file)
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=THING_CLASSES)
    samples = []
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        boxes = [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                  a['bbox'][1] + a['bbox'][3]] for a in anns]
        masks = np.stack([coco.annToMask(a) for a in anns]).astype(bool)
        samples.append(
            dict(
                img_id=img_id,
                ori_shape=(96, 96),
                pred_instances=dict(
                    bboxes=torch.tensor(boxes, dtype=torch.float32),
                    scores=torch.ones(len(anns)),
                    labels=torch.tensor([a['category_id'] - 1
                                         for a in anns]),
                    masks=torch.from_numpy(masks))))
    metric.process({}, samples)
    results = metric.evaluate(size=len(samples))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_coco_panoptic_metric_with_ground_truth(dataset):
    import torch
    from mmdet.evaluation import CocoPanopticMetric
    from mmdet.evaluation.functional import INSTANCE_OFFSET as OFFSET
    ann_dir = osp.join(dataset, 'coco', 'annotations')
    ann_file = osp.join(ann_dir, 'panoptic_val2017.json')
    pan = _load(ann_file)
    cats = {c['id']: c for c in pan['categories']}
    metric = CocoPanopticMetric(
        ann_file=ann_file, seg_prefix=osp.join(ann_dir, 'panoptic_val2017'))
    metric.dataset_meta = PANOPTIC_METAINFO
    samples = []
    for ann, img in zip(pan['annotations'], pan['images']):
        ids = _rgb2id(osp.join(ann_dir, 'panoptic_val2017', ann['file_name']))
        pred = np.full(ids.shape, len(PANOPTIC_CLASSES), np.int64)
        for k, seg in enumerate(ann['segments_info']):
            label = PANOPTIC_CLASSES.index(cats[seg['category_id']]['name'])
            inst = k + 1 if cats[seg['category_id']]['isthing'] else 0
            pred[ids == seg['id']] = label + inst * OFFSET
        samples.append(
            dict(
                img_id=img['id'],
                img_path=osp.join(dataset, 'coco', 'val2017',
                                  img['file_name']),
                ori_shape=(img['height'], img['width']),
                pred_panoptic_seg=dict(
                    sem_seg=torch.from_numpy(pred)[None])))
    metric.process({}, samples)
    results = metric.evaluate(size=len(samples))
    assert results['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert results['coco_panoptic/PQ_th'] == pytest.approx(100.0)
    assert results['coco_panoptic/PQ_st'] == pytest.approx(100.0)
