# MaskFormer, Swin-L (ImageNet-22K, 384 x 384 pre-training) on ADE20K: the
# Swin-B recipe with the larger backbone (paper Table 5, nearest baseline).
_base_ = './maskformer_swin-b-in22k-384_fpn-nearest_8xb2-160k_ade20k-640x640.py'  # noqa: E501

pretrained = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_large_patch4_window12_384_22k_20220412-6580f57d.pth'  # noqa: E501
model = dict(
    backbone=dict(
        embed_dims=192,
        num_heads=[6, 12, 24, 48],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
