# mmdet's own Faster R-CNN (stock FPN, nearest upsampling; no mmdysample
# module in it) on the built-in synthetic data. What `--upsampler NAME`
# (tools/train.py, tools/test.py) and compare_upsamplers start from when
# they are given an unmodified mmdet config: they swap the FPN for
# DySampleFPN themselves.
_base_ = [
    '../_base_/models/faster-rcnn_r18_fpn_slim.py',
    '../_base_/datasets/synthetic_coco_detection.py',
    '../_base_/synthetic_runtime_mmdet.py'
]
