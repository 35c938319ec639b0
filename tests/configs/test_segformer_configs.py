# Copyright (c) mmdysample contributors. All rights reserved.
"""The SegFormer-B1 configs of the paper (Table 4) load, build and differ
from the bilinear baseline in the six decoder upsamplers only; they and the
synthetic config evaluate mIoU and bIoU."""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmseg')

import mmcv  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.dataset import Compose  # noqa: E402
from mmengine.evaluator import Evaluator  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import mmdysample  # noqa: E402,F401 (registers the head and the bIoU metric)
from mmdysample.evaluation import BoundaryIoUMetric  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402

CONFIG_DIR = Path(__file__).parents[2] / 'configs' / 'segformer'
#: The built-in-data configs end in ``_synthetic`` (default scenes) or
#: ``_synthetic-fine`` (``--scenes fine``); their ADE data roots.
SYNTHETIC_DATA_ROOTS = {
    '_synthetic': 'data/synthetic/ade/',
    '_synthetic-fine': 'data/synthetic_fine/ade/'
}


def synthetic_tag(path):
    """The built-in-data suffix of a config name, or None."""
    return next((tag for tag in SYNTHETIC_DATA_ROOTS
                 if path.stem.endswith(tag)), None)


#: The paper's configs, then the built-in-data ones.
CONFIGS = sorted(
    path for path in CONFIG_DIR.glob('*.py') if synthetic_tag(path) is None)
SYNTHETIC = sorted(
    path for path in CONFIG_DIR.glob('*.py') if synthetic_tag(path))
BASELINE = 'segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512'
#: config qualifier -> DySample preset (paper Table 4)
DYSAMPLE_CONFIGS = {
    f'segformer_mit-b1-dysample-{tag}_8xb2-160k_ade20k-512x512': name
    for tag, name in [('lpg4', 'DySample'), ('lpg4ds', 'DySample+'),
                      ('plg8', 'DySample-S'), ('plg8ds', 'DySample-S+')]
}
#: the comparison rows of Table 4 (tested in test_comparison_configs.py)
COMPARISON_CONFIGS = {
    f'segformer_mit-b1-{tag}_8xb2-160k_ade20k-512x512': cfg
    for tag, cfg in [('deconv', dict(type='deconv', kernel_size=3, stride=2,
                                     padding=1, output_padding=1)),
                     ('pixel-shuffle', dict(type='pixel_shuffle',
                                            upsample_kernel=3)),
                     ('carafe', dict(type='carafe')),
                     ('indexnet', dict(type='IndexNet')),
                     ('a2u', dict(type='A2U')),
                     ('fade', dict(type='FADE')),
                     ('sapa-b', dict(type='SAPA-B'))]
}
#: the later upsamplers (tested in test_later_peer_configs.py)
LATER_CONFIGS = {
    f'segformer_mit-b1-{tag}_8xb2-160k_ade20k-512x512': dict(type=name)
    for tag, name in [('freqfusion', 'FreqFusion'), ('lda-aqu', 'LDA-AQU')]
}
B1_DECODER_CHANNELS = 256
#: val / test evaluators of every SegFormer config: mIoU and bIoU (Table 4)
EVALUATORS = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryIoUMetric', dilation_ratio=0.02)
]


def load(stem):
    return Config.fromfile(CONFIG_DIR / f'{stem}.py')


def build_model(cfg):
    """Build without downloads and without SyncBN (needs a process group)."""
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def step_types(pipeline):
    return [step['type'] for step in pipeline]


def assert_evaluates_miou_and_biou(cfg):
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert [dict(metric) for metric in evaluator] == EVALUATORS
    # what the Runner builds from them, in the config's scope
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        metrics = Evaluator(cfg.test_evaluator).metrics
    assert [type(metric).__name__ for metric in metrics] == [
        'IoUMetric', 'BoundaryIoUMetric'
    ]
    assert isinstance(metrics[1], BoundaryIoUMetric)
    assert metrics[1].dilation_ratio == 0.02
    assert metrics[1].ignore_index == metrics[0].ignore_index == 255


