# Faster R-CNN with DySample in the FPN on the built-in synthetic data
# (`make demo`): about 10 minutes of training on 2 CPU cores.
_base_ = [
    '../_base_/models/faster-rcnn_r18_fpn_slim.py',
    '../_base_/datasets/synthetic_coco_detection.py',
    '../_base_/synthetic_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleFPN', upsample_cfg=dict(type='DySample')))
