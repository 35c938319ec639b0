# DeepLabV3+ (ResNet-18-D8 from scratch, no weights can be downloaded; a
# 128-wide head) with DySample in its x2 decoder step (1/8 -> 1/4), on the
# built-in synthetic data: trains and reports mIoU and bIoU on 2 CPU cores in
# minutes.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/synthetic_ade.py',
    '../_base_/synthetic_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    pretrained=None,
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(
        type='DySampleDepthwiseSeparableASPPHead',
        in_channels=512,
        channels=128,
        c1_in_channels=64,
        c1_channels=48,
        num_classes=7,
        norm_cfg=norm_cfg,
        upsample_cfg=dict(type='DySample')),
    auxiliary_head=dict(
        in_channels=256, channels=64, num_classes=7, norm_cfg=norm_cfg))
