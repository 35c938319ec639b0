# A slim Faster R-CNN for the built-in synthetic data on a CPU: ResNet-18
# from scratch (no weights can be downloaded), 64-channel FPN and heads,
# anchors matched to 12-90 px objects, fewer proposals.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

channels = 64
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=channels),
    rpn_head=dict(
        in_channels=channels,
        feat_channels=channels,
        anchor_generator=dict(scales=[4])),  # 16-256 px anchors
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(
            in_channels=channels, fc_out_channels=256, num_classes=4)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
