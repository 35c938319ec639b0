# DySample+ (LP style, 4 groups, dynamic scope) in the three top-down
# stages of the FPN. Everything else is mmdet's stock 1x setting, so results
# compare with faster-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='DySampleFPN',
        # scope_bias: the layout of the authors' released checkpoints.
        upsample_cfg=dict(type='DySample+', scope_bias=True)))
