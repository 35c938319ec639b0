# IndexNet, the 'HIN' version (holistic index block, nonlinear and with
# context: the index map comes from the guide; the paper's setting, Sec. 4) in
# the three top-down stages of the FPN, each guided by the finer lateral. Pure
# PyTorch: runs on CPU and GPU. Everything else is mmdet's stock 1x setting,
# as in the DySample configs, so results compare with
# panoptic-fpn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleFPN', upsample_cfg=dict(type='IndexNet')))
