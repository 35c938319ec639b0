# CARAFE with mmcv's defaults (CARAFEPack: up_kernel=5, up_group=1,
# encoder_kernel=3, encoder_dilation=1, compressed_channels=64; the paper's
# setting, Sec. 4) in the three top-down stages of the FPN. mmcv's CARAFE op
# has CUDA kernels only: this model builds anywhere but runs on a GPU.
# Everything else is mmdet's stock 1x setting, as in the DySample configs,
# so results compare with mask-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleFPN', upsample_cfg=dict(type='carafe')))
