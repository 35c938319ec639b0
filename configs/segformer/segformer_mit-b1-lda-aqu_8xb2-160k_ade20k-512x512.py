# LDA-AQU (Du et al., ACM MM 2024; its Faster R-CNN setting: 3x3 deformable
# window, 2 offset groups, range factor 11, keys at 256 / 4 channels) in the
# six x2 upsampling stages of SegFormer-B1's decoder (3 + 2 + 1 for the 1/32,
# 1/16 and 1/8 levels), at the decoder's 256 channels. Reads no guide. Pure
# PyTorch: runs on CPU and GPU. Everything else, the test protocol included,
# is the bilinear baseline's, as for the DySample configs (paper Table 4).
_base_ = './segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='LDA-AQU')))
