# SAPA-B (5x5 kernels from the similarity of the skip to the coarse map) in
# the four x2 steps of DepthFormer's DenseDepth decoder.
# Everything else is the bilinear row's (Table 9).
_base_ = './depthformer_swin-t-w7_bilinear_nyu-416x544.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='SAPA-B')))
