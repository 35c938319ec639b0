# UPerNet (ResNet-18 from scratch, no weights can be downloaded; a 128-wide
# head) with DySample in the three top-down x2 steps of its decode head, on
# the built-in synthetic data: trains and reports mIoU and bIoU on 2 CPU
# cores in minutes.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
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
        type='DySampleUPerHead',
        in_channels=[64, 128, 256, 512],
        channels=128,
        num_classes=7,
        norm_cfg=norm_cfg,
        upsample_cfg=dict(type='DySample')),
    auxiliary_head=dict(
        in_channels=256, channels=64, num_classes=7, norm_cfg=norm_cfg))
