# Mask2Former (slim, ResNet-18 from scratch) with DySample in the x2 step of
# its pixel decoder, on the built-in synthetic data: trains and reports mIoU
# and bIoU on 2 CPU cores. Half the iterations of the other synthetic
# configs: an iteration costs more (Hungarian matching, per-query masks).
_base_ = [
    '../_base_/models/mask2former_r18_slim.py',
    '../_base_/datasets/synthetic_ade.py',
    '../_base_/synthetic_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(
        pixel_decoder=dict(upsample_cfg=dict(type='DySample'))))

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
