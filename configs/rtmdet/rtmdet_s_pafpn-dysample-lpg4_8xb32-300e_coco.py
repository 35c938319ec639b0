# DySample (LP style, 4 groups, static scope) in the two top-down x2
# steps of RTMDet-s's CSPNeXtPAFPN (at 128 and 256 channels). Everything
# else is mmdet's stock setting, so results compare with
# rtmdet_s_8xb32-300e_coco.py (nearest upsampling).
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(type='DySampleCSPNeXtPAFPN', upsample_cfg=dict(type='DySample')))
