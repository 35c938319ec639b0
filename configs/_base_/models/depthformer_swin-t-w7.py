# DepthFormer with a Swin-T (window 7) encoder, as the
# Monocular-Depth-Estimation-Toolbox builds it (configs/_base_/models/
# depthformer_swin.py and depthformer/depthformer_swint_w7_nyu.py), on
# mmseg 1.2.2's DepthEstimator:
# - DepthFormerSwin: mmseg's SwinTransformer plus a ResNet stem (7x7 stride 2,
#   64 ch): levels 64@1/2, 96@1/4, 192@1/8, 384@1/16, 768@1/32; the Swin part
#   starts from the ImageNet-1k Swin-T weights (OpenMMLab's converted copy of
#   the official swin_tiny_patch4_window7_224.pth), the stem from scratch;
# - HAHIHeteroNeck: deformable self-attention over the Swin levels and
#   cross-attention from the stem level (mmcv's MultiScaleDeformableAttention,
#   which has a CPU path);
# - DenseDepthHead: four upsampling stages (768, 384, 192, 96 channels
#   upsampled), LeakyReLU, depth = ReLU + 1e-3, SigLoss (variance focus 0.85).
# The data preprocessor pads depth with 0 (invalid), not mmseg's 255.
checkpoint_file = ('https://download.openmmlab.com/mmsegmentation/v0.5/'
                   'pretrain/swin/swin_tiny_patch4_window7_224_20220317-'
                   '1cdeb081.pth')
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    size_divisor=32,
    seg_pad_val=0)
model = dict(
    type='DepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DepthFormerSwin',
        pretrain_img_size=224,
        embed_dims=96,
        patch_size=4,
        window_size=7,
        mlp_ratio=4,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True),
        conv_stem_channels=64,
        conv_norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(
        type='HAHIHeteroNeck',
        positional_encoding=dict(
            type='SinePositionalEncoding', num_feats=128),
        in_channels=[64, 96, 192, 384, 768],
        out_channels=[64, 96, 192, 384, 768],
        embedding_dim=256,
        scales=[1, 1, 1, 1, 1]),
    decode_head=dict(
        type='DenseDepthHead',
        in_channels=[64, 96, 192, 384, 768],
        up_sample_channels=[64, 96, 192, 384, 768],
        channels=64,
        align_corners=True,
        min_depth=1e-3,
        max_depth=10,
        act_cfg=dict(type='LeakyReLU', inplace=True),
        loss_decode=dict(
            type='SigLoss', valid_mask=True, loss_weight=1.0, max_depth=10)),
    train_cfg=dict(),
    # the whole 480 x 640 image and its mirror, averaged (one window)
    test_cfg=dict(mode='slide_flip', crop_size=(480, 640), stride=(480, 640)))
