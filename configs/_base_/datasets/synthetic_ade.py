# The built-in synthetic scenes as an ADE20K-style semantic segmentation set
# (labels 1..7, 0 = "other", read with reduce_zero_label=True). Class names and
# colours are mmdysample.datasets.SEG_CLASSES / SEG_PALETTE.
dataset_type = 'BaseSegDataset'
data_root = 'data/synthetic/ade/'
img_scale = (192, 192)  # the generator's default image size
crop_size = (128, 128)
metainfo = dict(
    classes=('sky', 'ground', 'water', 'circle', 'rectangle', 'triangle',
             'star'),
    palette=[(140, 185, 240), (110, 135, 70), (40, 90, 150), (225, 45, 45),
             (250, 205, 35), (170, 60, 220), (25, 25, 30)])
dataset_defaults = dict(
    type='CheckedDataset',  # checks files at build, labels as read
    dataset_type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset_defaults,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset_defaults,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# mIoU and boundary IoU (bIoU), as the paper reports (Table 4); the metric
# is mmdysample's, registered by custom_imports=['mmdysample'].
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryIoUMetric', dilation_ratio=0.02)
]
test_evaluator = val_evaluator
