# Bilinear x2 upsampling (scale factor 2, align_corners=False, the paper's
# setting, Sec. 4) in the three top-down stages of the FPN, through the
# same code path as the DySample configs (x2, then fitted to the lateral).
# Everything else is mmdet's stock 1x setting, as in the DySample configs,
# so results compare with mask-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='DySampleFPN',
        upsample_cfg=dict(type='bilinear', align_corners=False)))
