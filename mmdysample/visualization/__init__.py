# Copyright (c) mmdysample contributors. All rights reserved.
"""Visualisation of DySample's learned sampling points (paper Fig. 7).

Used by ``tools/analysis_tools/visualize_offsets.py``; needs matplotlib
(a dependency of mmengine) and, for the model path, the model's host.
"""
from .offsets import (OffsetFigure, build_model_from_config, choose_stage,
                      collect_upsampler_inputs, draw_features, draw_offsets,
                      feature_to_rgb, find_upsamplers, image_feature,
                      positions_from_offsets, prepare_image, randomize_offsets,
                      sampling_positions, save_figure, select_points,
                      visualize_offsets)

__all__ = [
    'OffsetFigure', 'build_model_from_config', 'choose_stage',
    'collect_upsampler_inputs', 'draw_features', 'draw_offsets',
    'feature_to_rgb', 'find_upsamplers', 'image_feature',
    'positions_from_offsets', 'prepare_image', 'randomize_offsets',
    'sampling_positions', 'save_figure', 'select_points', 'visualize_offsets'
]
