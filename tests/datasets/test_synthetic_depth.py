# Copyright (c) mmdysample contributors. All rights reserved.
"""The built-in depth data (``scenes='depth'``): rooms rendered with their
depth, written in the NYU Depth V2 layout that mmseg's ``NYUDataset``
reads."""
import filecmp
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from mmdysample.datasets.synthetic import (KIND_DEFAULTS, MAX_DEPTH,
                                           SCENE_KINDS,
                                           generate_synthetic_dataset,
                                           render_room)
from mmdysample.datasets.synthetic import generate as generate_module
from mmdysample.datasets.synthetic.nyu import depth_to_png
from mmdysample.datasets.synthetic.rooms import ROOM_TYPES, nyu_intrinsics

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'misc', 'generate_synthetic_data.py')
SMALL = dict(num_train=4, num_val=2, img_size=(48, 64), seed=3,
             scenes='depth')
# split, seed code, NYU folder
SPLITS = (('train', 0, 'train'), ('val', 1, 'test'))
STEM = re.compile(r'^([a-z_]+)_(\d{4})$')


@pytest.fixture(scope='module')
def depth_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('synthetic_depth'))
    assert not generate_synthetic_dataset(out, **SMALL)['skipped']
    return out


@pytest.fixture(scope='module')
def rooms():
    """Sixteen rooms of the sizes the tests use, rendered once."""
    return [
        render_room(np.random.default_rng([3, 0, i]), 48, 64)
        for i in range(16)
    ]


def _files(root):
    found = []
    for dirpath, _, names in os.walk(root):
        found += [osp.relpath(osp.join(dirpath, n), root) for n in names]
    return sorted(found)


def _room(code, stem):
    """The room a file of split ``code`` was rendered from."""
    index = int(STEM.match(stem).group(2)) - 1
    return render_room(np.random.default_rng([SMALL['seed'], code, index]),
                       *SMALL['img_size'])


# ---------------------------------------------------------------------------
# The renderer
# ---------------------------------------------------------------------------


def test_render_is_a_pure_function_of_the_generator_state():
    first = render_room(np.random.default_rng([0, 1, 2]), 40, 56)
    again = render_room(np.random.default_rng([0, 1, 2]), 40, 56)
    other = render_room(np.random.default_rng([0, 1, 3]), 40, 56)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.depth, again.depth)
    assert first.category == again.category
    assert not np.array_equal(first.depth, other.depth)
    assert first.image.shape == (40, 56, 3) and first.image.dtype == np.uint8
    assert first.depth.shape == (40, 56)
    assert first.depth.dtype == np.float32


def test_intrinsics_are_nyus_scaled():
    fx, fy, cx, cy = nyu_intrinsics(480, 640)
    assert (round(fx, 2), round(fy, 2)) == (518.86, 519.47)
    assert nyu_intrinsics(192, 256) == pytest.approx(
        [v * 0.4 for v in (fx, fy, cx, cy)])


def test_depth_range(rooms):
    depth = np.stack([r.depth for r in rooms])
    # measured on these 16 rooms: 0.55 to 9.48 m, medians 0.9 to 5.0 m
    assert 0.4 < depth.min() and depth.max() <= MAX_DEPTH
    assert 1.5 < np.median(depth) < 5.0
    far = sum(r.depth.max() > 7 for r in rooms)
    assert 2 <= far < len(rooms)  # a few far walls, not every room
    assert {r.category for r in rooms} <= {t.name for t in ROOM_TYPES}
    assert len({r.category for r in rooms}) >= 4


