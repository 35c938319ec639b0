# The built-in depth data (`make data-depth`: rendered rooms with known depth
# in NYU Depth V2's layout, 192 x 256) read by mmseg's NYUDataset and
# LoadDepthAnnotation, as configs/_base_/datasets/nyu_416x544.py reads NYU:
# flips and 96 x 128 crops for training (a quarter of the image: CPU time),
# the whole image at test, depth evaluated in
# (1e-3, 10) m without the Eigen crop (which fits only 480 x 640 frames).
dataset_type = 'NYUDataset'
data_root = 'data/synthetic_depth/nyu'
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=(96, 128)),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CheckedDataset',
        dataset_type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train', depth_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedDataset',
        dataset_type=dataset_type,
        data_root=data_root,
        test_mode=True,
        data_prefix=dict(
            img_path='images/test', depth_map_path='annotations/test'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CheckedDepthMetric', min_depth_eval=1e-3, max_depth_eval=10.0)
test_evaluator = val_evaluator
