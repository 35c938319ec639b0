# FADE without its gating mechanism (5x5 kernels from the guide and the coarse
# map; the paper's setting, Sec. 4) in the three top-down stages of the FPN,
# each guided by the finer lateral. Pure PyTorch: runs on CPU and GPU.
# Everything else is mmdet's stock 1x setting, as in the DySample configs, so
# results compare with mask-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleFPN', upsample_cfg=dict(type='FADE')))
