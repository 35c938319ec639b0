# Copyright (c) mmdysample contributors. All rights reserved.
"""DySample for OpenMMLab.

``import mmdysample`` registers the DySample upsamplers and the paper's
other comparison upsamplers in pure PyTorch (``'IndexNet'``, ``'A2U'``,
``'FADE'``, ``'SAPA-B'``, ``'CARAFEUnfold'``) in the mmengine root
``MODELS`` registry (read by :func:`mmcv.cnn.build_upsample_layer` from any
scope), and, where mmdet / mmseg are installed, the neck and decode head that
use them and the boundary IoU metric (mmseg's ``BoundaryIoUMetric``). A config
only needs::

    custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

It also lets mmengine resolve ``_base_ = 'mmdysample::<path>'`` in configs
parsed after it (see :mod:`mmdysample.registry`).
"""
from . import datasets  # noqa: F401 (registers CheckedDataset)
from . import evaluation  # noqa: F401 (registers BoundaryIoUMetric)
from .engine import RNGStateHook
from .models import DYSAMPLE_PRESETS, DySample, build_upsampler
from .registry import register_config_prefix
from .utils import allow_mmengine_checkpoint_types
from .version import __version__, version_info

allow_mmengine_checkpoint_types()
register_config_prefix()

__all__ = [
    '__version__', 'version_info', 'DySample', 'DYSAMPLE_PRESETS',
    'build_upsampler', 'RNGStateHook'
]
