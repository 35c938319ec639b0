# DySample (LP style, 4 groups, static scope) in the one x2 step of
# Mask2Former's pixel decoder (stride 8 -> 4, at 256 channels), ADE20K
# semantic segmentation. Everything else is mmseg's stock setting, so
# results compare with mask2former_r50_8xb2-160k_ade20k-512x512.py
# (bilinear). mmseg's configs name mmdet's decoder with the ``mmdet.``
# prefix; the host, registered in mmdet's registry, is named the same way.
_base_ = 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'

# mmseg's config imports mmdet.models (the decoder's registry): kept.
custom_imports = dict(
    imports=['mmdet.models', 'mmdysample'], allow_failed_imports=False)

model = dict(
    decode_head=dict(
        pixel_decoder=dict(
            type='mmdet.DySampleMSDeformAttnPixelDecoder',
            upsample_cfg=dict(type='DySample'))))
