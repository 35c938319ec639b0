# MaskFormer (slim, ResNet-18 from scratch) with DySample-S+ in the three
# top-down stages of its pixel decoder, on the built-in synthetic data:
# trains and reports mIoU on 2 CPU cores in a few minutes.
_base_ = [
    '../_base_/models/maskformer_r18_slim.py',
    '../_base_/datasets/synthetic_ade.py',
    '../_base_/synthetic_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(
        pixel_decoder=dict(upsample_cfg=dict(type='DySample-S+'))))
