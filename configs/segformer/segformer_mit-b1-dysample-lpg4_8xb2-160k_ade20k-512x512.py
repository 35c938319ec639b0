# DySample (LP: linear + pixel shuffle, 4 groups, static scope)
# in the six x2 upsampling stages of SegFormer-B1's decoder (3 + 2 + 1 for
# the 1/32, 1/16 and 1/8 levels). Everything else, the test protocol
# included, is the bilinear baseline's, so the results compare like for like
# (paper Table 4).
_base_ = './segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='DySample')))
