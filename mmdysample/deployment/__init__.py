# Copyright (c) mmdysample contributors. All rights reserved.
"""Deployment: ONNX export of DySample layers and of models using them."""
from .onnx import (TensorForward, build_export_model, compare_with_torch,
                   export_model, export_module, export_upsampler, other_shape,
                   random_inputs, symbolic_input_axes, verify_onnx)

__all__ = [
    'TensorForward', 'build_export_model', 'compare_with_torch',
    'export_model', 'export_module', 'export_upsampler', 'other_shape',
    'random_inputs', 'symbolic_input_axes', 'verify_onnx'
]
