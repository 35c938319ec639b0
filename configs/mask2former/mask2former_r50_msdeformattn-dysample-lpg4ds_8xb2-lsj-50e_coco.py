# DySample+ (LP style, 4 groups, dynamic scope) in the one x2 step of
# Mask2Former's pixel decoder (stride 8 -> 4, at 256 channels), COCO
# instance segmentation. Everything else is mmdet's stock setting, so
# results compare with mask2former_r50_8xb2-lsj-50e_coco.py (bilinear).
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    panoptic_head=dict(
        pixel_decoder=dict(
            type='DySampleMSDeformAttnPixelDecoder',
            upsample_cfg=dict(type='DySample+'))))
