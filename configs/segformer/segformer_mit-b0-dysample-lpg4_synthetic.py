# SegFormer (MiT-B0 from scratch, no weights can be downloaded) with DySample
# in the six x2 decoder stages, on the built-in synthetic data: trains and
# reports mIoU and bIoU on 2 CPU cores in a few minutes.
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/synthetic_ade.py',
    '../_base_/synthetic_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(init_cfg=None),
    decode_head=dict(
        type='DySampleSegformerHead',
        channels=128,
        num_classes=7,
        norm_cfg=norm_cfg,
        upsample_cfg=dict(type='DySample')))
