# A CPU-sized DepthFormer (configs/_base_/models/depthformer_swin-slim.py)
# with DySample+ (the paper's best row of Table 9) in the four upsampling
# stages of its DenseDepth decoder, trained from scratch on the built-in
# depth data (`make data-depth`) and tested with every Table 9 metric: a few
# minutes on 2 CPU cores (README.md, "Built-in data"). With
# `--upsampler NAME` (tools/train.py, tools/test.py) or
# tools/analysis_tools/compare_upsamplers.py, any registered upsampler
# replaces DySample+.
_base_ = [
    '../_base_/models/depthformer_swin-slim.py',
    '../_base_/datasets/synthetic_nyu.py',
    '../_base_/synthetic_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(decode_head=dict(upsample_cfg=dict(type='DySample+')))

# 200 iterations of 4 crops: AdamW 1e-3, warm-up 30, cosine to 1e-5
max_iters = 200
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
