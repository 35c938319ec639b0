# DySample (LP: linear + pixel shuffle, 4 groups, static scope)
# in DeepLabV3+'s one decoder step (R50-D8, ADE20K): the ASPP output (1/8)
# reaches the size of the 1/4 c1 features through a x2 upsampler instead of
# a bilinear resize.
# Everything else is mmseg's config: the stock model is this one with
# upsample_cfg=None.
_base_ = ('mmseg::deeplabv3plus/'
          'deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py')
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    decode_head=dict(
        type='DySampleDepthwiseSeparableASPPHead',
        upsample_cfg=dict(type='DySample')))
