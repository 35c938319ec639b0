# NYU Depth V2 as DepthFormer trains and tests on it (the
# Monocular-Depth-Estimation-Toolbox's NYU recipe, on mmseg 1.2.2's
# NYUDataset and LoadDepthAnnotation):
# - train: the toolbox's NYUCrop (rows 45:472, columns 43:608 of the 480 x 640
#   frames), rotation by up to 2.5 degrees (depth padded with 0 = invalid,
#   not mmseg's 255), horizontal flip, a random 416 x 544 crop, and the
#   toolbox's ColorAug (NYUCrop and ColorAug are mmdysample's, mmseg has
#   neither); batches of 8 per GPU on 2 GPUs (the toolbox's 2 x RTX 3090);
# - test: the whole 480 x 640 frame and its mirror image, averaged (the
#   model's test_cfg mode 'slide_flip' with one window; mmseg 1.2.2's 'slide'
#   silently runs 'whole' inference), evaluated inside the Eigen crop
#   [45:471, 41:601] on depths in (1e-3, 10) m.
# Layout (mmseg's, written by its tools/dataset_converters/nyu.py):
#   data/nyu/images/{train,test}/<scene>_<n>.jpg
#   data/nyu/annotations/{train,test}/<scene>_<n>.png (uint16, millimetres)
dataset_type = 'NYUDataset'
data_root = 'data/nyu'
crop_size = (416, 544)
test_size = (480, 640)
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='NYUCrop'),
    dict(type='RandomRotate', prob=0.5, degree=2.5, seg_pad_val=0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(
        type='ColorAug',
        prob=0.5,
        gamma_range=(0.9, 1.1),
        brightness_range=(0.75, 1.25),
        color_range=(0.9, 1.1)),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train', depth_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        test_mode=True,
        data_prefix=dict(
            img_path='images/test', depth_map_path='annotations/test'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Every metric of Table 9 (d1-d3, abs_rel, sq_rel, rmse, rmse_log, log10)
# and silog; CheckedDepthMetric is mmseg's DepthMetric with its inputs
# checked (mmdysample.evaluation).
val_evaluator = dict(
    type='CheckedDepthMetric',
    min_depth_eval=1e-3,
    max_depth_eval=10.0,
    crop_type='nyu_crop')
test_evaluator = val_evaluator
