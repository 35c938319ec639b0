# A DepthFormer of the Swin-T design at CPU size, for the built-in depth
# data: the same three parts (a Swin encoder with a convolution stem, the
# HAHI neck, the DenseDepth decoder with four upsampling stages and SigLoss),
# narrower and shallower (Swin: 16 channels, one block per stage, window 4;
# stem 16 channels; neck embedding 32), from scratch. Depth in (1e-3, 10) m,
# as for NYU, predicted as sigmoid * 10 m (the toolbox's scale_up): from
# scratch, DepthFormer's ReLU + 1e-3 output can die in the first iterations
# (every pixel negative, no gradient; seen here with a 1e-3 learning rate).
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
        embed_dims=16,
        depths=(1, 1, 1, 1),
        num_heads=(1, 2, 4, 8),
        window_size=4,
        drop_path_rate=0.1,
        conv_stem_channels=16,
        conv_norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(
        type='HAHIHeteroNeck',
        positional_encoding=dict(type='SinePositionalEncoding', num_feats=16),
        in_channels=[16, 16, 32, 64, 128],
        out_channels=[16, 16, 32, 64, 128],
        embedding_dim=32,
        num_points=2,
        num_heads=4,
        scales=[1, 1, 1, 1, 1]),
    decode_head=dict(
        type='DenseDepthHead',
        in_channels=[16, 16, 32, 64, 128],
        # the four stages upsample maps of 128, 64, 32 and 32 channels
        up_sample_channels=[16, 32, 32, 64, 128],
        channels=16,
        align_corners=True,
        min_depth=1e-3,
        max_depth=10,
        scale_up=True,
        act_cfg=dict(type='LeakyReLU', inplace=True),
        loss_decode=dict(
            type='SigLoss', valid_mask=True, loss_weight=1.0, max_depth=10)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
