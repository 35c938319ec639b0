# Deconvolution (transposed conv: kernel 3, stride 2, padding 1, output
# padding 1, the paper's setting) in the four x2 steps of DepthFormer's
# DenseDepth decoder, at 768 / 384 / 192 / 96 channels.
# Everything else is the bilinear row's (Table 9).
_base_ = './depthformer_swin-t-w7_bilinear_nyu-416x544.py'

model = dict(
    decode_head=dict(
        upsample_cfg=dict(
            type='deconv',
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=1)))
