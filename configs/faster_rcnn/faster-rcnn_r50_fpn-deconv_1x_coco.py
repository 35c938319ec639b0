# Deconvolution (transposed conv: kernel 3, stride 2, padding 1, output
# padding 1, the paper's setting, Sec. 4) in the three top-down stages of
# the FPN, at the FPN's 256 channels.
# Everything else is mmdet's stock 1x setting, as in the DySample configs,
# so results compare with faster-rcnn_r50_fpn_1x_coco.py (nearest upsampling).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='DySampleFPN',
        upsample_cfg=dict(
            type='deconv',
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=1)))
