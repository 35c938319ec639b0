# mmdeploy 1.x deploy config: an mmdet detector (image in, boxes out) to ONNX
# Runtime with dynamic batch, height and width. As mmdeploy's own
# configs/mmdet/detection/detection_onnxruntime_dynamic.py (which its wheel
# does not ship), except for opset 17 and the import below: DySample's
# grid_sample stays the standard ONNX GridSample (opset >= 16) instead of
# mmdeploy's custom mmdeploy::grid_sampler, and with opset >= 16 RoIAlign is
# the standard RoiAlign too, so the exported graph runs in a plain
# onnxruntime session without mmdeploy's ops library.
# See docs/user_guides/deployment.md.
custom_imports = dict(
    imports=['mmdysample.deployment.mmdeploy_rewrites'],
    allow_failed_imports=False)

onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=None,
    # mmdeploy's graph optimiser needs its torchscript extension, which
    # the 1.3.1 wheel does not ship.
    optimize=False,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'}))

codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))

backend_config = dict(type='onnxruntime')
