# LDA-AQU (Du et al., ACM MM 2024) in the three top-down stages of the FPN:
# local deformable attention, each output pixel's bilinear query attending
# to 9 keys of the coarse map sampled at learned offsets (3x3 window, 2
# offset groups, range factor 11); the authors' Faster R-CNN setting. Reads
# no guide. Pure PyTorch: runs on CPU and GPU. Everything else is mmdet's
# stock 1x setting, as in the DySample configs, so results compare with
# mask-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleFPN', upsample_cfg=dict(type='LDA-AQU')))
