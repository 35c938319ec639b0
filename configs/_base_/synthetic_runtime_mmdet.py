# mmdet's default runtime with the short synthetic schedule: iteration-based
# logging, one checkpoint at the end, a fixed seed.
_base_ = [
    'mmdet::_base_/default_runtime.py', './schedules/synthetic_schedule.py'
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval={{_base_.max_iters}},
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
