# Copyright (c) mmdysample contributors. All rights reserved.
"""Deployment: ONNX export of DySample layers and of models using them."""
from .detections import match_detections
from .exporters import (DYNAMO_MIN_TORCH, dynamo_exporter_available,
                        exporter_kwargs)
from .onnx import (TensorForward, build_export_model, compare_with_torch,
                   export_model, export_module, export_upsampler, other_shape,
                   random_inputs, symbolic_input_axes, verify_onnx)

__all__ = [
    'DYNAMO_MIN_TORCH', 'dynamo_exporter_available', 'exporter_kwargs',
    'TensorForward', 'build_export_model', 'compare_with_torch',
    'export_model', 'export_module', 'export_upsampler', 'match_detections',
    'other_shape', 'random_inputs', 'symbolic_input_axes', 'verify_onnx'
]
