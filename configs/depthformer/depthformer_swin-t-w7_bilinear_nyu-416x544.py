# DepthFormer (Swin-T, window 7) on NYU Depth V2, the bilinear row of the
# paper's Table 9 and the base of its other eleven rows: the four x2 steps
# of the DenseDepth decoder resize bilinearly (align_corners=True) to the
# skip's size, as the Monocular-Depth-Estimation-Toolbox's DenseDepthHead
# does (DenseDepthHead's default upsample_cfg=None, left unset here so that
# the other rows can set it). Model, data, schedule and test protocol are
# the toolbox's depthformer_swint_w7_nyu.py on mmseg 1.2.2 (see README.md).
_base_ = [
    '../_base_/models/depthformer_swin-t-w7.py',
    '../_base_/datasets/nyu_416x544.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/depthformer_38.4k.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)
