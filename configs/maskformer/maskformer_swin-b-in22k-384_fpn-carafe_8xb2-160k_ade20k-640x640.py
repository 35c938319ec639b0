# CARAFE with mmcv's defaults (CARAFEPack: up_kernel=5, up_group=1,
# encoder_kernel=3, encoder_dilation=1, compressed_channels=64) in the three
# top-down x2 stages of MaskFormer's pixel decoder, at its 256 channels.
# Everything else is the nearest baseline's (paper Table 5). mmcv's CARAFE op
# has CUDA kernels only: the model builds anywhere, runs on a GPU.
_base_ = './maskformer_swin-b-in22k-384_fpn-nearest_8xb2-160k_ade20k-640x640.py'  # noqa: E501

model = dict(
    decode_head=dict(pixel_decoder=dict(upsample_cfg=dict(type='carafe'))))
