# Copyright (c) mmdysample contributors. All rights reserved.
"""BoundaryIoUMetric through mmengine's Evaluator, as mmseg runs it.

The band areas themselves are checked against a pixel-loop reference in
test_boundary_iou.py; here: registration, the dataset-level sums, classes
without a band, ignore pixels, the per-class table, and distributed
collection.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmseg')

from mmengine.evaluator import Evaluator  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import METRICS as ROOT_METRICS  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers BoundaryIoUMetric)
from mmdysample.evaluation import BoundaryIoUMetric  # noqa: E402
from mmdysample.evaluation import boundary_intersect_and_union  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('sky', 'road', 'car', 'person')
IGNORE = 255


def seg_sample(pred, label):
    """A data sample as mmseg's EncoderDecoder.predict returns it."""
    sample = SegDataSample()
    sample.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(label)[None])
    return sample


def two_halves(height=24, width=32, split=16, classes=(0, 1)):
    label = torch.full((height, width), classes[0], dtype=torch.long)
    label[:, split:] = classes[1]
    return label


def evaluate(pairs, **kwargs):
    metric = BoundaryIoUMetric(**kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [seg_sample(p, g).to_dict() for p, g in pairs])
    return metric.evaluate(len(pairs))


def random_pair(seed, shape=(40, 56)):
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, len(CLASSES), (shape[0] // 8, shape[1] // 8),
                           generator=gen)
    label = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1)
    pred = label.roll(int(torch.randint(-3, 4, (), generator=gen)), 1)
    label[torch.rand(shape, generator=gen) < 0.05] = IGNORE
    return pred, label


def test_registered_in_mmseg_metrics():
    assert METRICS.get('BoundaryIoUMetric') is BoundaryIoUMetric
    # what the Runner does with a config's val_evaluator
    with DefaultScope.overwrite_default_scope('mmseg'):
        metric = ROOT_METRICS.build(
            dict(type='BoundaryIoUMetric', dilation_ratio=0.05))
    assert isinstance(metric, BoundaryIoUMetric)
    assert metric.dilation_ratio == 0.05


def test_perfect_prediction_is_100_and_absent_classes_are_skipped():
    label = two_halves()
    label[:4, :4] = IGNORE
    # 'car' and 'person' are in neither map: counted as 0 the mean would be
    # 50, counted as 100 no different; the table shows them as nan
    assert evaluate([(label, label)]) == {'bIoU': 100.0}
    half = evaluate([(label, label), (two_halves(classes=(2, 3)),
                                      two_halves(classes=(3, 2)))])
    # classes 2 and 3 swapped: their bands never meet
    assert half == {'bIoU': 50.0}


def test_one_pixel_shift_is_below_100():
    shifted = two_halves(split=17)  # the edge one pixel to the right
    biou = evaluate([(shifted, two_halves())])['bIoU']
    assert 50.0 < biou < 100.0


def test_dataset_sums_bands_rather_than_averaging_images():
    big, small = two_halves(64, 96, 48), two_halves(16, 24, 12)
    pairs = [(big, big), (two_halves(16, 24, 14), small)]
    areas = [boundary_intersect_and_union(p, g, len(CLASSES))
             for p, g in pairs]
    inter = sum(a[0] for a in areas).double()
    union = sum(a[1] for a in areas).double()
    summed = round(float((inter[:2] / union[:2]).mean()) * 100, 2)
    per_image = [a[0][:2].double() / a[1][:2] for a in areas]
    mean_of_images = round(
        float(torch.stack(per_image).mean()) * 100, 2)
    assert abs(summed - mean_of_images) > 5  # the case tells them apart
    assert evaluate(pairs) == {'bIoU': summed}


def test_prediction_at_ignore_pixels_never_counts():
    pred, label = random_pair(0)
    label[10:30, 8:40] = IGNORE
    base = evaluate([(pred, label)])
    for fill in range(len(CLASSES)):
        changed = pred.clone()
        changed[label == IGNORE] = fill
        assert evaluate([(changed, label)]) == base


def test_through_the_evaluator_beside_iou_metric():
    pairs = [random_pair(seed) for seed in range(3)]
    with DefaultScope.overwrite_default_scope('mmseg'):
        evaluator = Evaluator([
            dict(type='IoUMetric', iou_metrics=['mIoU']),
            dict(type='BoundaryIoUMetric')
        ])
    evaluator.dataset_meta = dict(classes=CLASSES)
    for pred, label in pairs:  # batches of one, as the test loop runs
        evaluator.process(data_samples=[seg_sample(pred, label)])
    metrics = evaluator.evaluate(len(pairs))
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc', 'bIoU'}
    assert metrics['bIoU'] == evaluate(pairs)['bIoU']
    assert 0 < metrics['bIoU'] < metrics['mIoU'] < 100