def test_images_carry_depth_cues(rooms):
    """The far half of every room is darker than its near half (the light
    at the camera and the haze); pairing an image with another room's depth
    loses that, as would a random image."""
    def far_darker(image, depth):
        lum = image.astype(np.float64).mean(-1)
        far = depth > np.median(depth)
        return lum[far].mean() < lum[~far].mean()

    # measured: 16 of 16; -0.76 pooled correlation of brightness and
    # log-depth
    assert sum(far_darker(r.image, r.depth) for r in rooms) >= 15
    lum = np.concatenate([r.image.mean(-1).ravel() for r in rooms])
    log_depth = np.log(np.concatenate([r.depth.ravel() for r in rooms]))
    assert np.corrcoef(lum, log_depth)[0, 1] < -0.5
    shifted = np.log(np.concatenate([r.depth.ravel()
                                     for r in rooms[1:] + rooms[:1]]))
    assert np.corrcoef(lum, shifted)[0, 1] > -0.35


def test_renders_fast():
    """Vectorised: a Python loop over 192 x 256 pixels takes seconds."""
    rng = np.random.default_rng(0)
    best = min(
        _timed(lambda: render_room(rng, 192, 256)) for _ in range(3))
    assert best < 0.5  # about 0.02 s on a free core


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------


def test_layout_and_names(depth_data):
    files = _files(depth_data)
    assert 'meta.json' in files
    assert all(f == 'meta.json' or f.startswith('nyu/') for f in files)
    for split, _, folder in SPLITS:
        images = [f for f in files if f.startswith(f'nyu/images/{folder}/')]
        depths = [
            f for f in files if f.startswith(f'nyu/annotations/{folder}/')
        ]
        assert len(images) == len(depths) == SMALL[f'num_{split}']
        stems = sorted(osp.basename(f)[:-4] for f in images)
        assert stems == sorted(osp.basename(f)[:-4] for f in depths)
        assert all(f.endswith('.jpg') for f in images)
        assert all(f.endswith('.png') for f in depths)
        for stem in stems:
            word = STEM.match(stem).group(1)
            assert word in {t.name for t in ROOM_TYPES}
        numbers = sorted(int(STEM.match(s).group(2)) for s in stems)
        assert numbers == list(range(1, SMALL[f'num_{split}'] + 1))
    meta = json.load(open(osp.join(depth_data, 'meta.json')))
    assert meta['params']['scenes'] == 'depth'
    assert meta['params']['tasks'] == ['nyu']
    assert meta['params']['img_size'] == [48, 64]
    assert meta['counts'] == {'train': {'images': 4}, 'val': {'images': 2}}


