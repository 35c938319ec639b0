# The built-in synthetic scenes in COCO panoptic format: 4 thing classes
# (the shapes) and 3 stuff classes (the background regions). Loader settings
# are the detection set's.
_base_ = './synthetic_coco_detection.py'

dataset_type = 'CocoPanopticDataset'
# As in the base; repeated because the evaluator paths below use it.
data_root = 'data/synthetic/coco/'
metainfo = dict(
    classes=('circle', 'rectangle', 'triangle', 'star', 'sky', 'ground',
             'water'),
    thing_classes=('circle', 'rectangle', 'triangle', 'star'),
    stuff_classes=('sky', 'ground', 'water'),
    palette=[(225, 45, 45), (250, 205, 35), (170, 60, 220), (25, 25, 30),
             (140, 185, 240), (110, 135, 70), (40, 90, 150)])

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadPanopticAnnotations', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='LoadPanopticAnnotations', backend_args={{_base_.backend_args}}),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(
        dataset_type=dataset_type,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(
            img='train2017/', seg='annotations/panoptic_train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        dataset_type=dataset_type,
        metainfo=metainfo,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    _delete_=True,
    type='CocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val2017.json',
    seg_prefix=data_root + 'annotations/panoptic_val2017/',
    backend_args={{_base_.backend_args}})
test_evaluator = val_evaluator
