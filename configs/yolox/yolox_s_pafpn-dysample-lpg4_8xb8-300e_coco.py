# DySample (LP style, 4 groups, static scope) in the two top-down x2
# steps of YOLOX-s's PAFPN (at 128 and 256 channels). Everything else is
# mmdet's stock setting, so results compare with yolox_s_8xb8-300e_coco.py
# (nearest upsampling).
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

# A name, not a dict: mmdet's YOLOX config sets upsample_cfg to nn.Upsample
# keyword arguments, which a dict would be merged with.
model = dict(neck=dict(type='DySampleYOLOXPAFPN', upsample_cfg='DySample'))
