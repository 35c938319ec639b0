# Pixel shuffle (a 3x3 conv to 4x the channels, then the x2 shuffle, the
# paper's setting, Sec. 4; mmcv's PixelShufflePack) in the three top-down
# stages of the FPN, at the FPN's 256 channels.
# Everything else is mmdet's stock 1x setting, as in the DySample configs,
# so results compare with mask-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='DySampleFPN',
        upsample_cfg=dict(type='pixel_shuffle', upsample_kernel=3)))
