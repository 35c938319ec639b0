# DySample (LP style, 4 groups, static scope) in the two top-down x2
# steps of RTMDet-tiny's CSPNeXtPAFPN (at 96 and 192 channels). Everything
# else is mmdet's stock setting, so results compare with
# rtmdet_tiny_8xb32-300e_coco.py (nearest upsampling).
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleCSPNeXtPAFPN', upsample_cfg=dict(type='DySample')))
