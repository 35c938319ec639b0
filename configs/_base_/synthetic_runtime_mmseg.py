# mmseg's default runtime with the short synthetic schedule: iteration-based
# logging, one checkpoint at the end, a fixed seed.
_base_ = [
    'mmseg::_base_/default_runtime.py', './schedules/synthetic_schedule.py'
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval={{_base_.max_iters}},
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
