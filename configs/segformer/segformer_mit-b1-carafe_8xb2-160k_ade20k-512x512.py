# CARAFE with mmcv's defaults (CARAFEPack: up_kernel=5, up_group=1,
# encoder_kernel=3, encoder_dilation=1, compressed_channels=64; the paper's
# setting, Sec. 4; CUDA only: builds anywhere, runs on a GPU)
# in the six x2 upsampling stages of SegFormer-B1's decoder (3 + 2 + 1 for
# the 1/32, 1/16 and 1/8 levels), at the decoder's 256 channels. Everything
# else, the test protocol included, is the bilinear baseline's, as for the
# DySample configs (paper Table 4).
_base_ = './segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='carafe')))
