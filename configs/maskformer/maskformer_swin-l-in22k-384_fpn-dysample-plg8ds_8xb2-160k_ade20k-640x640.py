# DySample-S+ (PL style, 8 groups, dynamic scope) in the three top-down x2
# stages of MaskFormer's pixel decoder, at its 256 channels. Everything else
# is the nearest baseline's (paper Table 5).
_base_ = './maskformer_swin-l-in22k-384_fpn-nearest_8xb2-160k_ade20k-640x640.py'  # noqa: E501

model = dict(
    decode_head=dict(
        pixel_decoder=dict(upsample_cfg=dict(type='DySample-S+'))))
