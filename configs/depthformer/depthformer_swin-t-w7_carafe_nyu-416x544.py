# CARAFE with mmcv's defaults (CARAFEPack: up_kernel=5, up_group=1,
# encoder_kernel=3, compressed_channels=64; CUDA only: builds anywhere, runs
# on a GPU; 'CARAFEUnfold' is the same layer in pure PyTorch) in the four x2
# steps of DepthFormer's DenseDepth decoder.
# Everything else is the bilinear row's (Table 9).
_base_ = './depthformer_swin-t-w7_bilinear_nyu-416x544.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='carafe')))
