# FreqFusion (Chen et al., TPAMI 2024; its Faster R-CNN setting: 5x5
# low-pass and 3x3 high-pass kernels, 64 compressed channels, the
# similarity-guided resampler with 4 groups) in the six x2 upsampling stages
# of SegFormer-B1's decoder (3 + 2 + 1 for the 1/32, 1/16 and 1/8 levels),
# at the decoder's 256 channels, each guided by the level embedding it
# upsamples to. A stage's output is the low-pass upsampled, resampled map
# plus the guide's high-pass part (FreqFusion's fusion less the guide, as in
# the FPN). Pure PyTorch: runs on CPU and GPU. Everything else, the test
# protocol included, is the bilinear baseline's, as for the DySample configs
# (paper Table 4).
_base_ = './segformer_mit-b1-bilinear_8xb2-160k_ade20k-512x512.py'

model = dict(decode_head=dict(upsample_cfg=dict(type='FreqFusion')))
