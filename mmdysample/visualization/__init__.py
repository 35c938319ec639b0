# Copyright (c) mmdysample contributors. All rights reserved.
"""Visualisation of DySample's learned sampling points (paper Fig. 7).

Used by ``tools/analysis_tools/visualize_offsets.py``; needs matplotlib
(a dependency of mmengine) and, for the model path, the model's host.

Parts:

- :mod:`~mmdysample.visualization.capture`: a model's DySample layers and
  their inputs (``find_upsamplers``, ``collect_upsampler_inputs``,
  ``choose_stage``).
- :mod:`~mmdysample.visualization.geometry`: where a layer samples, in input
  pixels (``positions_from_offsets``, ``sampling_positions``).
- :mod:`~mmdysample.visualization.points`: the low-resolution pixels to draw
  (``select_points``).
- :mod:`~mmdysample.visualization.feature_colours`: feature maps as colours
  (``feature_to_rgb``).
- :mod:`~mmdysample.visualization.drawing`: matplotlib drawing
  (``draw_offsets``, ``draw_features``, ``save_figure``).
- :mod:`~mmdysample.visualization.figure`: the whole figure for one layer
  (``visualize_offsets``, ``OffsetFigure``).
- :mod:`~mmdysample.visualization.bare_layer`: a layer drawn without a model
  (``image_feature``, ``randomize_offsets``).
- :mod:`~mmdysample.visualization.model_input`: a model from a config and an
  image prepared for it (``build_model_from_config``, ``prepare_image``).
- :mod:`~mmdysample.visualization.common`: shared type aliases and checks.
"""
from .bare_layer import image_feature, randomize_offsets
from .capture import choose_stage, collect_upsampler_inputs, find_upsamplers
from .drawing import draw_features, draw_offsets, save_figure
from .feature_colours import feature_to_rgb
from .figure import OffsetFigure, visualize_offsets
from .geometry import positions_from_offsets, sampling_positions
from .model_input import build_model_from_config, prepare_image
from .points import select_points

__all__ = [
    'OffsetFigure', 'build_model_from_config', 'choose_stage',
    'collect_upsampler_inputs', 'draw_features', 'draw_offsets',
    'feature_to_rgb', 'find_upsamplers', 'image_feature',
    'positions_from_offsets', 'prepare_image', 'randomize_offsets',
    'sampling_positions', 'save_figure', 'select_points', 'visualize_offsets'
]