def test_configs_are_collected():
    stems = {path.stem for path in CONFIGS}
    assert stems, f'no configs found in {CONFIG_DIR}'
    assert {BASELINE, *DYSAMPLE_CONFIGS, *COMPARISON_CONFIGS,
            *LATER_CONFIGS} <= stems


@pytest.mark.parametrize('path', CONFIGS, ids=lambda path: path.stem)
def test_config_loads(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == dict(
        imports=['mmdysample'], allow_failed_imports=False)
    head = cfg.model.decode_head
    assert head.type == 'DySampleSegformerHead'
    expected = DYSAMPLE_CONFIGS.get(path.stem)
    expected = {**COMPARISON_CONFIGS, **LATER_CONFIGS}.get(
        path.stem, None if expected is None else dict(type=expected))
    assert head.get('upsample_cfg') == expected
    # the stock SegFormer-B1 setting is kept
    assert head.in_channels == [64, 128, 320, 512]
    assert head.channels == B1_DECODER_CHANNELS
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    # the paper's test protocol: resize to a multiple of 32 after Resize and
    # before the labels are loaded (they stay at the original size)
    for pipeline in (cfg.test_pipeline, cfg.val_dataloader.dataset.pipeline,
                     cfg.test_dataloader.dataset.pipeline):
        assert step_types(pipeline) == [
            'LoadImageFromFile', 'Resize', 'ResizeToMultiple',
            'LoadAnnotations', 'PackSegInputs'
        ]
        assert pipeline[2].size_divisor == 32
    assert cfg.test_dataloader.dataset.data_prefix.img_path == (
        'images/validation')
    assert_evaluates_miou_and_biou(cfg)


def test_synthetic_configs_build_and_run():
    assert set(map(synthetic_tag, SYNTHETIC)) == set(SYNTHETIC_DATA_ROOTS), \
        f'a kind of built-in data has no config in {CONFIG_DIR}'
    for path in SYNTHETIC:
        cfg = Config.fromfile(path)
        head = cfg.model.decode_head
        assert head.type == 'DySampleSegformerHead'
        assert head.upsample_cfg == dict(type='DySample')
        data_root = SYNTHETIC_DATA_ROOTS[synthetic_tag(path)]
        for loader in (cfg.train_dataloader, cfg.val_dataloader,
                       cfg.test_dataloader):
            assert loader.dataset.data_root == data_root
            assert loader.dataset.metainfo == cfg.metainfo
        assert head.num_classes == len(cfg.metainfo.classes)
        assert_evaluates_miou_and_biou(cfg)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            logits = model(torch.rand(1, 3, 64, 96), mode='tensor')
        assert logits.shape == (1, head.num_classes, 16, 24)


def test_fine_synthetic_config_is_the_default_one_on_the_fine_data():
    from mmdysample.datasets.synthetic import ADE_METAINFO, FINE_ADE_METAINFO

    def plain(metainfo):
        return dict(classes=list(metainfo['classes']),
                    palette=[list(c) for c in metainfo['palette']])

    stem = 'segformer_mit-b0-dysample-lpg4_synthetic'
    default, fine = load(stem), load(f'{stem}-fine')
    # the class names and colours are the generator's, label for label
    assert plain(default.metainfo) == plain(ADE_METAINFO)
    assert plain(fine.metainfo) == plain(FINE_ADE_METAINFO)
    assert fine.model.decode_head.num_classes == len(
        FINE_ADE_METAINFO['classes'])
    default, fine = default.to_dict(), fine.to_dict()
    for cfg in (default, fine):
        cfg['model']['decode_head'].pop('num_classes')
        for key in ('data_root', 'metainfo'):
            cfg.pop(key)
            for loader in ('train', 'val', 'test'):
                cfg[f'{loader}_dataloader']['dataset'].pop(key)
    assert fine == default


@pytest.fixture(scope='module')
def baseline_model():
    return build_model(load(BASELINE)).eval()


def test_baseline_is_the_stock_head(baseline_model):
    stock = load(BASELINE)
    stock.model.decode_head.type = 'SegformerHead'
    assert count_params(build_model(stock)) == count_params(baseline_model)
    assert baseline_model.decode_head.upsamplers is None


@pytest.mark.parametrize('stem', sorted(DYSAMPLE_CONFIGS))
def test_parameter_delta_is_six_upsamplers(stem, baseline_model):
    cfg = load(stem)
    model = build_model(cfg)
    upsampler = build_upsampler(
        cfg.model.decode_head.upsample_cfg, B1_DECODER_CHANNELS)
    delta = count_params(model) - count_params(baseline_model)
    assert delta == 6 * count_params(upsampler) > 0
    # everything outside the upsamplers is the baseline's, key for key
    keys = {k for k in model.state_dict() if '.upsamplers.' not in k}
    assert keys == set(baseline_model.state_dict())


def test_test_pipeline_keeps_labels_and_predictions_at_original_size(
        tmp_path, baseline_model):
    height, width = 375, 500  # rescaled to 512x683, then to 512x704
    rng = np.random.default_rng(0)
    mmcv.imwrite(
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        str(tmp_path / 'img.jpg'))
    mmcv.imwrite(
        rng.integers(0, 151, (height, width), dtype=np.uint8),
        str(tmp_path / 'seg.png'))
    cfg = load(BASELINE)
    with DefaultScope.overwrite_default_scope('mmseg'):
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        packed = pipeline(
            dict(
                img_path=str(tmp_path / 'img.jpg'),
                seg_map_path=str(tmp_path / 'seg.png'),
                reduce_zero_label=True,
                seg_fields=[]))
    sample = packed['data_samples']
    assert packed['inputs'].shape[1:] == (512, 704)
    assert sample.img_shape == (512, 704)
    assert sample.ori_shape == (height, width)
    assert sample.gt_sem_seg.shape == (height, width)
    # what EncoderDecoder.predict does after the head: the logits at the
    # network input's size are resized back to ori_shape before IoUMetric
    # compares them with gt_sem_seg
    logits = torch.rand(1, 150, 512, 704)
    result = baseline_model.postprocess_result(logits, [sample])[0]
    assert result.pred_sem_seg.shape == sample.gt_sem_seg.shape


#: paper Table 4, SegFormer-B1 rows: config qualifier -> (mIoU, bIoU)
PAPER_TABLE4 = {
    'bilinear': (41.68, 27.80),
    'dysample-plg8': (43.23, 29.53),
    'dysample-plg8ds': (43.58, 29.93),
    'dysample-lpg4': (43.21, 29.12),
    'dysample-lpg4ds': (43.28, 29.23),
}


def test_paper_results_in_metafile_and_readme():
    yaml = pytest.importorskip('yaml')
    metafile = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text())
    readme = (CONFIG_DIR / 'README.md').read_text()
    found = {}
    for model in metafile['Models']:
        tag = model['Name'].split('_')[1][len('mit-b1-'):]
        metrics = model['Results']['Metrics']
        if metrics:  # the later upsamplers have no published B1 result
            found[tag] = (metrics['mIoU'], metrics.get('bIoU'))
    for tag, paper in PAPER_TABLE4.items():
        assert found.get(tag) == paper, tag
        row = next(line for line in readme.splitlines()
                   if line.startswith(f'| {tag} |'))
        cells = [cell.strip().strip('*') for cell in row.split('|')]
        assert {f'{value:.2f}' for value in paper} <= set(cells), row


def test_metafile_names_match_configs():
    yaml = pytest.importorskip('yaml')
    metafile = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text())
    root = CONFIG_DIR.parents[1]
    names = []
    for model in metafile['Models']:
        assert Path(model['Config']).stem == model['Name']
        assert (root / model['Config']).is_file(), model['Config']
        assert model['Results']['Task'] == 'Semantic Segmentation'
        assert model['Results']['Dataset'] == 'ADE20K'
        assert 'paper' in model['Metadata']['Results Source']
        names.append(model['Name'])
    assert sorted(names) == sorted(path.stem for path in CONFIGS)
