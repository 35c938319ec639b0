# Mask R-CNN with DySample in the FPN on the built-in synthetic data.
_base_ = [
    '../_base_/models/mask-rcnn_r18_fpn_slim.py',
    '../_base_/datasets/synthetic_coco_instance.py',
    '../_base_/synthetic_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleFPN', upsample_cfg=dict(type='DySample')))
