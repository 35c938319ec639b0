# DepthFormer's NYU schedule (the Monocular-Depth-Estimation-Toolbox's
# depthformer_swint_w7_nyu.py): AdamW lr 6e-5, betas (0.9, 0.999), weight
# decay 0.01 (none on norms and Swin's position tables), a cosine from 6e-5
# to 1e-8 of it over the 38,400 iterations with a linear warm-up factor from
# 1e-3 to 1 over the first 12,800 (mmcv 1.x's warm-up multiplies the cosine,
# as the two overlapping schedulers do here); gradient norm clipped at 35; evaluation and a checkpoint
# every 1,600 iterations, the best by abs_rel kept.
max_iters = 38400
warmup_iters = 12800
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1600)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=6e-5 * 1e-8,
        by_epoch=False,
        begin=0,
        end=max_iters)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=1600,
        max_keep_ckpts=2,
        save_best='abs_rel',
        rule='less'))
