# Pixel shuffle (a 3x3 conv to 4x the channels, then the x2 shuffle; mmcv's
# PixelShufflePack) in the four x2 steps of DepthFormer's DenseDepth decoder.
# Everything else is the bilinear row's (Table 9).
_base_ = './depthformer_swin-t-w7_bilinear_nyu-416x544.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='pixel_shuffle', upsample_kernel=3)))
