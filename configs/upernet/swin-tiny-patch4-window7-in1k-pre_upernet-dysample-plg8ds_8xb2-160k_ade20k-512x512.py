# DySample-S+ (PL, 8 groups, dynamic scope)
# in the three top-down x2 steps of UPerNet's decode head (Swin-T, ADE20K):
# the finer lateral receives the coarser one through the upsampler instead of
# a bilinear resize; the one-shot fusion resizes stay bilinear.
# Everything else is mmseg's config: the stock model is this one with
# upsample_cfg=None.
_base_ = ('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
          '8xb2-160k_ade20k-512x512.py')
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    decode_head=dict(
        type='DySampleUPerHead',
        upsample_cfg=dict(type='DySample-S+')))
