# RTMDet-tiny (from scratch) with DySample in the two top-down steps of its
# CSPNeXtPAFPN, on the built-in synthetic data: trains and reports box AP
# on 2 CPU cores (the measured cost is in the README). Half the iterations of
# the Faster R-CNN demo.
_base_ = [
    '../_base_/models/rtmdet_tiny_slim.py',
    '../_base_/datasets/synthetic_coco_detection.py',
    '../_base_/synthetic_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(neck=dict(upsample_cfg=dict(type='DySample')))

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=30,
        end=max_iters,
        eta_min_ratio=0.01)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
