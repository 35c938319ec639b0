# The slim Mask R-CNN turned into mmdet's Panoptic FPN (semantic FPN head +
# heuristic fusion) for 4 thing and 3 stuff classes.
_base_ = './mask-rcnn_r18_fpn_slim.py'

model = dict(
    type='PanopticFPN',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255),
    semantic_head=dict(
        type='PanopticFPNHead',
        num_things_classes=4,
        num_stuff_classes=3,
        in_channels={{_base_.channels}},
        inner_channels={{_base_.channels}},
        start_level=0,
        end_level=4,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        conv_cfg=None,
        loss_seg=dict(
            type='CrossEntropyLoss', ignore_index=255, loss_weight=0.5)),
    panoptic_fusion_head=dict(
        type='HeuristicFusionHead', num_things_classes=4,
        num_stuff_classes=3),
    test_cfg=dict(
        rcnn=dict(
            score_thr=0.6,
            nms=dict(type='nms', iou_threshold=0.5, class_agnostic=True),
            max_per_img=100,
            mask_thr_binary=0.5),
        # COCO's 4096 px stuff limit is 11 % of a 192 px image; scale it.
        panoptic=dict(mask_overlap=0.5, stuff_area_limit=256)))
