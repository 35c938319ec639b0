# DySample+ (LP, 4 groups, dynamic scope) in the four x2 steps of
# DepthFormer's DenseDepth decoder: the paper's best row of Table 9.
# Everything else is the bilinear row's (Table 9).
_base_ = './depthformer_swin-t-w7_bilinear_nyu-416x544.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='DySample+')))
