# The bilinear baseline of the DySample comparison (paper Table 4), and the
# base of the four DySample configs, so that they differ from it in the
# decoder's upsamplers only.
#
# Model, data, schedule and optimiser are mmseg's stock SegFormer-B1 setting.
# The head is DySampleSegformerHead with its default upsample_cfg=None (left
# unset here so that the DySample configs can merge a dict into it), which
# computes exactly what SegformerHead does, with the same state-dict keys.
#
# One change to the stock test protocol: the paper trained and tested with
# the official SegFormer code, whose test pipeline resizes every image to a
# multiple of 32 (its AlignedResize). mmseg's stock test pipeline keeps e.g.
# 512x683, so 1/4..1/32 features are 128x171 .. 16x22 and x2 upsampling
# stages overshoot by a pixel. ResizeToMultiple reproduces the paper's
# protocol (512x683 -> 512x704). It comes before LoadAnnotations, so the
# labels stay at the original size; the logits are resized back to the
# original image size ('ori_shape') by EncoderDecoder.postprocess_result
# before IoUMetric compares them with the labels.
#
# Evaluation: mIoU and, as in the paper's Table 4, boundary IoU (bIoU;
# Cheng et al., CVPR 2021, band width 2% of the image diagonal) from
# mmdysample's BoundaryIoUMetric, on the same original-size labels.
_base_ = 'mmseg::segformer/segformer_mit-b1_8xb2-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

model = dict(decode_head=dict(type='DySampleSegformerHead'))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryIoUMetric', dilation_ratio=0.02)
]
test_evaluator = val_evaluator