def test_files_hold_the_rendered_rooms(depth_data):
    for _, code, folder in SPLITS:
        ann_dir = osp.join(depth_data, 'nyu', 'annotations', folder)
        for name in sorted(os.listdir(ann_dir)):
            room = _room(code, name[:-4])
            assert name.startswith(room.category + '_')
            png = cv2.imread(osp.join(ann_dir, name), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint16 and png.shape == (48, 64)
            np.testing.assert_array_equal(png, depth_to_png(room.depth))
            assert 400 < png.min() and png.max() <= 10_000  # mm, all valid
            img = cv2.imread(
                osp.join(depth_data, 'nyu', 'images', folder,
                         name[:-4] + '.jpg'))[..., ::-1]
            # JPEG at quality 95
            assert np.abs(img.astype(int) - room.image).mean() < 4


def test_depth_png_rounds_to_millimetres():
    depth = np.array([0.5, 1.2344, 1.2346, 9.9996, 10.0, 0.0, -1.0, np.nan,
                      np.inf, 1e-5])
    assert depth_to_png(depth).tolist() == [
        500, 1234, 1235, 10000, 10000, 0, 0, 0, 0, 1
    ]
    assert depth_to_png(depth).dtype == np.uint16


def test_determinism(depth_data, tmp_path):
    same, other = str(tmp_path / 'same'), str(tmp_path / 'other')
    generate_synthetic_dataset(same, **SMALL)
    generate_synthetic_dataset(other, **dict(SMALL, seed=4))
    files = _files(depth_data)
    assert files == _files(same)
    _, mismatch, errors = filecmp.cmpfiles(depth_data, same, files,
                                           shallow=False)
    assert mismatch == [] and errors == []
    assert _files(other) != files  # other rooms, other names


def test_image_independent_of_count(tmp_path):
    few, many = str(tmp_path / 'few'), str(tmp_path / 'many')
    generate_synthetic_dataset(few, 2, 1, (48, 64), scenes='depth')
    generate_synthetic_dataset(many, 3, 2, (48, 64), scenes='depth')
    few_files = _files(few)
    assert set(few_files) - {'meta.json'} < set(_files(many))
    _, mismatch, _ = filecmp.cmpfiles(few, many, [
        f for f in few_files if f != 'meta.json'], shallow=False)
    assert mismatch == []


def test_formats_stay_apart(tmp_path):
    depth, seg = str(tmp_path / 'depth'), str(tmp_path / 'seg')
    generate_synthetic_dataset(depth, 1, 1, 48, scenes='depth')
    generate_synthetic_dataset(seg, 1, 1, 48)
    assert sorted(os.listdir(depth)) == ['meta.json', 'nyu']
    assert sorted(os.listdir(seg)) == ['ade', 'coco', 'meta.json']


def test_defaults(tmp_path, monkeypatch):
    assert set(KIND_DEFAULTS) == set(SCENE_KINDS) | {'depth'}
    assert KIND_DEFAULTS['depth'] == (osp.join('data', 'synthetic_depth'),
                                      96, 24, (192, 256), ('nyu', ))
    monkeypatch.chdir(tmp_path)
    result = generate_synthetic_dataset(num_train=1, num_val=1,
                                        scenes='depth')
    assert result['out_dir'] == osp.join('data', 'synthetic_depth')
    assert result['params']['img_size'] == [192, 256]
    img = cv2.imread(
        osp.join(result['paths']['nyu_img_val'],
                 os.listdir(result['paths']['nyu_img_val'])[0]))
    assert img.shape == (192, 256, 3)


def test_up_to_date_and_force(tmp_path, monkeypatch):
    out = str(tmp_path / 'idem')
    args = dict(num_train=2, num_val=1, img_size=(48, 64), scenes='depth')
    assert not generate_synthetic_dataset(out, **args)['skipped']
    img_dir = osp.join(out, 'nyu', 'images', 'train')
    victim = osp.join(img_dir, sorted(os.listdir(img_dir))[0])
    stamp = os.stat(victim).st_mtime_ns - 10**9
    os.utime(victim, ns=(stamp, stamp))

    assert generate_synthetic_dataset(out, **args)['skipped']
    assert generate_synthetic_dataset(out, **args, tasks=['nyu'])['skipped']
    assert os.stat(victim).st_mtime_ns == stamp
    assert not generate_synthetic_dataset(out, **args, force=True)['skipped']
    assert os.stat(victim).st_mtime_ns != stamp
    # another renderer version, other sizes, a missing folder: regenerated
    monkeypatch.setattr(generate_module, 'ROOMS_VERSION', 99)
    assert not generate_synthetic_dataset(out, **args)['skipped']
    assert json.load(open(osp.join(out, 'meta.json')))['params'][
        'rooms_version'] == 99
    assert generate_synthetic_dataset(out, **args)['skipped']
    assert not generate_synthetic_dataset(
        out, **dict(args, num_train=1))['skipped']
    assert len(os.listdir(img_dir)) == 1
    os.rename(osp.join(out, 'nyu', 'annotations', 'test'),
              osp.join(out, 'nyu', 'annotations', 'val'))
    assert not generate_synthetic_dataset(
        out, **dict(args, num_train=1))['skipped']
    # the segmentation scenes of the same sizes are another output
    assert not generate_synthetic_dataset(
        out, 1, 1, (48, 64), scenes='default')['skipped']
    assert not osp.exists(img_dir)


def test_refuses_a_foreign_nyu_folder(tmp_path):
    out = tmp_path / 'data'
    (out / 'nyu' / 'images' / 'train').mkdir(parents=True)
    (out / 'nyu' / 'images' / 'train' / 'bedroom_0001.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='meta.json'):
        generate_synthetic_dataset(str(out), 1, 1, 48, scenes='depth')
    assert (out / 'nyu' / 'images' / 'train' / 'bedroom_0001.jpg').exists()


@pytest.mark.parametrize('kwargs, match', [
    (dict(scenes='depth', tasks=['coco']),
     r"tasks \['coco'\] cannot be written for scenes='depth'.*'nyu'"),
    (dict(tasks=['nyu', 'ade']),
     r"tasks \['nyu'\] cannot be written for scenes='default'"),
    (dict(scenes='rooms'), r"scenes must be.*'depth', got 'rooms'"),
    (dict(scenes='depth', num_val=0), 'num_val'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic_dataset(str(tmp_path / 'bad'), **kwargs)
    assert not osp.exists(str(tmp_path / 'bad'))


def test_cli(tmp_path):
    out = str(tmp_path / 'cli')
    args = [sys.executable, TOOL, '--scenes', 'depth', '--out', out,
            '--num-train', '2', '--num-val', '1', '--img-size', '48', '64']
    run = subprocess.run(args, capture_output=True, text=True,
                         cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert 'generated' in run.stdout
    assert 'depth scenes, tasks nyu' in run.stdout
    assert osp.join(out, 'nyu', 'images', 'test') in run.stdout
    assert len(os.listdir(osp.join(out, 'nyu', 'annotations', 'train'))) == 2
    again = subprocess.run(args, capture_output=True, text=True,
                           cwd=str(tmp_path))
    assert again.returncode == 0 and 'skipped' in again.stdout

    bad = subprocess.run(args + ['--tasks', 'ade'], capture_output=True,
                         text=True, cwd=str(tmp_path))
    assert bad.returncode == 2 and "'nyu'" in bad.stderr

    usage = subprocess.run([sys.executable, TOOL, '--help'],
                           capture_output=True, text=True, check=True)
    text = ' '.join(usage.stdout.split())
    assert '{default,fine,depth}' in text
    assert 'data/synthetic_depth for depth' in text
    assert '96 for depth' in text and '192 256 for depth' in text
    assert 'nyu for depth' in text


# ---------------------------------------------------------------------------
# Read back through mmseg
# ---------------------------------------------------------------------------


def test_mmseg_nyu_dataset_reads_metres(depth_data):
    pytest.importorskip('mmseg')
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets import NYUDataset
    from mmseg.datasets.transforms import LoadDepthAnnotation
    for _, code, folder in SPLITS:
        ds = NYUDataset(
            data_root=osp.join(depth_data, 'nyu'),
            data_prefix=dict(img_path=f'images/{folder}',
                             depth_map_path=f'annotations/{folder}'),
            pipeline=[
                LoadImageFromFile(),
                LoadDepthAnnotation(depth_rescale_factor=1e-3)
            ])
        assert len(ds) == len(os.listdir(osp.join(depth_data, 'nyu',
                                                  'images', folder)))
        classes = NYUDataset.METAINFO['classes']
        for i in range(len(ds)):
            sample = ds[i]
            stem = osp.basename(sample['img_path'])[:-4]
            room = _room(code, stem)
            assert sample['category_id'] == classes.index(room.category)
            assert sample['depth_map_path'].endswith(
                osp.join('annotations', folder, stem + '.png'))
            depth = sample['gt_depth_map']
            assert depth.dtype == np.float32
            np.testing.assert_allclose(depth, room.depth, rtol=0,
                                       atol=5e-4 + 1e-6)
            assert sample['img'].shape == (48, 64, 3)


def test_every_room_type_is_an_nyu_class():
    pytest.importorskip('mmseg')
    from mmseg.datasets import NYUDataset
    classes = NYUDataset.METAINFO['classes']
    assert all(t.name in classes for t in ROOM_TYPES)
