# MaskFormer, Swin-B (ImageNet-22K, 384 x 384 pre-training) on ADE20K with
# the official MaskFormer recipe for that backbone: 640 x 640 crops,
# 8 GPUs x 2 images, 160k iterations (paper Table 5, nearest baseline).
# The pixel decoder is DySamplePixelDecoder with its default upsample_cfg=None,
# i.e. mmdet's PixelDecoder (nearest x2 in its three top-down stages) with the
# same output and state-dict keys; the head is DySampleMaskFormerHead, mmseg's
# MaskFormerHead that keeps the transformer's input projection for it. The
# DySample and CARAFE configs inherit this one and set only upsample_cfg.
# README.md lists what differs from the official (detectron2) code.
_base_ = 'mmseg::maskformer/maskformer_swin-s_upernet_8xb2-160k_ade20k-512x512.py'  # noqa: E501

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

pretrained = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_base_patch4_window12_384_22k_20220317-e5c09f74.pth'  # noqa: E501
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        pretrain_img_size=384,
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(
        type='DySampleMaskFormerHead',
        in_channels=[128, 256, 512, 1024],
        pixel_decoder=dict(type='DySamplePixelDecoder')))

# Official: short side drawn from 320..1280 (0.5x..2x of 640, at most 2560
# long), 640 x 640 crops with no single-class area limit, SSD colour jitter.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2560, 640),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
# Official: short side 640 (at most 2560 long), single scale.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Official: linear warm-up from 1e-6 over 1500 iterations, poly decay with
# power 0.9 (mmseg's Swin MaskFormer configs use power 1.0).
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=1500,
        end=160000,
        by_epoch=False)
]
