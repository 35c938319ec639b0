# FreqFusion (Chen et al., TPAMI 2024) in the three top-down stages of the
# FPN: adaptive low-pass kernels (5x5) upsample the coarser level, adaptive
# high-pass kernels (3x3) sharpen the finer lateral it is added to, and a
# resampler with offsets from local cosine similarity (4 groups) refines the
# upsampled map; the authors' Panoptic FPN setting (compressed channels
# (256 + 256) / 8 = 64, and, unlike their Faster / Mask R-CNN configs, no
# GroupNorm before the similarity: resample_norm=False). Guided by the finer
# lateral; what the neck adds to that lateral is FreqFusion's fused map less
# the lateral, so the sum is the authors' fusion. Pure PyTorch: runs on CPU
# and GPU. Everything else is mmdet's stock 1x setting, as in the DySample
# configs, so results compare with panoptic-fpn_r50_fpn_1x_coco.py (nearest
# upsampling).
_base_ = 'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='DySampleFPN',
        upsample_cfg=dict(type='FreqFusion', resample_norm=False)))
