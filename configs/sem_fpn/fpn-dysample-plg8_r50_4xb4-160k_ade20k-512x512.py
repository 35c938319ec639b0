# DySample-S (PL: pixel shuffle + linear, 8 groups, static scope)
# in the six x2 steps of Semantic FPN's scale heads (R50, ADE20K; 1 + 2 + 3
# for the 1/8, 1/16 and 1/32 levels), in place of the bilinear Upsample
# layers.
# Everything else is mmseg's config: the stock model is this one with
# upsample_cfg=None.
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    decode_head=dict(
        type='DySampleFPNHead',
        upsample_cfg=dict(type='DySample-S')))