def test_results_are_per_image_sums_that_concatenate():
    """What collect_results gathers from the ranks: one entry per image."""
    pairs = [random_pair(seed) for seed in range(5)]
    whole = BoundaryIoUMetric()
    whole.dataset_meta = dict(classes=CLASSES)
    whole.process({}, [seg_sample(p, g).to_dict() for p, g in pairs])
    assert len(whole.results) == len(pairs)
    parts = []
    for shard in (pairs[0::2], pairs[1::2]):  # DefaultSampler's split
        metric = BoundaryIoUMetric()
        metric.dataset_meta = dict(classes=CLASSES)
        metric.process({}, [seg_sample(p, g).to_dict() for p, g in shard])
        parts += metric.results
    assert whole.compute_metrics(parts) == whole.compute_metrics(
        whole.results)
    # the sums are over images, not a mean of per-image values
    assert whole.compute_metrics(whole.results) != whole.compute_metrics(
        whole.results[:1])


def test_logs_a_per_class_table(tmp_path):
    log_file = tmp_path / 'biou.log'
    logger = MMLogger.get_instance('test_biou_table', log_file=str(log_file))
    evaluate([(two_halves(split=17), two_halves())])
    for handler in logger.handlers:
        handler.flush()
    log = log_file.read_text()
    assert 'per class results (boundary IoU)' in log
    rows = {
        line.split('|')[1].strip(): line.split('|')[2].strip()
        for line in log.splitlines() if line.count('|') == 3
    }
    assert set(CLASSES) <= set(rows)
    assert rows['car'] == rows['person'] == 'nan'
    assert 50 < float(rows['sky']) < 100


def test_nan_when_no_class_has_a_band():
    label = torch.full((8, 8), IGNORE, dtype=torch.long)
    result = evaluate([(torch.zeros_like(label), label)])
    assert math.isnan(result['bIoU'])


def test_prefix_and_options():
    label = two_halves(40, 40, 20)
    shifted = two_halves(40, 40, 22)
    assert set(evaluate([(label, label)], prefix='boundary')) == {
        'boundary/bIoU'
    }
    # a wider band forgives the shift more
    assert evaluate([(shifted, label)], dilation_ratio=0.1)['bIoU'] > (
        evaluate([(shifted, label)], dilation_ratio=0.02)['bIoU'])
    # labels read with another ignore value
    relabelled = label.clone()
    relabelled[:5] = 7
    with_255 = label.clone()
    with_255[:5] = IGNORE
    assert evaluate([(shifted, relabelled)], ignore_index=7) == evaluate(
        [(shifted, with_255)])


@pytest.mark.parametrize('ratio', [0, -1, float('nan')])
def test_bad_dilation_ratio(ratio):
    with pytest.raises(ValueError, match=f'dilation_ratio .*{ratio}'):
        BoundaryIoUMetric(dilation_ratio=ratio)


def test_bad_arguments():
    with pytest.raises(TypeError, match='dilation_ratio'):
        BoundaryIoUMetric(dilation_ratio='0.02')
    with pytest.raises(TypeError, match='ignore_index must be an integer'):
        BoundaryIoUMetric(ignore_index=255.0)
    metric = BoundaryIoUMetric()
    label = two_halves()
    with pytest.raises(ValueError, match="dataset_meta.*'classes'"):
        metric.process({}, [seg_sample(label, label).to_dict()])


@pytest.mark.gpu
def test_cuda_tensors():
    pairs = [random_pair(seed) for seed in range(2)]
    on_gpu = [(p.cuda(), g.cuda()) for p, g in pairs]
    assert evaluate(on_gpu) == evaluate(pairs)


WORKER = r'''
import json, sys
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_boundary_iou_metric import CLASSES, random_pair, seg_sample
from mmdysample.evaluation import BoundaryIoUMetric

rank, world_size, size = int(sys.argv[1]), 2, {size}
dist.init_process_group('gloo', init_method='file://' + {init!r},
                        rank=rank, world_size=world_size)
# mmengine's DefaultSampler: pad by repeating the first samples, then
# every world_size-th index per rank
indices = list(range(size))
indices += indices[:-size % world_size]
metric = BoundaryIoUMetric()
metric.dataset_meta = dict(classes=CLASSES)
for i in indices[rank::world_size]:
    metric.process({{}}, [seg_sample(*random_pair(i)).to_dict()])
result = metric.evaluate(size)
if rank == 0:
    json.dump(result, open({out!r}, 'w'))
dist.barrier()
dist.destroy_process_group()
'''


@pytest.mark.slow
def test_distributed_evaluation_matches_one_process(tmp_path):
    size = 5  # odd: rank 1 gets a padded copy of sample 0, to be dropped
    out = tmp_path / 'result.json'
    script = tmp_path / 'worker.py'
    script.write_text(
        WORKER.format(
            tests=osp.dirname(osp.abspath(__file__)),
            size=size,
            init=str(tmp_path / 'init'),
            out=str(out)))
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    procs = [
        subprocess.Popen([sys.executable, str(script),
                          str(rank)],
                         cwd=REPO,
                         env=env,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True) for rank in range(2)
    ]
    logs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], logs
    expected = evaluate([random_pair(i) for i in range(size)])
    assert json.loads(out.read_text()) == expected
    padded = evaluate([random_pair(i) for i in [*range(size), 0]])
    assert padded != expected  # the padded copy would have changed it
